// Custom domains: add one, the TXT and CNAME (or A/AAAA) records to create with copy
// buttons, its status rechecked while the page is open (pending ones are verified every 30 s).

import { useEffect, useState } from 'preact/hooks';
import { api, type Domain } from '../api/client';
import { Async, Badge, Copy, DataTable, Field, FormError } from '../components';
import { AppTabs } from '../layout';
import { ago } from '../lib/format';
import { useResource, useSubmit } from '../hooks';

function status(d: Domain): string {
  return d.status === 'verified' && d.record_missing ? 'record_missing' : d.status;
}

export function Domains(props: { slug: string }) {
  const list = useResource(() => api.domains(props.slug), [props.slug], 10_000);
  const [hostname, setHostname] = useState('');
  const add = useSubmit(async () => {
    await api.addDomain(props.slug, hostname.trim());
    setHostname('');
    list.reload();
  });
  const verify = useSubmit(async (h: string) => {
    await api.verifyDomain(props.slug, h);
    list.reload();
  });
  const remove = useSubmit(async (h: string) => {
    if (!confirm(`Remove ${h} from ${props.slug}?`)) return;
    await api.removeDomain(props.slug, h);
    list.reload();
  });
  // Pending domains are checked again every 30 s while the page is open.
  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState !== 'visible') return;
      for (const d of list.data ?? []) if (d.status === 'pending') void api.verifyDomain(props.slug, d.hostname).then(list.reload, () => undefined);
    }, 30_000);
    return () => clearInterval(t);
  }, [list.data, props.slug]);
  return (
    <>
      <AppTabs slug={props.slug} />
      <h1>Domains</h1>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          void add.run();
        }}
      >
        <Field label="Add a domain" name="hostname" error={add.error}>
          {(id, d, bad) => <input id={id} required placeholder="www.example.com" value={hostname} aria-describedby={d} aria-invalid={bad} onInput={(e) => setHostname(e.currentTarget.value)} />}
        </Field>
        <button type="submit" class="primary" disabled={add.busy}>
          Add
        </button>
      </form>
      <FormError error={add.error} fields={['hostname']} />
      <FormError error={verify.error} />
      <FormError error={remove.error} />
      <Async r={list} what="the domains">
        {(ds) =>
          ds.length === 0 ? (
            <p class="empty">No custom domains. The app answers at its own address until you add one.</p>
          ) : (
            <>
              {ds.map((d) => (
                <section key={d.hostname} class="card domain" aria-labelledby={`dom-${d.hostname}`}>
                  <div class="title-row">
                    <h2 id={`dom-${d.hostname}`}>
                      {d.hostname} <Badge state={status(d)} />
                    </h2>
                    <div class="actions">
                      <button type="button" class="small" disabled={verify.busy} onClick={() => void verify.run(d.hostname)}>
                        Check now
                      </button>
                      <button type="button" class="small danger" onClick={() => void remove.run(d.hostname)}>
                        Remove
                      </button>
                    </div>
                  </div>
                  <p class="muted small">
                    Last checked {ago(d.last_checked_at)}
                    {d.last_outcome ? ` · ${d.last_outcome.replace(/_/g, ' ')}` : ''}
                    {d.reason ? ` · ${d.reason}` : ''}
                  </p>
                  {d.status !== 'verified' && <p>Create these records at your DNS provider, then check:</p>}
                  <DataTable
                    caption={`DNS records for ${d.hostname}`}
                    rows={d.records}
                    rowKey={(r) => r.type + r.name + r.value}
                    columns={[
                      { label: 'Type', cell: (r) => r.type },
                      {
                        label: 'Name',
                        cell: (r) => (
                          <span>
                            <code>{r.name}</code> <Copy text={r.name} label={`Copy the ${r.type} record's name`} />
                          </span>
                        ),
                      },
                      {
                        label: 'Value',
                        cell: (r) => (
                          <div>
                            <code>{r.value}</code> <Copy text={r.value} label={`Copy the ${r.type} record's value`} />
                            {r.note && <div class="muted small">{r.note}</div>}
                          </div>
                        ),
                      },
                    ]}
                  />
                  <p class="warning small">
                    Behind a CDN proxy (Cloudflare's orange cloud), set the CNAME to "DNS only": a proxied record hides this platform's address and the certificate cannot be issued.
                  </p>
                  <p class="muted small">Certificate: issued by the proxy once the domain is verified.</p>
                </section>
              ))}
            </>
          )
        }
      </Async>
    </>
  );
}
