// The API client: every call of the dashboard goes through `api`, typed by the schemas
// generated from the control plane's OpenAPI document (schema.d.ts). It sends the session's
// CSRF token on changes, turns error answers into `ApiError` (with the field they name), and
// on a lost network shows the banner and retries reads until the control plane answers again.

import type { components } from './schema';
import { connection } from '../store';

export type Schemas = components['schemas'];
export type App = Schemas['App'];
export type Deployment = Schemas['Deployment'];
export type Domain = Schemas['Domain'];
export type Container = Schemas['Container'];
export type TokenInfo = Schemas['TokenInfo'];
export type CreatedToken = Schemas['CreatedToken'];
export type User = Schemas['User'];
export type SignedIn = Schemas['SignedIn'];
export type AuditEvent = Schemas['AuditEvent'];
export type WorkerView = Schemas['WorkerView'];
export type UserView = Schemas['UserView'];
export type Verification = Schemas['Verification'];
export type LogEntry = Schemas['Entry'];
export type NewApp = Schemas['NewApp'];
export type Provider = Schemas['Provider'];
export type HookView = Schemas['HookView'];
export type CreatedHook = Schemas['CreatedHook'];
export type GitProvider = Schemas['ProviderInfo'];
export type GitConnection = Schemas['ConnectionInfo'];
export type Repo = Schemas['Repo'];
export type RepoPage = Schemas['RepoPage'];
export type Target = Schemas['TargetView'];
export type Delivery = Schemas['DeliveryView'];
export type CreatedTarget = Schemas['CreatedTarget'];
export type TargetBase = '/api/v1/webhooks' | '/api/v1/notifications';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

let csrf: string | null = null;

export function setCsrf(token: string | null): void {
  csrf = token;
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface Options {
  body?: unknown;
  /** A raw body (an upload) with its content type. */
  raw?: { body: Blob; type: string };
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new DOMException('aborted', 'AbortError'));
    });
  });

/** The answer to `method path`: JSON, text for text answers, undefined for 204. */
export async function call(method: Method, path: string, opts: Options = {}): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  let body: BodyInit | undefined;
  if (opts.raw) {
    headers['content-type'] = opts.raw.type;
    body = opts.raw.body;
  } else if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  // Reads are retried while the network is down (with backoff up to 10 s); a change is not
  // (it may have happened): its caller shows the error.
  for (let attempt = 0; ; attempt++) {
    try {
      const resp = await fetch(path, { method, headers, body, credentials: 'same-origin', signal: opts.signal });
      if (resp.status >= 502 && resp.status <= 504 && method === 'GET') throw new TypeError(`control plane: ${resp.status}`);
      connection.set('ok');
      if (!resp.ok) throw await errorOf(resp);
      return resp;
    } catch (e) {
      if (!(e instanceof TypeError) || method !== 'GET') {
        if (e instanceof TypeError) connection.set('lost');
        throw e;
      }
      connection.set('lost');
      await sleep(Math.min(10_000, 500 * 2 ** attempt), opts.signal);
    }
  }
}

async function errorOf(resp: Response): Promise<ApiError> {
  try {
    const json = (await resp.json()) as Schemas['Error'];
    return new ApiError(resp.status, json.error.code, json.error.message, json.error.field ?? undefined);
  } catch {
    return new ApiError(resp.status, 'http', `${resp.status} ${resp.statusText}`);
  }
}

export async function json<T>(method: Method, path: string, opts: Options = {}): Promise<T> {
  const resp = await call(method, path, opts);
  if (resp.status === 204) return undefined as T;
  return (await resp.json()) as T;
}

const enc = encodeURIComponent;

/** The API by operation. */
export const api = {
  login: (email: string, password: string) => json<SignedIn>('POST', '/api/v1/auth/login', { body: { email, password } }),
  logout: () => json<void>('POST', '/api/v1/auth/logout'),
  session: () => json<SignedIn>('GET', '/api/v1/auth/session'),
  tokens: () => json<TokenInfo[]>('GET', '/api/v1/tokens'),
  createToken: (body: Schemas['NewToken']) => json<CreatedToken>('POST', '/api/v1/tokens', { body }),
  revokeToken: (id: number) => json<void>('DELETE', `/api/v1/tokens/${id}`),
  plans: () => json<Schemas['Plan'][]>('GET', '/api/v1/plans'),
  apps: () => json<App[]>('GET', '/api/v1/apps'),
  app: (slug: string) => json<App>('GET', `/api/v1/apps/${enc(slug)}`),
  createApp: (body: NewApp) => json<App>('POST', '/api/v1/apps', { body }),
  updateApp: (slug: string, body: Schemas['AppPatch']) => json<App>('PATCH', `/api/v1/apps/${enc(slug)}`, { body }),
  hooks: (slug: string) => json<HookView[]>('GET', `/api/v1/apps/${enc(slug)}/hooks`),
  createHook: (slug: string, provider: Provider) =>
    json<CreatedHook>('POST', `/api/v1/apps/${enc(slug)}/hooks`, { body: { provider } satisfies Schemas['NewHook'] }),
  removeHook: (slug: string, id: string) => json<void>('DELETE', `/api/v1/apps/${enc(slug)}/hooks/${enc(id)}`),
  usage: (slug: string, from: number, to: number, step: '5m' | '1h' | '1d') =>
    json<Schemas['AppUsage']>('GET', `/api/v1/apps/${enc(slug)}/usage?from=${from}&to=${to}&step=${step}`),
  alertRules: (slug: string) => json<Schemas['RuleView'][]>('GET', `/api/v1/apps/${enc(slug)}/alerts/rules`),
  setAlertRule: (slug: string, kind: string, body: Schemas['RulePatch']) =>
    json<Schemas['RuleView']>('PUT', `/api/v1/apps/${enc(slug)}/alerts/rules/${enc(kind)}`, { body }),
  muteAlertRule: (slug: string, kind: string, minutes: number) =>
    json<Schemas['RuleView']>('POST', `/api/v1/apps/${enc(slug)}/alerts/rules/${enc(kind)}/mute`, { body: { minutes } }),
  alerts: (slug: string) => json<Schemas['AlertView'][]>('GET', `/api/v1/apps/${enc(slug)}/alerts`),
  openAlerts: () => json<Schemas['AlertView'][]>('GET', '/api/v1/alerts'),
  targets: (base: TargetBase) => json<Target[]>('GET', base),
  addTarget: (base: TargetBase, body: Schemas['NewTargetBody']) => json<CreatedTarget>('POST', base, { body }),
  patchTarget: (base: TargetBase, id: number, body: Schemas['TargetPatch']) => json<Target>('PATCH', `${base}/${id}`, { body }),
  removeTarget: (base: TargetBase, id: number) => json<void>('DELETE', `${base}/${id}`),
  testTarget: (base: TargetBase, id: number) => json<Delivery>('POST', `${base}/${id}/test`),
  deliveries: (base: TargetBase, id: number) => json<Delivery[]>('GET', `${base}/${id}/deliveries`),
  rotateWebhook: (id: number) => json<Schemas['RotatedSecret']>('POST', `/api/v1/webhooks/${id}/rotate`),
  gitProviders: () => json<GitProvider[]>('GET', '/api/v1/git/providers'),
  connectGit: (provider: Provider) => json<Schemas['Authorize']>('POST', `/api/v1/git/${enc(provider)}/connect`),
  githubApp: () => json<Schemas['GithubAppInfo']>('GET', '/api/v1/git/github-app'),
  installGithubApp: () => json<Schemas['Install']>('POST', '/api/v1/git/github-app/install'),
  gitConnections: () => json<GitConnection[]>('GET', '/api/v1/git/connections'),
  disconnectGit: (id: number) => json<Schemas['Disconnected']>('DELETE', `/api/v1/git/connections/${id}`),
  gitRepos: (id: number, q: string, page: number) =>
    json<RepoPage>('GET', `/api/v1/git/connections/${id}/repos?q=${enc(q)}&page=${page}`),
  deleteApp: (slug: string) => json<void>('DELETE', `/api/v1/apps/${enc(slug)}`),
  env: (slug: string, reveal = false) =>
    json<Record<string, string>>('GET', `/api/v1/apps/${enc(slug)}/env${reveal ? '?reveal=true' : ''}`),
  replaceEnv: (slug: string, vars: Record<string, string>) =>
    json<void>('PUT', `/api/v1/apps/${enc(slug)}/env`, { body: { vars } satisfies Schemas['EnvReplace'] }),
  deployments: (slug: string) => json<Deployment[]>('GET', `/api/v1/apps/${enc(slug)}/deployments`),
  deploy: (slug: string, body: Schemas['NewDeployment']) =>
    json<Deployment>('POST', `/api/v1/apps/${enc(slug)}/deployments`, { body }),
  upload: (slug: string, archive: Blob) =>
    json<Deployment>('POST', `/api/v1/apps/${enc(slug)}/deployments`, { raw: { body: archive, type: 'application/gzip' } }),
  deployment: (id: number) => json<Deployment>('GET', `/api/v1/deployments/${id}`),
  cancel: (id: number) => json<Deployment>('POST', `/api/v1/deployments/${id}/cancel`),
  containers: (slug: string) => json<Container[]>('GET', `/api/v1/apps/${enc(slug)}/containers`),
  logs: (slug: string, lines: number) => json<LogEntry[]>('GET', `/api/v1/apps/${enc(slug)}/logs?lines=${lines}`),
  domains: (slug: string) => json<Domain[]>('GET', `/api/v1/apps/${enc(slug)}/domains`),
  addDomain: (slug: string, hostname: string) =>
    json<Domain>('POST', `/api/v1/apps/${enc(slug)}/domains`, { body: { hostname } satisfies Schemas['NewDomain'] }),
  removeDomain: (slug: string, hostname: string) =>
    json<void>('DELETE', `/api/v1/apps/${enc(slug)}/domains/${enc(hostname)}`),
  verifyDomain: (slug: string, hostname: string) =>
    json<Verification>('POST', `/api/v1/apps/${enc(slug)}/domains/${enc(hostname)}/verify`),
  audit: () => json<AuditEvent[]>('GET', '/api/v1/audit-events'),
  workers: () => json<WorkerView[]>('GET', '/api/v1/workers'),
  setWorker: (name: string, enabled: boolean) =>
    json<void>('POST', `/api/v1/workers/${enc(name)}/${enabled ? 'enable' : 'disable'}`),
  users: () => json<UserView[]>('GET', '/api/v1/users'),
};

/** The build log after byte `from`: its text, where to ask from next, and bytes no longer kept. */
export async function buildLog(id: number, from: number, signal?: AbortSignal): Promise<{ text: string; next: number; skipped: number }> {
  const resp = await call('GET', `/api/v1/deployments/${id}/build-log?from=${from}`, { signal });
  const text = await resp.text();
  return {
    text,
    next: Number(resp.headers.get('x-log-offset') ?? from + text.length),
    skipped: Number(resp.headers.get('x-log-skipped') ?? 0),
  };
}
