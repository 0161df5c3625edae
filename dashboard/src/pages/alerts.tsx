// An app's alerts: its rules with their state (inactive, pending, firing), each one's threshold
// and `for` changeable, on or off, muted for an hour; and the history of what fired, with the
// value, when, for how long, and whether it was held back.

import { useState } from 'preact/hooks';
import { api, type Schemas } from '../api/client';
import { Async, Badge, DataTable, FormError } from '../components';
import { AppTabs } from '../layout';
import { ago } from '../lib/format';
import { useResource, useSubmit } from '../hooks';

type Rule = Schemas['RuleView'];

const UNIT: Record<string, string> = {
  cpu: '% of the limit',
  memory: '% of the limit',
  disk: '% of the quota',
  network: 'bytes/s',
  crashloop: 'restarts in 10 min',
  offline: '',
  deployment_failed: '',
};

function seconds(s: number): string {
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function Alerts(props: { slug: string }) {
  const rules = useResource(() => api.alertRules(props.slug), [props.slug], 30_000);
  const history = useResource(() => api.alerts(props.slug), [props.slug], 30_000);
  const [editing, setEditing] = useState<{ kind: string; threshold: string; for_secs: string } | null>(null);
  const save = useSubmit(async () => {
    if (!editing) return;
    await api.setAlertRule(props.slug, editing.kind, { threshold: Number(editing.threshold), for_secs: Number(editing.for_secs) });
    setEditing(null);
    rules.reload();
  });
  const toggle = useSubmit(async (r: Rule) => {
    await api.setAlertRule(props.slug, r.kind, { enabled: !r.enabled });
    rules.reload();
  });
  const mute = useSubmit(async (r: Rule) => {
    await api.muteAlertRule(props.slug, r.kind, r.muted_until ? 0 : 60);
    rules.reload();
  });
  return (
    <>
      <AppTabs slug={props.slug} />
      <h1>Alerts</h1>
      <FormError error={save.error ?? toggle.error ?? mute.error} fields={['threshold', 'for_secs']} />
      <Async r={rules} what="the rules">
        {(rs) => (
          <DataTable
            caption="Rules"
            rows={rs}
            rowKey={(r) => r.kind}
            columns={[
              { label: 'Rule', cell: (r) => r.kind.replace('_', ' ') },
              { label: 'State', cell: (r) => <Badge state={r.enabled ? r.state : 'off'} /> },
              {
                label: 'Fires when',
                cell: (r) =>
                  editing?.kind === r.kind ? (
                    <form
                      class="inline-form"
                      onSubmit={(e) => {
                        e.preventDefault();
                        void save.run();
                      }}
                    >
                      <label>
                        Threshold <input aria-label={`Threshold of ${r.kind}`} type="number" min={0} step="any" value={editing.threshold} onInput={(e) => setEditing({ ...editing, threshold: e.currentTarget.value })} />
                      </label>
                      <label>
                        for (s) <input aria-label={`For of ${r.kind}`} type="number" min={0} step={30} value={editing.for_secs} onInput={(e) => setEditing({ ...editing, for_secs: e.currentTarget.value })} />
                      </label>
                      <button type="submit" class="small primary" disabled={save.busy}>
                        Save
                      </button>
                      <button type="button" class="small" onClick={() => setEditing(null)}>
                        Cancel
                      </button>
                    </form>
                  ) : UNIT[r.kind] ? (
                    <>
                      over {r.threshold} {UNIT[r.kind]} for {seconds(r.for_secs)}
                    </>
                  ) : (
                    <>for {seconds(r.for_secs)}</>
                  ),
              },
              { label: 'Last value', cell: (r) => (r.last_value === null || r.last_value === undefined ? '—' : r.last_value.toFixed(1)) },
              { label: 'Muted', cell: (r) => (r.muted_until ? `until ${new Date(r.muted_until).toLocaleTimeString()}` : 'no') },
              {
                label: 'Actions',
                hideLabel: true,
                cell: (r) => (
                  <span class="actions">
                    <button type="button" class="small" aria-label={`Change ${r.kind}`} onClick={() => setEditing({ kind: r.kind, threshold: String(r.threshold), for_secs: String(r.for_secs) })}>
                      Change
                    </button>
                    <button type="button" class="small" aria-label={`${r.enabled ? 'Turn off' : 'Turn on'} ${r.kind}`} onClick={() => void toggle.run(r)}>
                      {r.enabled ? 'Turn off' : 'Turn on'}
                    </button>
                    <button type="button" class="small" aria-label={`${r.muted_until ? 'Unmute' : 'Mute'} ${r.kind}`} onClick={() => void mute.run(r)}>
                      {r.muted_until ? 'Unmute' : 'Mute 1 h'}
                    </button>
                  </span>
                ),
              },
            ]}
          />
        )}
      </Async>
      <h2>History</h2>
      <Async r={history} what="the alerts">
        {(as) =>
          as.length === 0 ? (
            <p class="empty">Nothing has fired.</p>
          ) : (
            <DataTable
              caption="Alerts"
              rows={as}
              rowKey={(a) => a.id}
              columns={[
                { label: 'Rule', cell: (a) => a.kind.replace('_', ' ') },
                { label: 'State', cell: (a) => <Badge state={a.resolved_at ? 'resolved' : 'firing'} /> },
                { label: 'Value', cell: (a) => `${a.value.toFixed(1)} (threshold ${a.threshold})` },
                { label: 'Started', cell: (a) => ago(a.started_at) },
                { label: 'Lasted', cell: (a) => seconds(a.duration_secs) },
                { label: 'Notified', cell: (a) => (a.held_back ? 'held back' : 'yes') },
              ]}
            />
          )
        }
      </Async>
    </>
  );
}
