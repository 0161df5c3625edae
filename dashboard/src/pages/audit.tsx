// The audit trail: what was done, by whom, from where (yours; everyone's for admins).

import { api } from '../api/client';
import { Async } from '../components';
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
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Action</th>
                    <th scope="col">Target</th>
                    <th scope="col">From</th>
                    <th scope="col">Details</th>
                  </tr>
                </thead>
                <tbody>
                  {es.map((e) => (
                    <tr key={e.id}>
                      <td title={e.at}>{ago(e.at)}</td>
                      <td>
                        <code>{e.action}</code>
                      </td>
                      <td>{e.target}</td>
                      <td>{e.client_ip ?? '—'}</td>
                      <td>
                        <code class="small">{JSON.stringify(e.details)}</code>
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
