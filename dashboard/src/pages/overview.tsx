// One app at a glance: where it answers, what is live, and its containers' CPU, memory and
// network, sampled every few seconds while the page is open.

import { useEffect, useRef, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { api, type Container } from '../api/client';
import { Async, Badge, Copy } from '../components';
import { Chart } from '../chart';
import { AppTabs } from '../layout';
import { bytes, rate } from '../lib/format';
import { useResource } from '../hooks';

const POINTS = 120;

interface Sample {
  t: number;
  cpu: number | null;
  mem: number | null;
  rx: number | null;
  tx: number | null;
}

/** Sums over the app's running containers (a deploy briefly runs two). */
function sample(cs: Container[]): Omit<Sample, 't'> & { rxTotal: number | null; txTotal: number | null } {
  const running = cs.filter((c) => c.state === 'running' && c.stats_at);
  if (running.length === 0) return { cpu: null, mem: null, rx: null, tx: null, rxTotal: null, txTotal: null };
  const sum = (f: (c: Container) => number | null | undefined) => running.reduce((n, c) => n + (f(c) ?? 0), 0);
  return { cpu: sum((c) => c.cpu_percent), mem: sum((c) => c.memory_bytes), rx: null, tx: null, rxTotal: sum((c) => c.net_rx_bytes), txTotal: sum((c) => c.net_tx_bytes) };
}

export function Overview(props: { slug: string }) {
  const app = useResource(() => api.app(props.slug), [props.slug], 10_000);
  const containers = useResource(() => api.containers(props.slug), [props.slug], 5_000);
  const [samples, setSamples] = useState<Sample[]>([]);
  const last = useRef<{ t: number; rx: number | null; tx: number | null } | null>(null);
  useEffect(() => {
    if (!containers.data) return;
    const t = Date.now() / 1000;
    const s = sample(containers.data);
    const prev = last.current;
    const rx = prev ? rate(prev.rx, s.rxTotal, t - prev.t) : null;
    const tx = prev ? rate(prev.tx, s.txTotal, t - prev.t) : null;
    last.current = { t, rx: s.rxTotal, tx: s.txTotal };
    setSamples((old) => [...old.slice(-(POINTS - 1)), { t, cpu: s.cpu, mem: s.mem, rx, tx }]);
  }, [containers.data]);
  const limit = containers.data?.find((c) => c.memory_limit)?.memory_limit ?? null;
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
      {containers.error && <p class="error">Could not load the containers: {containers.error.message}</p>}
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
