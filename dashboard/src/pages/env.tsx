// Environment variables: a table with masked values (reveal and copy per row) and a bulk
// `.env` editor. Values leave the control plane only when asked for (a reveal, a copy, the
// editor). "Unsaved" shows only when the text's variables differ from the server's; saving
// replaces the whole set at once; changes apply on the next deploy.

import { useMemo, useState } from 'preact/hooks';
import { useLocation } from 'wouter-preact';
import { api } from '../api/client';
import { Async, Copy, DataTable, FormError, fieldError } from '../components';
import { AppTabs } from '../layout';
import { diff, parse, sameVars, serialize, type Parsed } from '../lib/dotenv';
import { useResource, useSubmit } from '../hooks';

export function Env(props: { slug: string }) {
  const [, navigate] = useLocation();
  // Names only (values masked) until something needs the values.
  const names = useResource(() => api.env(props.slug, false), [props.slug]);
  const app = useResource(() => api.app(props.slug), [props.slug]);
  const [plain, setPlain] = useState<Record<string, string> | null>(null);
  const [revealed, setRevealed] = useState<Set<string>>(new Set());
  const [text, setText] = useState<string | null>(null);
  const [editing, setEditing] = useState(false);
  const [kept, setKept] = useState<Parsed | undefined>(undefined);
  const [saved, setSaved] = useState(false);
  // The values, fetched the first time something needs them.
  const valuesOf = async (): Promise<Record<string, string>> => {
    if (plain) return plain;
    const v = await api.env(props.slug, true);
    setPlain(v);
    return v;
  };
  const values = useSubmit(async () => {
    await valuesOf();
  });
  const server = useMemo(() => new Map(Object.entries(plain ?? {})), [plain]);
  const parsed = useMemo(() => (text === null ? null : parse(text)), [text]);
  const unsaved = parsed !== null && !sameVars(parsed.vars, server);
  const changes = parsed ? diff(server, parsed.vars) : { set: [], removed: [] };
  const save = useSubmit(async () => {
    if (!parsed || parsed.errors.length > 0) return;
    const next = Object.fromEntries(parsed.vars);
    await api.replaceEnv(props.slug, next);
    setKept(parsed);
    setPlain(next);
    names.reload();
    setSaved(true);
  });
  const redeploy = useSubmit(async () => {
    const a = app.data;
    if (!a) return;
    const d = a.live_deployment_id ? await api.deploy(props.slug, { rollback_to: a.live_deployment_id }) : await api.deploy(props.slug, {});
    navigate(`/deployments/${d.id}`);
  });
  const toggle = async (k: string) => {
    await values.run();
    const next = new Set(revealed);
    if (next.has(k)) next.delete(k);
    else next.add(k);
    setRevealed(next);
  };
  return (
    <>
      <AppTabs slug={props.slug} />
      <h1>Environment</h1>
      <Async r={names} what="the variables">
        {(v) => (
          <>
            {Object.keys(v).length === 0 ? (
              <p class="empty">No variables yet. Add them in the editor below.</p>
            ) : (
              <DataTable
                caption="Environment variables"
                rows={Object.keys(v)}
                rowKey={(k) => k}
                columns={[
                  { label: 'Name', cell: (k) => <code>{k}</code> },
                  { label: 'Value', cell: (k) => <code class="value">{revealed.has(k) && plain ? plain[k] : '••••••••'}</code> },
                  {
                    label: 'Actions',
                    hideLabel: true,
                    class: 'actions',
                    cell: (k) => (
                      <>
                        <button type="button" class="small" aria-pressed={revealed.has(k)} aria-label={`${revealed.has(k) ? 'Hide' : 'Reveal'} ${k}`} onClick={() => void toggle(k)}>
                          {revealed.has(k) ? 'Hide' : 'Reveal'}
                        </button>
                        <Copy text={async () => (await valuesOf())[k] ?? ''} label={`Copy the value of ${k}`} />
                      </>
                    ),
                  },
                ]}
              />
            )}
            <FormError error={values.error} />
            {!editing ? (
              <p>
                <button
                  type="button"
                  onClick={async () => {
                    await values.run();
                    setEditing(true);
                  }}
                >
                  Edit as .env
                </button>
              </p>
            ) : (
              plain && (
                <>
                  <h2>
                    <label for="env-editor">Variables as .env</label>
                  </h2>
                  <textarea
                    id="env-editor"
                    class="editor"
                    rows={12}
                    spellcheck={false}
                    aria-describedby="env-editor-help"
                    value={text ?? serialize(server, kept)}
                    onInput={(e) => {
                      setSaved(false);
                      setText(e.currentTarget.value);
                    }}
                  />
                  <p id="env-editor-help" class="muted small">
                    KEY=value per line; # comments and blank lines are kept while you edit; "double" or 'single' quotes for values with spaces or #.
                  </p>
                  {parsed?.errors.map((e) => (
                    <p key={e.line} class="field-error" role="alert">
                      Line {e.line}: {e.message}
                    </p>
                  ))}
                  {fieldError(save.error, 'vars') && (
                    <p class="field-error" role="alert">
                      {fieldError(save.error, 'vars')}
                    </p>
                  )}
                  <FormError error={save.error} fields={['vars']} />
                  <div class="actions">
                    <button type="button" class="primary" disabled={!unsaved || save.busy || (parsed?.errors.length ?? 0) > 0} onClick={() => void save.run()}>
                      Save
                    </button>
                    {unsaved && (
                      <span class="badge warn" role="status">
                        Unsaved: {changes.set.length} to set, {changes.removed.length} to remove
                      </span>
                    )}
                    {text !== null && (
                      <button
                        type="button"
                        onClick={() => {
                          setText(null);
                          setSaved(false);
                        }}
                      >
                        Discard
                      </button>
                    )}
                  </div>
                </>
              )
            )}
            {saved && (
              <p class="notice" role="status">
                Saved. Variables apply on the next deploy.{' '}
                <button type="button" class="small primary" disabled={redeploy.busy} onClick={() => void redeploy.run()}>
                  Redeploy now
                </button>
              </p>
            )}
            <FormError error={redeploy.error} />
          </>
        )}
      </Async>
    </>
  );
}
