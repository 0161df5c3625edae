// The apps list (status, URL, last deploy) and the form that creates one.

import { useState } from 'preact/hooks';
import { Link, useLocation } from 'wouter-preact';
import { api, type NewApp } from '../api/client';
import { RepoPicker } from './git';
import { Async, Badge, DataTable, Field, FormError } from '../components';
import { ago } from '../lib/format';
import { useResource, useSubmit } from '../hooks';

export function Apps() {
  const apps = useResource(() => api.apps(), [], 10_000);
  return (
    <>
      <div class="title-row">
        <h1>Apps</h1>
        <Link href="/apps/new" class="button primary">
          New app
        </Link>
      </div>
      <Async r={apps} what="your apps">
        {(list) =>
          list.length === 0 ? (
            <p class="empty">
              No apps yet. <Link href="/apps/new">Create your first app</Link>.
            </p>
          ) : (
            <DataTable
              caption="Your apps"
              rows={list}
              rowKey={(a) => a.slug}
              columns={[
                {
                  label: 'App',
                  cell: (a) => (
                    <>
                      <Link href={`/apps/${a.slug}`}>{a.slug}</Link>
                      <div class="muted small">{a.repo_url || 'uploads'}</div>
                    </>
                  ),
                },
                { label: 'Status', cell: (a) => <Badge state={a.live_deployment_id ? 'live' : a.last_deployment_state ?? 'not deployed'} /> },
                {
                  label: 'URL',
                  cell: (a) => (
                    <a href={a.url} rel="noreferrer" target="_blank">
                      {a.url}
                    </a>
                  ),
                },
                {
                  label: 'Last deploy',
                  cell: (a) =>
                    a.last_deployment_id ? (
                      <Link href={`/deployments/${a.last_deployment_id}`}>
                        {a.last_deployment_state} · {ago(a.last_deployed_at)}
                      </Link>
                    ) : (
                      '—'
                    ),
                },
              ]}
            />
          )
        }
      </Async>
    </>
  );
}

const FIELDS = ['name', 'repo_url', 'repo', 'connection', 'branch', 'plan', 'port'];

type SourceKind = 'upload' | 'url' | 'provider';

export function NewAppPage() {
  const [, navigate] = useLocation();
  const plans = useResource(() => api.plans(), []);
  const [form, setForm] = useState({ name: '', repo_url: '', branch: 'main', plan: 'hobby', port: '8080' });
  const [kind, setKind] = useState<SourceKind>('upload');
  const [picked, setPicked] = useState<{ repo: string; connection: number } | null>(null);
  const set = (k: keyof typeof form) => (e: { currentTarget: HTMLInputElement | HTMLSelectElement }) =>
    setForm({ ...form, [k]: e.currentTarget.value });
  const submit = useSubmit(async () => {
    const body: NewApp = { name: form.name.trim(), port: Number(form.port), plan: form.plan };
    if (kind === 'url' && form.repo_url.trim()) {
      body.repo_url = form.repo_url.trim();
      body.branch = form.branch.trim() || null;
    }
    if (kind === 'provider' && picked) {
      body.repo = picked.repo;
      body.connection = picked.connection;
      body.branch = form.branch.trim() || null;
    }
    const app = await api.createApp(body);
    navigate(`/apps/${app.slug}`);
  });
  return (
    <>
      <p class="crumbs">
        <Link href="/apps">Apps</Link> / New
      </p>
      <h1>New app</h1>
      <form
        class="narrow"
        onSubmit={(e) => {
          e.preventDefault();
          void submit.run();
        }}
      >
        <Field label="Name" name="name" error={submit.error} hint="3 to 40 lowercase letters, digits and dashes; the app answers at <name>.route.<domain>">
          {(id, d, bad) => <input id={id} required value={form.name} aria-describedby={d} aria-invalid={bad} onInput={set('name')} />}
        </Field>
        <Field label="Source" name="source" error={submit.error}>
          {(id, d) => (
            <select id={id} value={kind} aria-describedby={d} onChange={(e) => setKind(e.currentTarget.value as SourceKind)}>
              <option value="upload">Uploads only (wh deploy)</option>
              <option value="url">A git repository URL</option>
              <option value="provider">A repository of a connected git provider</option>
            </select>
          )}
        </Field>
        {kind === 'url' && (
          <Field label="Git repository" name="repo_url" error={submit.error}>
            {(id, d, bad) => <input id={id} type="url" required placeholder="https://git.example.com/me/app.git" value={form.repo_url} aria-describedby={d} aria-invalid={bad} onInput={set('repo_url')} />}
          </Field>
        )}
        {kind === 'provider' && (
          <RepoPicker
            picked={picked?.repo}
            onPick={(c, r) => {
              setPicked({ repo: `${c.provider}:${r.full_name}`, connection: c.id });
              setForm({ ...form, branch: r.default_branch || 'main' });
            }}
          />
        )}
        {(kind === 'url' || (kind === 'provider' && picked)) && (
          <Field label="Branch" name="branch" error={submit.error}>
            {(id, d, bad) => <input id={id} value={form.branch} aria-describedby={d} aria-invalid={bad} onInput={set('branch')} />}
          </Field>
        )}
        <Field label="Plan" name="plan" error={submit.error}>
          {(id, d, bad) => (
            <select id={id} value={form.plan} aria-describedby={d} aria-invalid={bad} onChange={set('plan')}>
              {(plans.data ?? [{ name: 'hobby', cpu_millis: 500, memory_mb: 512, disk_mb: 2048 }]).map((p) => (
                <option key={p.name} value={p.name}>
                  {p.name}: {p.cpu_millis / 1000} CPU, {p.memory_mb} MB memory, {p.disk_mb} MB disk
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Port the app listens on" name="port" error={submit.error}>
          {(id, d, bad) => <input id={id} type="number" min={1} max={65535} required value={form.port} aria-describedby={d} aria-invalid={bad} onInput={set('port')} />}
        </Field>
        <FormError error={submit.error} fields={FIELDS} />
        <button type="submit" class="primary" disabled={submit.busy}>
          {submit.busy ? 'Creating…' : 'Create app'}
        </button>
      </form>
    </>
  );
}
