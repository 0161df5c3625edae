// One app at a glance: where it answers, what is live, and its containers' CPU, memory and
// network over the last 15 minutes, sampled every 5 s while the page is open (lib/livestats).

import { Link } from 'wouter-preact';
import { api } from '../api/client';
import { Async, Badge, Copy } from '../components';
import { Chart } from '../chart';
import { AppTabs } from '../layout';
import { bytes } from '../lib/format';
import { useLiveStats } from '../lib/livestats';
import { useResource } from '../hooks';

export function Overview(props: { slug: string }) {
  const app = useResource(() => api.app(props.slug), [props.slug], 10_000);
  const { samples, memoryLimit: limit, error } = useLiveStats(props.slug);
  const times = samples.map((s) => s.t);
  return (
    <>
      <AppTabs slug={props.slug} />
      <Async r={app} what="the app">
        {(a) => (
          <section class="cards">
            <div class="card">
              <h2>Address</h2>
              <p>
                <a href={a.url} target="_blank" rel="noreferrer">
                  {a.url}
                </a>{' '}
                <Copy text={a.url} label="Copy the app's address" />
              </p>
              <p class="muted small">
                Custom domains: <Link href={`/apps/${a.slug}/domains`}>manage</Link>
              </p>
            </div>
            <div class="card">
              <h2>Live deployment</h2>
              {a.live_deployment_id ? (
                <p>
                  <Link href={`/deployments/${a.live_deployment_id}`}>#{a.live_deployment_id}</Link> <Badge state="live" />
                </p>
              ) : (
                <p>
                  Nothing live yet. <Link href={`/apps/${a.slug}/deployments`}>Deploy</Link>
                </p>
              )}
              {a.last_deployment_id && a.last_deployment_id !== a.live_deployment_id && (
                <p class="small">
                  Latest: <Link href={`/deployments/${a.last_deployment_id}`}>#{a.last_deployment_id}</Link> <Badge state={a.last_deployment_state} />
                </p>
              )}
            </div>
            <div class="card">
              <h2>Source</h2>
              <p class="small">{a.repo_url ? `${a.repo_url} (${a.branch})` : 'Uploads only'}</p>
              <p class="small muted">
                Plan {a.plan}, port {a.port}
              </p>
            </div>
          </section>
        )}
      </Async>
      <h2>Resources</h2>
      {error && <p class="error">Could not load the containers: {error.message}</p>}
      {samples.length > 0 && samples.every((s) => s.cpu === null) && <p class="muted">No running container reports stats yet.</p>}
      <section class="charts">
        <Chart title="CPU" times={times} series={[{ label: 'CPU %', values: samples.map((s) => s.cpu) }]} unit={(v) => `${v.toFixed(1)} %`} />
        <Chart title={`Memory${limit ? ` (limit ${bytes(limit)})` : ''}`} times={times} series={[{ label: 'used', values: samples.map((s) => s.mem) }]} unit={bytes} />
        <Chart
          title="Network"
          times={times}
          series={[
            { label: 'received', values: samples.map((s) => s.rx) },
            { label: 'sent', values: samples.map((s) => s.tx) },
          ]}
          unit={(v) => `${bytes(v)}/s`}
        />
      </section>
    </>
  );
}
