// Figures for benches/README.md, not a test: in Debian's Chromium against a running control
// plane (`cargo xtask dev`), (1) the first load of the apps page with 100 apps (a cold browser
// profile each round), and (2) the runtime log view receiving 100,000 lines at once (the
// follow stream is answered by the browser's request interception with 100,000 events, so the
// figure is the view's own cost): how long it takes, the longest and the 95th-percentile
// frame, and how many rows are in the DOM.
//
//   WH_URL=http://127.0.0.1:8081 WH_EMAIL=admin@wisehosting.localhost WH_PASSWORD=… node e2e/bench.mjs

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.WH_URL ?? 'http://127.0.0.1:8081';
const EMAIL = process.env.WH_EMAIL ?? 'admin@wisehosting.localhost';
const PASSWORD = process.env.WH_PASSWORD;
if (!PASSWORD) throw new Error('WH_PASSWORD is not set');
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const LINES = 100_000;

async function browser() {
  const profile = mkdtempSync(join(tmpdir(), 'wh-bench-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.WH_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1280, height: 860 },
  });
  return { ctx, page: ctx.pages()[0] ?? (await ctx.newPage()), done: async () => { await ctx.close(); rmSync(profile, { recursive: true, force: true }); } };
}

// One sign-in for the whole run (sign-ins are limited to 10 a minute): its cookie goes into
// each fresh browser profile.
let session;
async function signIn(page) {
  if (!session) {
    const r = await page.request.post(`${BASE}/api/v1/auth/login`, { data: { email: EMAIL, password: PASSWORD } });
    if (!r.ok()) throw new Error(`sign-in: ${r.status()}`);
    session = { csrf: (await r.json()).csrf_token, cookies: await page.context().cookies() };
    return session.csrf;
  }
  await page.context().addCookies(session.cookies);
  return session.csrf;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// (1) 100 apps.
{
  const { page, done } = await browser();
  const csrf = await signIn(page);
  const have = new Set((await (await page.request.get(`${BASE}/api/v1/apps`)).json()).map((a) => a.slug));
  for (let i = 0; i < 100; i++) {
    const name = `bench-${String(i).padStart(3, '0')}`;
    if (have.has(name)) continue;
    const r = await page.request.post(`${BASE}/api/v1/apps`, { data: { name, port: 8080 }, headers: { 'x-csrf-token': csrf } });
    if (!r.ok()) throw new Error(`create ${name}: ${r.status()} ${await r.text()}`);
  }
  await done();
}
const loads = [];
for (let round = 0; round < ROUNDS; round++) {
  const { page, done } = await browser();
  await signIn(page);
  const t0 = Date.now();
  await page.goto(`${BASE}/apps`);
  await page.locator('tbody tr').nth(99).waitFor();
  const wall = Date.now() - t0;
  const nav = await page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return { dcl: n.domContentLoadedEventEnd, now: performance.now() };
  });
  loads.push({ wall, dcl: nav.dcl, rows: nav.now });
  await done();
}
console.log(`apps page, 100 apps, cold profile, ${ROUNDS} rounds: median ${median(loads.map((l) => l.rows)).toFixed(0)} ms to 100 rows (DOMContentLoaded ${median(loads.map((l) => l.dcl)).toFixed(0)} ms; wall incl. navigation ${median(loads.map((l) => l.wall))} ms)`);

// (2) 100,000 log lines.
{
  const { page, done } = await browser();
  await signIn(page);
  const body = [];
  const t = Date.now();
  for (let i = 0; i < LINES; i++) body.push(`data: ${JSON.stringify({ ts_ms: t + i, stream: 'stdout', line: `line ${i} GET /api/items?page=${i % 50} 200 ${i % 997}ms`, deployment_id: 1 })}\n\n`);
  await page.route('**/api/v1/apps/bench-000/logs?follow=1*', (route) =>
    route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: body.join('') }),
  );
  await page.addInitScript(() => {
    window.__long = [];
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.__long.push(Math.round(e.duration));
    }).observe({ type: 'longtask', buffered: true });
    // Frames as [end time, duration]; the burst begins when the first line is in the DOM.
    window.__frames = [];
    window.__firstRow = Infinity;
    new MutationObserver((_, obs) => {
      if (document.querySelector('.log-row')) {
        window.__firstRow = performance.now();
        obs.disconnect();
      }
    }).observe(document, { childList: true, subtree: true });
    let last = performance.now();
    const tick = (now) => {
      window.__frames.push([now, now - last]);
      last = now;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  await page.goto(`${BASE}/apps/bench-000/logs`);
  const t0 = Date.now();
  // Waiting with a small predicate, polled 4 times a second: Playwright's locators run its
  // injected script in the page, whose own frames would count against the view.
  const last = `line ${LINES - 1} `;
  await page.waitForFunction(
    (last) => [...document.querySelectorAll('.log-row')].some((r) => r.textContent?.startsWith(last)),
    last,
    { polling: 250, timeout: 120_000 },
  );
  const took = Date.now() - t0;
  await page.waitForTimeout(500);
  const { startupLongest, longTasks, frames, rows, atBottom, dropped } = await page.evaluate(() => {
    const el = document.querySelector('.log-scroll');
    const dropped = /([\d,]+) earlier lines dropped/.exec(document.body.textContent ?? '')?.[1];
    // Frames that ended after the first line was shown: the burst's, not the page's start.
    const frames = window.__frames.filter(([end]) => end > window.__firstRow).map(([, d]) => d);
    const startup = window.__frames.filter(([end]) => end <= window.__firstRow).map(([, d]) => d);
    return { startupLongest: Math.max(...startup), dropped, longTasks: window.__long, frames, rows: document.querySelectorAll('.log-row').length, atBottom: el ? el.scrollTop + el.clientHeight >= el.scrollHeight - 20 : false };
  });
  const sorted = [...frames].sort((a, b) => a - b);
  const long = frames.map((f, i) => [i, f]).filter(([, f]) => f > 34).map(([i, f]) => `#${i}: ${f.toFixed(0)} ms`);
  const p95 = sorted[Math.floor(sorted.length * 0.95)];
  console.log(`log view, ${LINES.toLocaleString()} lines at once: all shown in ${took} ms; frames ${frames.length}, longest ${Math.max(...frames).toFixed(1)} ms, p95 ${p95.toFixed(1)} ms; ${rows} rows in the DOM, "${dropped} earlier lines dropped"; following at the bottom: ${atBottom}; frames over 34 ms: ${long.join(', ') || 'none'}; tasks over 50 ms (any time): ${longTasks.join(', ') || 'none'}; the page's start before the first line: longest frame ${startupLongest.toFixed(0)} ms`);
  await done();
}
