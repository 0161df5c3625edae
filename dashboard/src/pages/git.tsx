// Settings → Git providers: the providers this control plane can connect (connecting leaves
// for the provider's authorize page, which sends the user back here saying how it went), the
// GitHub App (administrators create it through GitHub's manifest flow; users install it), the
// connected accounts, disconnecting one. Also the repository picker the new-app page uses: a
// connection's repositories, searched by name, a page at a time.

import { useState } from 'preact/hooks';
import { api, type GitConnection, type Provider, type Repo } from '../api/client';
import { Async, DataTable, Field, FormError } from '../components';
import { ago } from '../lib/format';
import { useResource, useSubmit } from '../hooks';
import { me, useStore } from '../store';

export const PROVIDER_NAMES: Record<Provider, string> = {
  github: 'GitHub',
  gitlab: 'GitLab',
  bitbucket: 'Bitbucket',
  gitea: 'Gitea',
  forgejo: 'Forgejo / Codeberg',
};

export function GitSettings() {
  const providers = useResource(() => api.gitProviders(), []);
  const githubApp = useResource(() => api.githubApp(), []);
  const user = useStore(me);
  const install = useSubmit(async () => {
    const { install_url } = await api.installGithubApp();
    window.location.assign(install_url);
  });
  const connections = useResource(() => api.gitConnections(), []);
  const query = new URLSearchParams(window.location.search);
  const [notice, setNotice] = useState<string | null>(null);
  const connect = useSubmit(async (provider: Provider) => {
    const { authorize_url } = await api.connectGit(provider);
    window.location.assign(authorize_url);
  });
  const disconnect = useSubmit(async (c: GitConnection) => {
    if (!confirm(`Disconnect ${PROVIDER_NAMES[c.provider]} (${c.account})? Apps made from its repositories stop deploying pushes.`)) return;
    const d = await api.disconnectGit(c.id);
    setNotice(
      `Disconnected ${c.account}; ${d.hooks_removed} webhook(s) removed.` +
        (d.revoked ? '' : ` ${PROVIDER_NAMES[c.provider]} cannot be asked to revoke the grant: remove WiseHosting under your account's authorized applications there.`),
    );
    connections.reload();
  });
  const connected = query.get('connected');
  const appCreated = query.get('app') === 'created';
  const failed = query.get('error');
  return (
    <>
      <h1>Git providers</h1>
      {connected && (
        <p class="notice" role="status">
          Connected {PROVIDER_NAMES[connected as Provider] ?? connected} as {query.get('account')}.
        </p>
      )}
      {appCreated && (
        <p class="notice" role="status">
          The GitHub App {query.get('slug')} exists: users can install it now.
        </p>
      )}
      {failed && (
        <p class="error" role="alert">
          Not connected: {failed}
        </p>
      )}
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <FormError error={connect.error ?? disconnect.error} />
      <h2>Connect</h2>
      <Async r={providers} what="the providers">
        {(ps) =>
          ps.length === 0 ? (
            <p class="empty">No git provider is configured on this control plane (see the README, "Git providers").</p>
          ) : (
            <ul class="plain">
              {ps.map((p) => (
                <li key={p.provider}>
                  <button type="button" class="primary" disabled={connect.busy} onClick={() => void connect.run(p.provider)}>
                    Connect {PROVIDER_NAMES[p.provider]}
                  </button>{' '}
                  <span class="muted small">{p.base_url}</span>
                </li>
              ))}
            </ul>
          )
        }
      </Async>
      <h2>GitHub App</h2>
      <Async r={githubApp} what="the GitHub App">
        {(a) =>
          a.slug ? (
            <p>
              <button type="button" class="primary" disabled={install.busy} onClick={() => void install.run()}>
                Install the GitHub App
              </button>{' '}
              <span class="muted small">
                {a.slug} on {a.base_url}: pick the account or organization and the repositories it may see; its tokens are minted per clone and never stored
              </span>
            </p>
          ) : user?.is_admin ? (
            <p>
              <a class="button primary" href="/api/v1/git/github-app/new">
                Create the GitHub App
              </a>{' '}
              <span class="muted small">once, through GitHub's manifest flow, on {a.base_url}</span>
            </p>
          ) : (
            <p class="empty">No GitHub App yet: an administrator creates it here.</p>
          )
        }
      </Async>
      <FormError error={install.error} />
      <h2>Connected accounts</h2>
      <Async r={connections} what="the connections">
        {(cs) =>
          cs.length === 0 ? (
            <p class="empty">Nothing connected yet.</p>
          ) : (
            <DataTable
              caption="Connected accounts"
              rows={cs}
              rowKey={(c) => c.id}
              columns={[
                { label: 'Provider', cell: (c) => PROVIDER_NAMES[c.provider] },
                { label: 'Account', cell: (c) => (c.installation_id ? `${c.account} (GitHub App)` : c.account) },
                { label: 'At', cell: (c) => <code class="value">{c.base_url}</code> },
                { label: 'Connected', cell: (c) => ago(c.created_at) },
                {
                  label: 'Actions',
                  hideLabel: true,
                  cell: (c) => (
                    <button type="button" class="small danger" aria-label={`Disconnect ${c.account} at ${PROVIDER_NAMES[c.provider]}`} onClick={() => void disconnect.run(c)}>
                      Disconnect
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

/** Picks a repository of one of the user's connections. */
export function RepoPicker(props: { onPick: (connection: GitConnection, repo: Repo) => void; picked?: string }) {
  const connections = useResource(() => api.gitConnections(), []);
  const [chosen, setChosen] = useState<number | null>(null);
  const [q, setQ] = useState('');
  const [page, setPage] = useState(1);
  const id = chosen ?? connections.data?.[0]?.id ?? null;
  const repos = useResource(() => (id === null ? Promise.resolve(null) : api.gitRepos(id, q, page)), [id, q, page]);
  const connection = connections.data?.find((c) => c.id === id);
  return (
    <Async r={connections} what="your git connections">
      {(cs) =>
        cs.length === 0 ? (
          <p class="empty">
            No git provider connected: <a href="/settings/git">connect one</a> first.
          </p>
        ) : (
          <fieldset class="picker">
            <legend>Repository</legend>
            <Field label="Account" name="connection">
              {(fid) => (
                <select id={fid} value={String(id)} onChange={(e) => (setChosen(Number(e.currentTarget.value)), setPage(1))}>
                  {cs.map((c) => (
                    <option key={c.id} value={String(c.id)}>
                      {PROVIDER_NAMES[c.provider]}: {c.account}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field label="Search repositories" name="q">
              {(fid) => <input id={fid} type="search" value={q} placeholder="name" onInput={(e) => (setQ(e.currentTarget.value), setPage(1))} />}
            </Field>
            <Async r={repos} what="the repositories">
              {(p) =>
                !p || p.repos.length === 0 ? (
                  <p class="empty">No repositories{q ? ` matching "${q}"` : ''} on this page.</p>
                ) : (
                  <>
                    <ul class="plain repos">
                      {p.repos.map((r) => (
                        <li key={r.full_name}>
                          <label>
                            <input type="radio" name="repo" checked={props.picked === `${connection?.provider}:${r.full_name}`} onChange={() => connection && props.onPick(connection, r)} /> {r.full_name}{' '}
                            <span class="muted small">
                              {r.private ? 'private' : 'public'}
                              {r.default_branch ? ` · ${r.default_branch}` : ''}
                            </span>
                          </label>
                        </li>
                      ))}
                    </ul>
                    <div class="actions">
                      <button type="button" class="small" disabled={page <= 1} onClick={() => setPage(page - 1)}>
                        Previous page
                      </button>
                      <button type="button" class="small" disabled={!p.more} onClick={() => setPage(page + 1)}>
                        Next page
                      </button>
                    </div>
                  </>
                )
              }
            </Async>
          </fieldset>
        )
      }
    </Async>
  );
}
