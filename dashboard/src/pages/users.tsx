// Administrators: every account.

import { api } from '../api/client';
import { Async, DataTable } from '../components';
import { ago } from '../lib/format';
import { useResource } from '../hooks';

export function Users() {
  const list = useResource(() => api.users(), []);
  return (
    <>
      <h1>Users</h1>
      <Async r={list} what="the users">
        {(us) => (
          <DataTable
            caption="Accounts"
            rows={us}
            rowKey={(u) => u.id}
            columns={[
              { label: 'Email', cell: (u) => u.email },
              { label: 'Role', cell: (u) => (u.is_admin ? 'admin' : 'user') },
              { label: 'Apps', cell: (u) => u.apps },
              { label: 'Joined', cell: (u) => ago(u.created_at) },
            ]}
          />
        )}
      </Async>
    </>
  );
}
