// Administrators: the workers, their connection, utilisation and last heartbeat; disable one
// to place no new apps on it.

import { api } from '../api/client';
import { Async, Badge, FormError } from '../components';
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
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Worker</th>
                    <th scope="col">Status</th>
                    <th scope="col">CPU</th>
                    <th scope="col">Memory</th>
                    <th scope="col">Apps</th>
                    <th scope="col">Last heartbeat</th>
                    <th scope="col">
                      <span class="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {ws.map((w) => (
                    <tr key={w.id}>
                      <td>
                        {w.name}
                        <div class="muted small">{w.mesh_ip}</div>
                      </td>
                      <td>
                        <Badge state={w.connected ? 'running' : 'offline'} /> {!w.enabled && <Badge state="disabled" />}
                      </td>
                      <td>{w.cpu == null ? '—' : `${w.cpu.toFixed(0)} %`}</td>
                      <td>{w.memory_used_mb == null ? '—' : `${w.memory_used_mb} / ${w.memory_total_mb} MB`}</td>
                      <td>{w.running_apps}</td>
                      <td>{w.last_seen_secs_ago == null ? 'never' : `${w.last_seen_secs_ago}s ago`}</td>
                      <td>
                        <button type="button" class="small" disabled={toggle.busy} onClick={() => void toggle.run(w.name, !w.enabled)}>
                          {w.enabled ? 'Disable' : 'Enable'}
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Async>
    </>
  );
}
