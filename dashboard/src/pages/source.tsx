// Where an app's code comes from: its repository and branch (changeable), whether pushed tags
// deploy, and its push-to-deploy webhooks: make one for a provider (its URL and secret are
// shown once, with where they go at the provider), see when each last delivered, remove one;
// preview deploys of pull requests on or off, and the variables only previews get.

import { useState } from 'preact/hooks';
import { api, type CreatedHook, type Provider } from '../api/client';
import { Async, Copy, DataTable, Field, FormError } from '../components';
import { AppTabs } from '../layout';
import { parse } from '../lib/dotenv';
import { ago } from '../lib/format';
import { useResource, useSubmit } from '../hooks';

const PROVIDERS: [Provider, string][] = [
  ['github', 'GitHub'],
  ['gitlab', 'GitLab'],
  ['bitbucket', 'Bitbucket'],
  ['gitea', 'Gitea'],
  ['forgejo', 'Forgejo / Codeberg'],
];

export function Source(props: { slug: string }) {
  const app = useResource(() => api.app(props.slug), [props.slug]);
  const hooks = useResource(() => api.hooks(props.slug), [props.slug], 15_000);
  const [form, setForm] = useState<{ repo_url: string; branch: string } | null>(null);
  const [provider, setProvider] = useState<Provider>('github');
  const [created, setCreated] = useState<CreatedHook | null>(null);
  const save = useSubmit(async () => {
    if (!form) return;
    app.set(await api.updateApp(props.slug, { repo_url: form.repo_url.trim(), branch: form.branch.trim() }));
    setForm(null);
  });
  const tags = useSubmit(async (on: boolean) => app.set(await api.updateApp(props.slug, { deploy_tags: on })));
  const auto = useSubmit(async (on: boolean) => app.set(await api.updateApp(props.slug, { auto_deploy: on })));
  const previews = useSubmit(async (on: boolean) => app.set(await api.updateApp(props.slug, { previews: on })));
  const [previewEnv, setPreviewEnv] = useState<string | null>(null);
  const savePreviewEnv = useSubmit(async () => {
    if (previewEnv === null) return;
    const parsed = parse(previewEnv);
    if (parsed.errors.length > 0) throw new Error(`line ${parsed.errors[0]!.line}: ${parsed.errors[0]!.message}`);
    app.set(await api.updateApp(props.slug, { preview_env: Object.fromEntries(parsed.vars) }));
    setPreviewEnv(null);
  });
  const [mono, setMono] = useState<{ root_dir: string; watch: string } | null>(null);
  const saveMono = useSubmit(async () => {
    if (!mono) return;
    const watch_paths = mono.watch
      .split(/[\n,]/)
      .map((p) => p.trim())
      .filter((p) => p !== '');
    app.set(await api.updateApp(props.slug, { root_dir: mono.root_dir.trim(), watch_paths }));
    setMono(null);
  });
  const create = useSubmit(async () => {
    setCreated(await api.createHook(props.slug, provider));
    hooks.reload();
  });
  const remove = useSubmit(async (id: string) => {
    if (!confirm('Remove this webhook? Pushes stop deploying until you add another.')) return;
    await api.removeHook(props.slug, id);
    hooks.reload();
  });
  return (
    <>
      <AppTabs slug={props.slug} />
      <h1>Source</h1>
      <Async r={app} what="the app">
        {(a) => (
          <section class="card">
            <h2>Repository</h2>
            {form ? (
              <form
                onSubmit={(e) => {
                  e.preventDefault();
                  void save.run();
                }}
              >
                <Field label="Git repository" name="repo_url" error={save.error}>
                  {(id, d, bad) => <input id={id} type="url" required value={form.repo_url} aria-describedby={d} aria-invalid={bad} onInput={(e) => setForm({ ...form, repo_url: e.currentTarget.value })} />}
                </Field>
                <Field label="Branch" name="branch" error={save.error}>
                  {(id, d, bad) => <input id={id} required value={form.branch} aria-describedby={d} aria-invalid={bad} onInput={(e) => setForm({ ...form, branch: e.currentTarget.value })} />}
                </Field>
                <FormError error={save.error} fields={['repo_url', 'branch']} />
                <div class="actions">
                  <button type="submit" class="primary" disabled={save.busy}>
                    Save
                  </button>
                  <button type="button" onClick={() => setForm(null)}>
                    Cancel
                  </button>
                </div>
              </form>
            ) : (
              <>
                <p>{a.repo ? `${a.repo} through your ${a.repo.split(':')[0]} connection (branch ${a.branch}); pushes deploy through the webhook registered there` : a.repo_url ? `${a.repo_url} (branch ${a.branch})` : 'None: this app deploys uploads.'}</p>
                <button type="button" onClick={() => setForm({ repo_url: a.repo_url, branch: a.branch })}>
                  {a.repo_url ? 'Change' : 'Connect a repository'}
                </button>
              </>
            )}
            <p>
              <label>
                <input type="checkbox" checked={a.auto_deploy} disabled={auto.busy} onChange={(e) => void auto.run(e.currentTarget.checked)} /> Pushes to {a.branch} deploy (auto-deploy)
              </label>
            </p>
            <FormError error={auto.error} />
            <p>
              <label>
                <input type="checkbox" checked={a.deploy_tags} disabled={tags.busy} onChange={(e) => void tags.run(e.currentTarget.checked)} /> Pushed tags deploy too
              </label>
            </p>
            <FormError error={tags.error} />
            <h2>Preview deploys</h2>
            {a.preview_of ? (
              <p>
                This app is a preview of a pull request into <a href={`/apps/${a.preview_of}/source`}>{a.preview_of}</a>; it goes when the request closes.
              </p>
            ) : (
              <>
                <p>
                  <label>
                    <input type="checkbox" checked={a.previews} disabled={previews.busy} onChange={(e) => void previews.run(e.currentTarget.checked)} /> Pull requests into {a.branch} deploy a preview at pr-&lt;number&gt;-{a.slug} (at most {a.max_previews} at once on this plan)
                  </label>
                </p>
                <FormError error={previews.error} />
                {previewEnv !== null ? (
                  <form
                    onSubmit={(e) => {
                      e.preventDefault();
                      void savePreviewEnv.run();
                    }}
                  >
                    <Field label="Variables only previews get (KEY=value lines; they replace the ones set before)" name="preview_env" error={savePreviewEnv.error}>
                      {(id, d, bad) => <textarea id={id} rows={4} value={previewEnv} aria-describedby={d} aria-invalid={bad} onInput={(e) => setPreviewEnv(e.currentTarget.value)} />}
                    </Field>
                    <FormError error={savePreviewEnv.error} fields={['preview_env']} />
                    <div class="actions">
                      <button type="submit" class="primary" disabled={savePreviewEnv.busy}>
                        Save
                      </button>
                      <button type="button" onClick={() => setPreviewEnv(null)}>
                        Cancel
                      </button>
                    </div>
                  </form>
                ) : (
                  <>
                    <p class="small">
                      Previews get the app's variables{a.preview_env_keys.length > 0 ? <>, with {a.preview_env_keys.map((k) => <code key={k}>{k} </code>)} over them</> : ''}.
                    </p>
                    <button type="button" onClick={() => setPreviewEnv('')}>
                      Set preview variables
                    </button>
                  </>
                )}
              </>
            )}
            <h2>Monorepo</h2>
            {mono ? (
              <form
                onSubmit={(e) => {
                  e.preventDefault();
                  void saveMono.run();
                }}
              >
                <Field label="Root directory (the build context)" name="root_dir" error={saveMono.error} hint="Empty: the repository's root">
                  {(id, d, bad) => <input id={id} value={mono.root_dir} placeholder="services/web" aria-describedby={d} aria-invalid={bad} onInput={(e) => setMono({ ...mono, root_dir: e.currentTarget.value })} />}
                </Field>
                <Field label="Watch paths, one per line" name="watch_paths" error={saveMono.error} hint="A push deploys only when it changes one of these (a file, or a directory ending in /); empty: any change">
                  {(id, d, bad) => <textarea id={id} rows={4} value={mono.watch} aria-describedby={d} aria-invalid={bad} onInput={(e) => setMono({ ...mono, watch: e.currentTarget.value })} />}
                </Field>
                <FormError error={saveMono.error} fields={['root_dir', 'watch_paths']} />
                <div class="actions">
                  <button type="submit" class="primary" disabled={saveMono.busy}>
                    Save
                  </button>
                  <button type="button" onClick={() => setMono(null)}>
                    Cancel
                  </button>
                </div>
              </form>
            ) : (
              <>
                <p class="small">
                  Builds {a.root_dir ? <code>{a.root_dir}</code> : 'the whole repository'}; {a.watch_paths.length > 0 ? <>deploys when a push changes {a.watch_paths.map((p) => <code key={p}>{p} </code>)}</> : 'deploys on any change'}.
                </p>
                <button type="button" onClick={() => setMono({ root_dir: a.root_dir, watch: a.watch_paths.join('\n') })}>
                  Change
                </button>
              </>
            )}
          </section>
        )}
      </Async>
      <h2>Push to deploy</h2>
      <p class="muted">
        A webhook at your git host deploys every push to the branch, exactly the pushed commit. Make one here, then add its URL and secret at the provider.
      </p>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <Field label="Provider" name="provider" error={create.error}>
          {(id, d, bad) => (
            <select id={id} value={provider} aria-describedby={d} aria-invalid={bad} onChange={(e) => setProvider(e.currentTarget.value as Provider)}>
              {PROVIDERS.map(([p, label]) => (
                <option key={p} value={p}>
                  {label}
                </option>
              ))}
            </select>
          )}
        </Field>
        <button type="submit" class="primary" disabled={create.busy}>
          Make a webhook
        </button>
      </form>
      <FormError error={create.error} fields={['provider']} />
      {created && (
        <div class="notice" role="status">
          <p>
            <strong>Add this webhook at {PROVIDERS.find(([p]) => p === created.provider)?.[1]}</strong>: {created.setup}. The secret is shown only once.
          </p>
          <p>
            URL: <code class="value">{created.url ?? created.path}</code> <Copy text={created.url ?? created.path} label="Copy the webhook URL" />
          </p>
          <p>
            Secret: <code class="secret">{created.secret}</code> <Copy text={created.secret} label="Copy the webhook secret" />
          </p>
          <button type="button" class="small" onClick={() => setCreated(null)}>
            Done
          </button>
        </div>
      )}
      <FormError error={remove.error} />
      <Async r={hooks} what="the webhooks">
        {(hs) =>
          hs.length === 0 ? (
            <p class="empty">No webhooks: pushes do not deploy yet.</p>
          ) : (
            <DataTable
              caption="Webhooks"
              rows={hs}
              rowKey={(h) => h.id}
              columns={[
                { label: 'Provider', cell: (h) => PROVIDERS.find(([p]) => p === h.provider)?.[1] ?? h.provider },
                { label: 'Path', cell: (h) => <code class="value">{h.path}</code> },
                { label: 'Made', cell: (h) => ago(h.created_at) },
                { label: 'Last delivery', cell: (h) => (h.last_delivery_at ? ago(h.last_delivery_at) : 'never') },
                {
                  label: 'Actions',
                  hideLabel: true,
                  cell: (h) => (
                    <button type="button" class="small danger" aria-label={`Remove the ${h.provider} webhook`} onClick={() => void remove.run(h.id)}>
                      Remove
                    </button>
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
