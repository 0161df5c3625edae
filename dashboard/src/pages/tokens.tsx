// Personal API tokens (for the CLI and scripts): create one (its secret is shown once), list
// them, revoke one.

import { useState } from 'preact/hooks';
import { api, type CreatedToken } from '../api/client';
import { Async, Copy, DataTable, Field, FormError } from '../components';
import { ago } from '../lib/format';
import { useResource, useSubmit } from '../hooks';

export function Tokens() {
  const list = useResource(() => api.tokens(), []);
  const [name, setName] = useState('');
  const [days, setDays] = useState('90');
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const create = useSubmit(async () => {
    const t = await api.createToken({ name: name.trim(), expires_in_days: days ? Number(days) : null });
    setCreated(t);
    setName('');
    list.reload();
  });
  const revoke = useSubmit(async (id: number, tokenName: string) => {
    if (!confirm(`Revoke the token "${tokenName}"? Whatever uses it stops working at once.`)) return;
    await api.revokeToken(id);
    list.reload();
  });
  return (
    <>
      <h1>API tokens</h1>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <Field label="Name" name="name" error={create.error}>
          {(id, d, bad) => <input id={id} required maxLength={100} value={name} placeholder="laptop CLI" aria-describedby={d} aria-invalid={bad} onInput={(e) => setName(e.currentTarget.value)} />}
        </Field>
        <Field label="Expires after (days)" name="expires_in_days" error={create.error}>
          {(id, d, bad) => (
            <select id={id} value={days} aria-describedby={d} aria-invalid={bad} onChange={(e) => setDays(e.currentTarget.value)}>
              <option value="30">30</option>
              <option value="90">90</option>
              <option value="365">365</option>
              <option value="">never</option>
            </select>
          )}
        </Field>
        <button type="submit" class="primary" disabled={create.busy}>
          Create token
        </button>
      </form>
      <FormError error={create.error} fields={['name', 'expires_in_days']} />
      {created && (
        <div class="notice" role="status">
          <p>
            <strong>{created.name}</strong>: copy it now, it is shown only once.
          </p>
          <p>
            <code class="secret">{created.token}</code> <Copy text={created.token} label="Copy the new token" />
          </p>
          <button type="button" class="small" onClick={() => setCreated(null)}>
            Done
          </button>
        </div>
      )}
      <FormError error={revoke.error} />
      <Async r={list} what="your tokens">
        {(ts) =>
          ts.length === 0 ? (
            <p class="empty">No tokens. The CLI signs in with one: wh login.</p>
          ) : (
            <DataTable
              caption="Your API tokens"
              rows={ts}
              rowKey={(t) => t.id}
              columns={[
                { label: 'Name', cell: (t) => t.name },
                { label: 'Created', cell: (t) => ago(t.created_at) },
                { label: 'Last used', cell: (t) => ago(t.last_used_at) },
                { label: 'Expires', cell: (t) => (t.expires_at ? t.expires_at.slice(0, 10) : 'never') },
                {
                  label: 'Actions',
                  hideLabel: true,
                  cell: (t) => (
                    <button type="button" class="small danger" aria-label={`Revoke ${t.name}`} onClick={() => void revoke.run(t.id, t.name)}>
                      Revoke
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
