// Signed webhooks and notification channels: add one (for all apps or one, choosing its
// events), see its state (a target disabled after 410 or days of failures says why), send a
// test through the real delivery path, read its deliveries with every attempt's status and
// answer, rotate a webhook's secret (shown once, like the first), re-enable or remove it.

import { useState } from 'preact/hooks';
import { api, type Delivery, type Target, type TargetBase } from '../api/client';
import { Async, Badge, Copy, DataTable, Field, FormError } from '../components';
import { ago } from '../lib/format';
import { outcome } from '../lib/delivery';
import { useResource, useSubmit } from '../hooks';

const EVENTS = [
  'deployment.started',
  'deployment.succeeded',
  'deployment.failed',
  'app.crashed',
  'alert.fired',
  'alert.resolved',
  'domain.verified',
  'certificate.issued',
  'certificate.failed',
];

function Section(props: { base: TargetBase; title: string; placeholder: string; help: string }) {
  const list = useResource(() => api.targets(props.base), [props.base], 30_000);
  const apps = useResource(() => api.apps(), []);
  const [url, setUrl] = useState('');
  const [app, setApp] = useState('');
  const [events, setEvents] = useState<string[]>([]);
  const [secret, setSecret] = useState<{ what: string; secret: string } | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const [tested, setTested] = useState<{ id: number; delivery: Delivery } | null>(null);
  const add = useSubmit(async () => {
    const created = await api.addTarget(props.base, { url: url.trim(), app: app || null, events });
    if (created.secret) setSecret({ what: created.target.display, secret: created.secret });
    setUrl('');
    setEvents([]);
    list.reload();
  });
  const act = useSubmit(async (t: Target, action: 'test' | 'enable' | 'remove' | 'rotate') => {
    if (action === 'test') setTested({ id: t.id, delivery: await api.testTarget(props.base, t.id) });
    if (action === 'enable') await api.patchTarget(props.base, t.id, { enabled: true });
    if (action === 'remove') {
      if (!confirm(`Remove ${t.display}? Nothing more is sent there.`)) return;
      await api.removeTarget(props.base, t.id);
    }
    if (action === 'rotate') {
      const r = await api.rotateWebhook(t.id);
      setSecret({ what: `${t.display} (the previous secret also signs until ${r.previous_valid_until ?? 'now'})`, secret: r.secret });
    }
    list.reload();
  });
  const toggle = (e: string) => setEvents(events.includes(e) ? events.filter((x) => x !== e) : [...events, e]);
  const slug = props.base.split('/').pop();
  return (
    <section aria-labelledby={`${slug}-title`}>
      <h2 id={`${slug}-title`}>{props.title}</h2>
      <p class="muted">{props.help}</p>
      <form
        class="stack-form"
        onSubmit={(e) => {
          e.preventDefault();
          void add.run();
        }}
      >
        <Field label="URL" name="url" error={add.error}>
          {(id, d, bad) => <input id={id} required maxLength={2048} value={url} placeholder={props.placeholder} aria-describedby={d} aria-invalid={bad} onInput={(e) => setUrl(e.currentTarget.value)} />}
        </Field>
        <Field label="Apps" name="app" error={add.error}>
          {(id, d, bad) => (
            <select id={id} value={app} aria-describedby={d} aria-invalid={bad} onChange={(e) => setApp(e.currentTarget.value)}>
              <option value="">All my apps</option>
              {(apps.data ?? []).map((a) => (
                <option value={a.slug}>{a.slug}</option>
              ))}
            </select>
          )}
        </Field>
        <fieldset class="events">
          <legend>Events (none ticked: all)</legend>
          {EVENTS.map((e) => (
            <label>
              <input type="checkbox" checked={events.includes(e)} onChange={() => toggle(e)} /> {e}
            </label>
          ))}
        </fieldset>
        <button type="submit" class="primary" disabled={add.busy}>
          Add
        </button>
      </form>
      <FormError error={add.error} fields={['url', 'app', 'events']} />
      {secret && (
        <div class="notice" role="status">
          <p>
            Signing secret for <strong>{secret.what}</strong>: copy it now, it is shown only once.
          </p>
          <p>
            <code class="secret">{secret.secret}</code> <Copy text={secret.secret} label="Copy the signing secret" />
          </p>
          <button type="button" class="small" onClick={() => setSecret(null)}>
            Done
          </button>
        </div>
      )}
      <FormError error={act.error} />
      {tested && (
        <p class="notice" role="status">
          Test {tested.delivery.state === 'succeeded' ? 'delivered' : 'not delivered'}: {outcome(tested.delivery)}
        </p>
      )}
      <Async r={list} what={props.title.toLowerCase()}>
        {(ts) =>
          ts.length === 0 ? (
            <p class="empty">None yet.</p>
          ) : (
            <DataTable
              caption={props.title}
              rows={ts}
              rowKey={(t) => t.id}
              columns={[
                { label: 'Target', cell: (t) => <code>{t.display}</code> },
                { label: 'Apps', cell: (t) => t.app ?? 'all' },
                { label: 'Events', cell: (t) => (t.events.length === EVENTS.length ? 'all' : t.events.join(', ')) },
                {
                  label: 'State',
                  cell: (t) =>
                    t.enabled ? (
                      <>
                        <Badge state="enabled" />
                        {t.consecutive_failures > 0 && <span class="muted"> {t.consecutive_failures} failed in a row</span>}
                      </>
                    ) : (
                      <>
                        <Badge state="disabled" /> <span class="muted">{t.disabled_reason}</span>
                      </>
                    ),
                },
                {
                  label: 'Actions',
                  hideLabel: true,
                  cell: (t) => (
                    <span class="actions">
                      {t.enabled ? (
                        <button type="button" class="small" aria-label={`Send a test to ${t.display}`} disabled={act.busy} onClick={() => void act.run(t, 'test')}>
                          Send test
                        </button>
                      ) : (
                        <button type="button" class="small" aria-label={`Enable ${t.display}`} onClick={() => void act.run(t, 'enable')}>
                          Enable
                        </button>
                      )}
                      <button type="button" class="small" aria-expanded={open === t.id} onClick={() => setOpen(open === t.id ? null : t.id)}>
                        Deliveries
                      </button>
                      {t.kind === 'webhook' && (
                        <button type="button" class="small" aria-label={`Rotate the secret of ${t.display}`} onClick={() => void act.run(t, 'rotate')}>
                          Rotate secret
                        </button>
                      )}
                      <button type="button" class="small danger" aria-label={`Remove ${t.display}`} onClick={() => void act.run(t, 'remove')}>
                        Remove
                      </button>
                    </span>
                  ),
                },
              ]}
            />
          )
        }
      </Async>
      {open !== null && <Deliveries base={props.base} id={open} key={`${open}-${tested?.delivery.id ?? 0}`} />}
    </section>
  );
}

function Deliveries(props: { base: TargetBase; id: number }) {
  const list = useResource(() => api.deliveries(props.base, props.id), [props.base, props.id], 10_000);
  return (
    <Async r={list} what="the deliveries">
      {(ds) =>
        ds.length === 0 ? (
          <p class="empty">Nothing delivered yet.</p>
        ) : (
          <DataTable
            caption="Latest deliveries"
            rows={ds}
            rowKey={(d) => d.id}
            columns={[
              { label: 'Event', cell: (d) => d.event_type },
              { label: 'When', cell: (d) => ago(d.created_at) },
              { label: 'State', cell: (d) => <Badge state={d.state} /> },
              { label: 'Attempts', cell: (d) => String(d.attempts) },
              { label: 'Last attempt', cell: (d) => outcome(d) },
              { label: 'Next attempt', cell: (d) => (d.next_attempt_at ? ago(d.next_attempt_at) : '') },
              {
                label: 'Answers',
                cell: (d) => (
                  <details>
                    <summary>{d.tries.length} attempt{d.tries.length === 1 ? '' : 's'}</summary>
                    <ol>
                      {d.tries.map((a) => (
                        <li>
                          {a.started_at}: {a.status != null ? `HTTP ${a.status}` : a.error}
                          {a.response ? <pre class="response">{a.response.slice(0, 2000)}</pre> : null}
                        </li>
                      ))}
                    </ol>
                  </details>
                ),
              },
            ]}
          />
        )
      }
    </Async>
  );
}

export function Notifications() {
  return (
    <>
      <h1>Notifications</h1>
      <Section
        base="/api/v1/webhooks"
        title="Webhooks"
        placeholder="https://example.com/hooks/wisehosting"
        help="Signed with Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature); failed deliveries are retried for about a day."
      />
      <Section
        base="/api/v1/notifications"
        title="Channels"
        placeholder="discord://token@webhookid"
        help="Shoutrrr URLs: discord, slack, telegram, ntfy, gotify, pushover, matrix, teams, googlechat, mattermost, rocketchat, zulip, smtp, ifttt, join, opsgenie, pushbullet, bark, generic, pagerduty, lark, wecom."
      />
    </>
  );
}
