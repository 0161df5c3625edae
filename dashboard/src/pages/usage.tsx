// An app's usage over 1 h, 6 h, 24 h, 7 d or 30 d: average CPU (cores), memory (GB) and network
// (MB per step) from the 5-minute buckets, with a dashed line at each deploy, and the totals in
// vCPU-hours, GB-hours and GB; above them the last 15 minutes, live from the containers'
// samples kept in memory (lib/livestats).

import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { Chart } from '../chart';
import { Async } from '../components';
import { AppTabs } from '../layout';
import { useResource } from '../hooks';
import { bytes } from '../lib/format';
import { useLiveStats, WINDOW_SECS } from '../lib/livestats';

type Step = '5m' | '1h' | '1d';
const RANGES: [string, number, Step][] = [
  ['1 h', 3600, '5m'],
  ['6 h', 6 * 3600, '5m'],
  ['24 h', 86_400, '5m'],
  ['7 d', 7 * 86_400, '1h'],
  ['30 d', 30 * 86_400, '1h'],
];
const STEP_SECS: Record<Step, number> = { '5m': 300, '1h': 3600, '1d': 86_400 };

export function Usage(props: { slug: string }) {
  const [range, setRange] = useState(2);
  const [label, span, step] = RANGES[range]!;
  const usage = useResource(
    () => {
      const to = Math.floor(Date.now() / 1000);
      return api.usage(props.slug, to - span, to, step);
    },
    [props.slug, range],
    60_000,
  );
  const hours = STEP_SECS[step] / 3600;
  const live = useLiveStats(props.slug);
  const liveTimes = live.samples.map((s) => s.t);
  const liveEnd = liveTimes.at(-1) ?? Date.now() / 1000;
  const liveRange: [number, number] = [liveEnd - WINDOW_SECS, liveEnd];
  return (
    <>
      <AppTabs slug={props.slug} />
      <h1>Usage</h1>
      <div class="actions" role="group" aria-label="Range">
        {RANGES.map(([l], i) => (
          <button key={l} type="button" class={i === range ? 'small primary' : 'small'} aria-pressed={i === range} onClick={() => setRange(i)}>
            {l}
          </button>
        ))}
      </div>
      <h2>The last 15 minutes, live</h2>
      <section class="charts">
        <Chart title="CPU (cores, live)" span="the last 15 minutes" xRange={liveRange} times={liveTimes} series={[{ label: 'cores', values: live.samples.map((s) => (s.cpu === null ? null : s.cpu / 100)) }]} unit={(v) => v.toFixed(2)} />
        <Chart title="Memory (live)" span="the last 15 minutes" xRange={liveRange} times={liveTimes} series={[{ label: 'used', values: live.samples.map((s) => s.mem) }]} unit={bytes} />
      </section>
      <h2>Recorded</h2>
      <Async r={usage} what="the usage">
        {(u) => {
          const times = u.points.map((p) => Date.parse(p.t) / 1000);
          const xRange: [number, number] = [u.from, u.to];
          return (
            <>
              <table class="totals">
                <caption>Totals over the last {label}</caption>
                <tbody>
                  <tr>
                    <th scope="row">CPU</th>
                    <td>{u.totals.vcpu_hours.toFixed(3)} vCPU-hours</td>
                  </tr>
                  <tr>
                    <th scope="row">Memory</th>
                    <td>{u.totals.gb_hours.toFixed(3)} GB-hours</td>
                  </tr>
                  <tr>
                    <th scope="row">Network</th>
                    <td>
                      {u.totals.egress_gb.toFixed(3)} GB out, {u.totals.ingress_gb.toFixed(3)} GB in
                    </td>
                  </tr>
                </tbody>
              </table>
              {u.points.length === 0 ? (
                <p class="empty">No usage recorded in this range.</p>
              ) : (
                <>
                  <Chart title="CPU (average cores)" span={`the last ${label}`} xRange={xRange} times={times} markers={u.deploys} series={[{ label: 'cores', values: u.points.map((p) => p.vcpu_hours / hours) }]} unit={(v) => v.toFixed(2)} />
                  <Chart title="Memory (average GB)" span={`the last ${label}`} xRange={xRange} times={times} markers={u.deploys} series={[{ label: 'GB', values: u.points.map((p) => p.gb_hours / hours) }]} unit={(v) => v.toFixed(2)} />
                  <Chart
                    title={`Network (MB per ${step})`}
                    span={`the last ${label}`}
                    xRange={xRange}
                    times={times}
                    markers={u.deploys}
                    series={[
                      { label: 'out', values: u.points.map((p) => p.tx_bytes / 1e6) },
                      { label: 'in', values: u.points.map((p) => p.rx_bytes / 1e6) },
                    ]}
                    unit={(v) => v.toFixed(1)}
                  />
                </>
              )}
            </>
          );
        }}
      </Async>
    </>
  );
}
