import { describe, expect, it } from 'vitest';
import type { Container } from '../src/api/client';
import { keep, sample, WINDOW_SECS, type Sample } from '../src/lib/livestats';

const container = (over: Partial<Container>): Container =>
  ({ container_id: 'c', worker_id: 'w', deployment_id: 1, state: 'running', restarts: 0, stats_at: 'now', cpu_percent: 10, memory_bytes: 100, net_rx_bytes: 1000, net_tx_bytes: 2000, ...over }) as Container;

describe('live stats', () => {
  it('keeps 15 minutes and drops what is older', () => {
    let samples: Sample[] = [];
    for (let t = 0; t <= 2 * WINDOW_SECS; t += 5) samples = keep(samples, { t, cpu: 1, mem: 1, rx: null, tx: null });
    expect(samples[0]!.t).toBe(WINDOW_SECS + 5);
    expect(samples.at(-1)!.t).toBe(2 * WINDOW_SECS);
  });

  it('sums running containers and rates counters, a reset giving no rate', () => {
    const live = { samples: [], last: null, memoryLimit: null };
    const first = sample([container({}), container({ container_id: 'd', state: 'exited' })], 0, live);
    expect(first).toEqual({ t: 0, cpu: 10, mem: 100, rx: null, tx: null });
    const second = sample([container({ net_rx_bytes: 1500, net_tx_bytes: 2600 })], 5, live);
    expect([second.rx, second.tx]).toEqual([100, 120]);
    const reset = sample([container({ net_rx_bytes: 10, net_tx_bytes: 20 })], 10, live);
    expect([reset.rx, reset.tx]).toEqual([null, null]);
    expect(sample([], 15, live).cpu).toBeNull();
  });
});
