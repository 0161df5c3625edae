// An app's containers as their workers last reported them.

import { Link } from 'wouter-preact';
import { api } from '../api/client';
import { Async, Badge } from '../components';
import { AppTabs } from '../layout';
import { ago, bytes } from '../lib/format';
import { useResource } from '../hooks';

export function Containers(props: { slug: string }) {
  const list = useResource(() => api.containers(props.slug), [props.slug], 5_000);
  return (
    <>
      <AppTabs slug={props.slug} />
      <h1>Containers</h1>
      <Async r={list} what="the containers">
        {(cs) =>
          cs.length === 0 ? (
            <p class="empty">No containers: the app has not been deployed, or its worker has not reported yet.</p>
          ) : (
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Container</th>
                    <th scope="col">Deployment</th>
                    <th scope="col">State</th>
                    <th scope="col">Restarts</th>
                    <th scope="col">CPU</th>
                    <th scope="col">Memory</th>
                    <th scope="col">Disk</th>
                    <th scope="col">Sampled</th>
                  </tr>
                </thead>
                <tbody>
                  {cs.map((c) => (
                    <tr key={c.container_id}>
                      <td>
                        <code>{c.container_id.slice(0, 12)}</code>
                      </td>
                      <td>{c.deployment_id ? <Link href={`/deployments/${c.deployment_id}`}>#{c.deployment_id}</Link> : '—'}</td>
                      <td>
                        <Badge state={c.state} />
                        {c.exit_code != null && <span class="muted small"> exit {c.exit_code}</span>}
                      </td>
                      <td>{c.restarts}</td>
                      <td>{c.cpu_percent == null ? '—' : `${c.cpu_percent.toFixed(1)} %`}</td>
                      <td>
                        {bytes(c.memory_bytes)}
                        {c.memory_limit ? ` / ${bytes(c.memory_limit)}` : ''}
                      </td>
                      <td>{bytes(c.disk_bytes)}</td>
                      <td>{ago(c.stats_at)}</td>
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
