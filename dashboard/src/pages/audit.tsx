// The audit trail: what was done, by whom, from where (yours; everyone's for admins).

import { api } from '../api/client';
import { Async, DataTable } from '../components';
import { ago } from '../lib/format';
import { useResource } from '../hooks';

export function Audit() {
  const events = useResource(() => api.audit(), [], 15_000);
  return (
    <>
      <h1>Audit trail</h1>
      <Async r={events} what="the audit trail">
        {(es) =>
          es.length === 0 ? (
            <p class="empty">Nothing recorded yet.</p>
          ) : (
            <DataTable
              caption="Audit events, newest first"
              rows={es}
              rowKey={(e) => e.id}
              columns={[
                { label: 'When', cell: (e) => <span title={e.at}>{ago(e.at)}</span> },
                { label: 'Action', cell: (e) => <code>{e.action}</code> },
                { label: 'Target', cell: (e) => e.target },
                { label: 'From', cell: (e) => e.client_ip ?? '—' },
                { label: 'Details', cell: (e) => <code class="small">{JSON.stringify(e.details)}</code> },
              ]}
            />
          )
        }
      </Async>
    </>
  );
}
