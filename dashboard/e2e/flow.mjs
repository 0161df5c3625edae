// The dashboard end to end in Debian's Chromium (playwright-core, never a downloaded browser),
// against the real stack a Rust test starts (crates/wh-e2e/tests/dashboard.rs): sign in,
// create an app, set its variables in the .env editor, deploy an upload and watch the build
// log reach live, open the app through wh-proxy, deploy again and roll back, add a domain and
// see its records, follow the runtime logs, visit every other page, sign out. A screenshot of
// every page goes to WH_SHOTS. Any console error (a CSP violation is one) fails the run.
//
// Environment: WH_URL (the control plane), WH_EMAIL, WH_PASSWORD (an administrator),
// WH_PROXY_PORT (wh-proxy's HTTP port; *.route.test resolves to 127.0.0.1), WH_UPLOAD_V1,
// WH_UPLOAD_V2 (.tar.gz sources), WH_SHOTS (a directory), WH_CHROMIUM (default /usr/bin/chromium).

import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env('WH_URL');
const PROXY_PORT = env('WH_PROXY_PORT');
const SHOTS = env('WH_SHOTS');
mkdirSync(SHOTS, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), 'wh-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: env('WH_CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    // The apps' addresses are <slug>.route.test: loopback, where wh-proxy listens.
    '--host-resolver-rules=MAP *.route.test 127.0.0.1',
  ],
  viewport: { width: 1280, height: 860 },
  colorScheme: 'light',
  timeout: 60_000,
});
const errors = [];
const page = browser.pages()[0] ?? (await browser.newPage());
page.setDefaultTimeout(30_000);
page.on('console', (m) => {
  // Answers the flow provokes (a wrong password's 401, a bad name's 422) and requests made
  // while it takes the network away are expected; anything else is a failure.
  const expected = /Failed to load resource: (the server responded with a status of 4\d\d|net::ERR_INTERNET_DISCONNECTED)/;
  if (m.type() === 'error' && !expected.test(m.text())) errors.push(m.text());
});
page.on('pageerror', (e) => errors.push(String(e)));

const shot = async (name) => {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
};
const log = (...a) => console.log('[flow]', ...a);
const expectText = async (locator, text, timeout = 30_000) => {
  await locator.filter({ hasText: text }).first().waitFor({ timeout });
};

try {
  // Sign in.
  await page.goto(BASE + '/');
  await page.getByRole('heading', { name: 'Sign in to WiseHosting' }).waitFor();
  await page.waitForURL(/\/login$/);
  await page.getByLabel('Email').fill(env('WH_EMAIL'));
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expectText(page.getByRole('alert'), 'wrong email or password');
  await shot('sign-in');
  await page.getByLabel('Password').fill(env('WH_PASSWORD'));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Apps' }).waitFor();
  await expectText(page.locator('.empty'), 'No apps yet');
  log('signed in');

  // Create an app; a bad name first: the API's error appears next to the field.
  await page.getByRole('link', { name: 'New app' }).click();
  await page.getByLabel('Name').fill('Bad_Name');
  await page.getByLabel('Port the app listens on').fill('8000');
  await page.getByRole('button', { name: 'Create app' }).click();
  await page.locator('.field-error').first().waitFor();
  const nameError = await page.locator('#' + (await page.getByLabel('Name').getAttribute('aria-describedby'))).textContent();
  if (!nameError || !/lowercase|may contain/.test(nameError)) throw new Error(`no error next to Name: ${nameError}`);
  await shot('new-app');
  await page.getByLabel('Name').fill('shop');
  await page.getByRole('button', { name: 'Create app' }).click();
  await page.getByRole('heading', { name: 'Live deployment' }).waitFor();
  log('app created');

  // Bulk-set variables in the .env editor.
  await page.getByRole('navigation', { name: 'App' }).getByRole('link', { name: 'Environment' }).click();
  await page.getByRole('button', { name: 'Edit as .env' }).click();
  const editor = page.getByLabel('Variables as .env');
  await editor.fill('# settings for the shop\nGREETING="hello from env"\nMODE=production # inline\n');
  await expectText(page.getByRole('status'), 'Unsaved: 2 to set, 0 to remove');
  await page.getByRole('button', { name: 'Save' }).click();
  await expectText(page.getByRole('status'), 'Variables apply on the next deploy');
  await page.getByRole('button', { name: 'Reveal GREETING' }).click();
  await expectText(page.locator('code.value'), 'hello from env');
  // The comment is still in the editor, and nothing is unsaved.
  if (!(await editor.inputValue()).includes('# settings for the shop')) throw new Error('the comment was lost');
  if ((await page.locator('.badge.warn').count()) !== 0) throw new Error('still unsaved after saving');
  await shot('environment');
  log('variables set');

  // Deploy an upload and follow its build log to live.
  const deploy = async (archive, want) => {
    await page.goto(`${BASE}/apps/shop/deployments`);
    await page.getByLabel('A .tar.gz archive').setInputFiles(archive);
    await page.waitForURL(/\/deployments\/\d+$/);
    await expectText(page.locator('.status-line'), 'Finished: the deployment is live.', 120_000);
    const text = await page.getByLabel('Build log').textContent();
    if (!text?.includes(want)) throw new Error(`the build log lacks "${want}": ${text}`);
    return Number(page.url().split('/').pop());
  };
  const first = await deploy(env('WH_UPLOAD_V1'), 'COPY');
  await shot('deployment');
  log('deployment', first, 'live');

  // The app through the proxy.
  const app = async (path) => {
    // Node resolves names itself (not with Chromium's rules): loopback, with the Host header.
    const r = await page.request.get(`http://127.0.0.1:${PROXY_PORT}${path}`, { headers: { host: 'shop.route.test' } });
    return [r.status(), await r.text()];
  };
  const served = async (want) => {
    for (let i = 0; i < 100; i++) {
      const [status, text] = await app('/');
      if (status === 200 && text.includes(want)) return;
      await page.waitForTimeout(100);
    }
    throw new Error(`the proxy never served "${want}"`);
  };
  await served('shop v1');
  await page.goto(`http://shop.route.test:${PROXY_PORT}/`);
  await page.getByText('shop v1').waitFor();
  await shot('app-through-proxy');
  const [, greeting] = await app('/env.txt');
  if (greeting.trim() !== 'hello from env') throw new Error(`env var in the container: ${greeting}`);
  log('served through the proxy');

  // A second deploy, then roll back to the first: its image again, no build.
  const second = await deploy(env('WH_UPLOAD_V2'), 'COPY');
  await served('shop v2');
  await page.goto(`${BASE}/apps/shop/deployments`);
  await page.getByRole('row', { name: new RegExp(`#${first}\\b`) }).getByRole('button', { name: 'Roll back to this' }).click();
  await page.waitForURL((u) => /\/deployments\/\d+$/.test(u.pathname) && !u.pathname.endsWith(`/${second}`) && !u.pathname.endsWith(`/${first}`));
  await expectText(page.locator('.status-line'), 'Finished: the deployment is live.', 120_000);
  await expectText(page.getByLabel('Build log'), `reusing the image of deployment ${first}`);
  await served('shop v1');
  await page.goto(`${BASE}/apps/shop/deployments`);
  await expectText(page.getByRole('row'), 'superseded');
  await shot('deployments');
  log('rolled back');

  // A custom domain and its records.
  await page.goto(`${BASE}/apps/shop/domains`);
  await page.getByLabel('Add a domain').fill('www.shop-example.test');
  await page.getByRole('button', { name: 'Add' }).click();
  await page.getByRole('heading', { name: /www\.shop-example\.test/ }).waitFor();
  await expectText(page.locator('td'), '_wisehosting.www.shop-example.test');
  await expectText(page.locator('td'), 'CNAME');
  await expectText(page.locator('.warning'), 'orange cloud');
  await page.getByRole('button', { name: "Copy the TXT record's value" }).first().waitFor();
  await shot('domains');
  log('domain added');

  // Push to deploy: a GitHub webhook, its URL and secret shown once; a signed ping reaches it.
  await page.goto(`${BASE}/apps/shop/source`);
  await page.getByLabel('Provider').selectOption('github');
  await page.getByRole('button', { name: 'Make a webhook' }).click();
  await expectText(page.getByRole('status'), 'shown only once');
  const secret = (await page.locator('code.secret').textContent())?.trim() ?? '';
  const hookUrl = (await page.locator('.notice code.value').textContent())?.trim() ?? '';
  if (!/^[0-9a-f]{64}$/.test(secret) || !hookUrl.includes('/api/v1/hooks/github/')) throw new Error(`hook: ${hookUrl} ${secret}`);
  await shot('source');
  const ping = JSON.stringify({ zen: 'Approachable is better than simple.' });
  const signature = 'sha256=' + createHmac('sha256', secret).update(ping).digest('hex');
  const delivered = await page.request.post(`${BASE}${new URL(hookUrl, BASE).pathname}`, {
    headers: { 'content-type': 'application/json', 'x-github-event': 'ping', 'x-github-delivery': 'flow-ping', 'x-hub-signature-256': signature },
    data: ping,
  });
  if (delivered.status() !== 200) throw new Error(`the signed ping answered ${delivered.status()}`);
  await page.getByRole('button', { name: 'Done' }).click();
  await page.reload();
  await page.getByRole('row', { name: /GitHub/ }).waitFor();
  if (await page.getByRole('row', { name: /GitHub.*never/ }).count()) throw new Error('the delivery is not shown');
  log('webhook made and pinged');

  // Git providers: connect GitHub (the fake forge approves at once and sends the browser back),
  // create and install the GitHub App, make an app from a repository with the picker, turn
  // previews on, disconnect.
  await page.getByRole('link', { name: 'Git providers' }).click();
  await page.getByRole('button', { name: 'Connect GitHub' }).click();
  await page.waitForURL(/\/settings\/git\?connected=github/);
  await expectText(page.getByRole('status'), 'Connected GitHub as tess');
  await page.getByRole('row', { name: /GitHub.*tess/ }).waitFor();
  // The GitHub App: created through the manifest flow (a server page posts the manifest to the
  // forge), then installed on "tess-org".
  await page.getByRole('link', { name: 'Create the GitHub App' }).click();
  await page.getByRole('button', { name: 'Continue to GitHub' }).click();
  await page.waitForURL(/\/settings\/git\?app=created/);
  await expectText(page.getByRole('status'), 'The GitHub App wisehosting-test exists');
  await page.getByRole('button', { name: 'Install the GitHub App' }).click();
  await page.waitForURL(/\/settings\/git\?connected=github&account=tess-org/);
  await page.getByRole('row', { name: /GitHub.*tess-org/ }).waitFor();
  await shot('git-providers');
  await page.goto(`${BASE}/apps/new`);
  await page.getByLabel('Name').fill('forged');
  await page.getByLabel('Source').selectOption('provider');
  await page.getByLabel('Search repositories').fill('site');
  await page.getByLabel(/tess\/site/).check();
  await page.getByLabel('Port the app listens on').fill('8000');
  await shot('new-app-from-repository');
  await page.getByRole('button', { name: 'Create app' }).click();
  await page.waitForURL(/\/apps\/forged$/);
  await page.goto(`${BASE}/apps/forged/source`);
  await expectText(page.locator('p'), 'github:tess/site');
  // The box shows the saved setting: checked once the API has answered.
  await page.getByLabel(/deploy a preview/).click();
  await page.waitForFunction(() => [...document.querySelectorAll('label')].some((l) => /deploy a preview/.test(l.textContent ?? '') && l.querySelector('input')?.checked));
  await page.reload();
  if (!(await page.getByLabel(/deploy a preview/).isChecked())) throw new Error('previews did not stay on');
  await page.getByRole('row', { name: /GitHub/ }).waitFor();
  await shot('source-connected');
  await page.goto(`${BASE}/settings/git`);
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Disconnect tess at GitHub', exact: true }).click();
  await expectText(page.getByRole('status'), '1 webhook(s) removed');
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Disconnect tess-org at GitHub', exact: true }).click();
  await expectText(page.locator('.empty'), 'Nothing connected yet');
  log('git provider connected, app made from its repository, disconnected');

  // Runtime logs follow live.
  await page.goto(`${BASE}/apps/shop/logs`);
  await expectText(page.locator('.log-row'), 'tick', 30_000);
  // Only the rows in view are rendered; the scroll area grows with every line received.
  const lines = () => page.locator('.log-spacer').evaluate((el) => el.getBoundingClientRect().height);
  const before = await lines();
  await page.waitForTimeout(2500);
  const after = await lines();
  if (!(after > before)) throw new Error(`no new log lines arrived (${before}px → ${after}px of rows)`);
  await shot('logs');
  log('logs followed');

  // The overview's live charts, and the other pages.
  await page.goto(`${BASE}/apps/shop`);
  await page.locator('figure.chart').nth(2).waitFor();
  await expectText(page.locator('.card'), '#');
  await page.waitForTimeout(6000);
  await shot('overview');
  await page.goto(`${BASE}/apps/shop/containers`);
  await expectText(page.getByRole('row'), 'running');
  await shot('containers');
  // Alert rules: the defaults, one changed.
  await page.getByRole('navigation', { name: 'App' }).getByRole('link', { name: 'Alerts' }).click();
  await expectText(page.getByRole('row'), 'over 80 % of the limit for 5 min');
  await page.getByRole('button', { name: 'Change cpu' }).click();
  await page.getByLabel('Threshold of cpu').fill('70');
  await page.getByRole('button', { name: 'Save' }).click();
  await expectText(page.getByRole('row'), 'over 70 % of the limit for 5 min');
  await shot('alerts');
  log('alert rule changed');
  // Notifications: a signed webhook for the app's failed deploys (its secret shown once), a
  // test sent through the delivery path, its delivery listed; a channel by Shoutrrr URL; a
  // URL that does not parse refused, naming what is wrong.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Notifications' }).click();
  const hooks = page.locator('section', { has: page.getByRole('heading', { name: 'Webhooks' }) });
  await hooks.getByLabel('URL').fill('https://receiver.example.test/hooks/wisehosting');
  await hooks.getByLabel('Apps').selectOption('shop');
  await hooks.getByLabel('deployment.failed').check();
  await hooks.getByRole('button', { name: 'Add' }).click();
  await expectText(hooks.getByRole('status'), 'shown only once');
  const signing = await hooks.locator('code.secret').textContent();
  if (!signing || !signing.startsWith('whsec_')) throw new Error(`not a signing secret: ${signing}`);
  await hooks.getByRole('button', { name: 'Done' }).click();
  await hooks.getByRole('button', { name: 'Send a test to https://receiver.example.test' }).click();
  await expectText(hooks.getByRole('status'), 'Test delivered: HTTP 200', 30_000);
  await hooks.getByRole('button', { name: 'Deliveries' }).click();
  await expectText(hooks.getByRole('row'), 'webhook.test');
  await expectText(hooks.getByRole('row'), 'succeeded');
  const channels = page.locator('section', { has: page.getByRole('heading', { name: 'Channels' }) });
  await channels.getByLabel('URL').fill('telegram://123:abc@telegram');
  await channels.getByRole('button', { name: 'Add' }).click();
  await expectText(channels.locator('.error, [role=alert]'), 'no chats');
  await channels.getByLabel('URL').fill('discord://t0ken@4242');
  await channels.getByRole('button', { name: 'Add' }).click();
  await expectText(channels.getByRole('row'), 'discord://4242');
  await shot('notifications');
  log('webhook tested, channel added');
  await page.goto(`${BASE}/apps/shop/alerts`);
  // Usage: the buckets the recorder wrote, as totals and charts with the deploy markers.
  await page.getByRole('navigation', { name: 'App' }).getByRole('link', { name: 'Usage' }).click();
  await expectText(page.locator('table.totals'), 'vCPU-hours');
  await page.getByRole('button', { name: '6 h' }).click();
  await page.locator('figure.chart').nth(2).waitFor();
  await shot('usage');
  log('usage shown');
  await page.goto(`${BASE}/apps`);
  await expectText(page.getByRole('row'), 'shop');
  await shot('apps');
  await page.setViewportSize({ width: 360, height: 740 });
  await shot('apps-360px');
  await page.setViewportSize({ width: 1280, height: 860 });
  // Losing the network: a banner, and the page loads once the control plane answers again.
  await browser.setOffline(true);
  await page.getByRole('link', { name: 'API tokens' }).click();
  await expectText(page.getByRole('status'), 'cannot be reached');
  await shot('offline');
  await browser.setOffline(false);
  await page.getByRole('heading', { name: 'API tokens' }).waitFor();
  await expectText(page.locator('.empty'), 'No tokens', 20_000);
  if ((await page.locator('.banner').count()) !== 0) throw new Error('the banner stayed after the network came back');
  log('survived the network going away');
  await page.getByLabel('Name').fill('laptop');
  await page.getByRole('button', { name: 'Create token' }).click();
  await expectText(page.getByRole('status'), 'shown only once');
  const token = await page.locator('code.secret').textContent();
  const me = await page.request.get(`${BASE}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  if (me.status() !== 200) throw new Error(`the new token does not work: ${me.status()}`);
  await shot('tokens');
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Revoke laptop' }).click();
  await expectText(page.locator('.empty'), 'No tokens');
  const revoked = await page.request.get(`${BASE}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  if (revoked.status() !== 401) throw new Error(`a revoked token still works: ${revoked.status()}`);
  await page.goto(`${BASE}/audit`);
  await expectText(page.getByRole('row'), 'deployment.create');
  await shot('audit');
  await page.goto(`${BASE}/admin/workers`);
  await expectText(page.getByRole('row'), 'running');
  await shot('workers');
  await page.goto(`${BASE}/admin/users`);
  await expectText(page.getByRole('row'), env('WH_EMAIL'));
  await shot('users');
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(`${BASE}/apps/shop`);
  await page.locator('figure.chart').first().waitFor();
  await shot('overview-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  // Keyboard: the skip link is the first stop and moves focus to the page.
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement?.textContent);
  if (focused !== 'Skip to content') throw new Error(`the first Tab stop is ${focused}`);

  // Sign out: back to the sign-in page, the session is gone.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to WiseHosting' }).waitFor();
  const after_out = await page.request.get(`${BASE}/api/v1/me`);
  if (after_out.status() !== 401) throw new Error(`signed out, yet /me answers ${after_out.status()}`);
  log('signed out');
  if (errors.length) throw new Error(`console errors:\n${errors.join('\n')}`);
  console.log('[flow] passed');
} catch (e) {
  await shot('failure').catch(() => undefined);
  console.error('[flow] failed at', page.url(), '\n', e);
  if (errors.length) console.error('[flow] console errors:\n' + errors.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
