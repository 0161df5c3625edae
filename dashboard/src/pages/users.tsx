// Administrators: every account.

import { api } from '../api/client';
import { Async } from '../components';
import { ago } from '../lib/format';
import { useResource } from '../hooks';

export function Users() {
  const list = useResource(() => api.users(), []);
  return (
    <>
      <h1>Users</h1>
      <Async r={list} what="the users">
        {(us) => (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Apps</th>
                  <th scope="col">Joined</th>
                </tr>
              </thead>
              <tbody>
                {us.map((u) => (
                  <tr key={u.id}>
                    <td>{u.email}</td>
                    <td>{u.is_admin ? 'admin' : 'user'}</td>
                    <td>{u.apps}</td>
                    <td>{ago(u.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Async>
    </>
  );
}
