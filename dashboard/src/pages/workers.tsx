// Administrators: the workers, their connection, utilisation and last heartbeat; disable one
// to place no new apps on it.

import { api } from '../api/client';
import { Async, Badge, DataTable, FormError } from '../components';
import { useResource, useSubmit } from '../hooks';

export function Workers() {
  const list = useResource(() => api.workers(), [], 5_000);
  const toggle = useSubmit(async (name: string, enabled: boolean) => {
    await api.setWorker(name, enabled);
    list.reload();
  });
  return (
    <>
      <h1>Workers</h1>
      <FormError error={toggle.error} />
      <Async r={list} what="the workers">
        {(ws) =>
          ws.length === 0 ? (
            <p class="empty">No workers registered. Add one with: wh-control-plane workers create NAME MESH_IP</p>
          ) : (
            <DataTable
              caption="Workers"
              rows={ws}
              rowKey={(w) => w.id}
              columns={[
                {
                  label: 'Worker',
                  cell: (w) => (
                    <>
                      {w.name}
                      <div class="muted small">{w.mesh_ip}</div>
                    </>
                  ),
                },
                {
                  label: 'Status',
                  cell: (w) => (
                    <>
                      <Badge state={w.connected ? 'running' : 'offline'} /> {!w.enabled && <Badge state="disabled" />}
                    </>
                  ),
                },
                { label: 'CPU', cell: (w) => (w.cpu == null ? '—' : `${w.cpu.toFixed(0)} %`) },
                { label: 'Memory', cell: (w) => (w.memory_used_mb == null ? '—' : `${w.memory_used_mb} / ${w.memory_total_mb} MB`) },
                { label: 'Apps', cell: (w) => w.running_apps },
                { label: 'Last heartbeat', cell: (w) => (w.last_seen_secs_ago == null ? 'never' : `${w.last_seen_secs_ago}s ago`) },
                {
                  label: 'Actions',
                  hideLabel: true,
                  cell: (w) => (
                    <button type="button" class="small" disabled={toggle.busy} aria-label={`${w.enabled ? 'Disable' : 'Enable'} ${w.name}`} onClick={() => void toggle.run(w.name, !w.enabled)}>
                      {w.enabled ? 'Disable' : 'Enable'}
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
