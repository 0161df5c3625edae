// An app's deployments: the list, a new deploy (a ref of the repository, an archive or a
// folder uploaded from this computer), and a redeploy or rollback of an earlier one.

import { useState } from 'preact/hooks';
import { Link, useLocation } from 'wouter-preact';
import { api, type Deployment } from '../api/client';
import { Async, Badge, DataTable, Field, FormError } from '../components';
import { AppTabs } from '../layout';
import { ago } from '../lib/format';
import { folderArchive } from '../lib/tar';
import { useResource, useSubmit } from '../hooks';

/** Deployments that once served (their image may still be on the worker). */
const ROLLBACK_FROM = new Set(['live', 'superseded']);

export function Deployments(props: { slug: string }) {
  const [, navigate] = useLocation();
  const app = useResource(() => api.app(props.slug), [props.slug]);
  const list = useResource(() => api.deployments(props.slug), [props.slug], 3_000);
  const [ref, setRef] = useState('');
  const go = (d: Deployment) => navigate(`/deployments/${d.id}`);
  const deploy = useSubmit(async () => go(await api.deploy(props.slug, ref.trim() ? { ref: ref.trim() } : {})));
  const upload = useSubmit(async (archive: Blob | Promise<Blob>) => go(await api.upload(props.slug, await archive)));
  const rollback = useSubmit(async (id: number) => go(await api.deploy(props.slug, { rollback_to: id })));
  return (
    <>
      <AppTabs slug={props.slug} />
      <h1>Deployments</h1>
      <section class="cards">
        {app.data?.repo_url ? (
          <form
            class="card"
            onSubmit={(e) => {
              e.preventDefault();
              void deploy.run();
            }}
          >
            <h2>Deploy from git</h2>
            <Field label="Branch, tag or commit" name="ref" error={deploy.error} hint={`Empty: ${app.data.branch}`}>
              {(id, d, bad) => <input id={id} value={ref} placeholder={app.data?.branch} aria-describedby={d} aria-invalid={bad} onInput={(e) => setRef(e.currentTarget.value)} />}
            </Field>
            <FormError error={deploy.error} fields={['ref']} />
            <button type="submit" class="primary" disabled={deploy.busy}>
              Deploy
            </button>
          </form>
        ) : null}
        <div class="card">
          <h2>Upload the source</h2>
          <Field label="A .tar.gz archive" name="source" error={upload.error} hint="tar czf source.tar.gz -C your-app .">
            {(id, d, bad) => (
              <input
                id={id}
                type="file"
                accept=".tar.gz,.tgz,application/gzip"
                aria-describedby={d}
                aria-invalid={bad}
                disabled={upload.busy}
                onChange={(e) => {
                  const f = e.currentTarget.files?.[0];
                  if (f) void upload.run(f);
                }}
              />
            )}
          </Field>
          <Field label="…or a folder" name="folder" error={upload.error}>
            {(id, d) => (
              <input
                id={id}
                type="file"
                // @ts-expect-error: a non-standard attribute every browser has
                webkitdirectory=""
                aria-describedby={d}
                disabled={upload.busy}
                onChange={(e) => {
                  const files = e.currentTarget.files;
                  if (files && files.length > 0) void upload.run(folderArchive(files));
                }}
              />
            )}
          </Field>
          {upload.busy && <p class="muted">Uploading…</p>}
          <FormError error={upload.error} fields={['source']} />
        </div>
      </section>
      <FormError error={rollback.error} />
      <Async r={list} what="the deployments">
        {(ds) =>
          ds.length === 0 ? (
            <p class="empty">No deployments yet.</p>
          ) : (
            <DataTable
              caption={`Deployments of ${props.slug}, newest first`}
              rows={ds}
              rowKey={(d) => d.id}
              columns={[
                { label: '#', cell: (d) => <Link href={`/deployments/${d.id}`}>#{d.id}</Link> },
                {
                  label: 'Source',
                  cell: (d) => (
                    <div>
                      <code>{d.git_ref}</code>
                      {d.rollback_of != null && <div class="small muted">again: #{d.rollback_of}</div>}
                      {d.error && <div class="small error-text">{d.error}</div>}
                    </div>
                  ),
                },
                { label: 'State', cell: (d) => <Badge state={d.state} /> },
                { label: 'Created', cell: (d) => ago(d.created_at) },
                {
                  label: 'Actions',
                  hideLabel: true,
                  cell: (d) =>
                    ROLLBACK_FROM.has(d.state) && (
                      <button type="button" class="small" disabled={rollback.busy} onClick={() => void rollback.run(d.id)}>
                        {d.state === 'live' ? 'Redeploy' : 'Roll back to this'}
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
