// An app's containers as their workers last reported them.

import { Link } from 'wouter-preact';
import { api } from '../api/client';
import { Async, Badge, DataTable } from '../components';
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
            <DataTable
              caption={`Containers of ${props.slug}`}
              rows={cs}
              rowKey={(c) => c.container_id}
              columns={[
                { label: 'Container', cell: (c) => <code>{c.container_id.slice(0, 12)}</code> },
                { label: 'Deployment', cell: (c) => (c.deployment_id ? <Link href={`/deployments/${c.deployment_id}`}>#{c.deployment_id}</Link> : '—') },
                {
                  label: 'State',
                  cell: (c) => (
                    <>
                      <Badge state={c.state} />
                      {c.exit_code != null && <span class="muted small"> exit {c.exit_code}</span>}
                    </>
                  ),
                },
                { label: 'Restarts', cell: (c) => c.restarts },
                { label: 'CPU', cell: (c) => (c.cpu_percent == null ? '—' : `${c.cpu_percent.toFixed(1)} %`) },
                { label: 'Memory', cell: (c) => `${bytes(c.memory_bytes)}${c.memory_limit ? ` / ${bytes(c.memory_limit)}` : ''}` },
                { label: 'Disk', cell: (c) => bytes(c.disk_bytes) },
                { label: 'Sampled', cell: (c) => ago(c.stats_at) },
              ]}
            />
          )
        }
      </Async>
    </>
  );
}
