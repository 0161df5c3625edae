// The last 15 minutes of an app's containers, sampled from the containers endpoint every 5 s
// while a page that shows them is open, kept in memory per app (so the Overview and the Usage
// page share them, and moving between them keeps the window).

import { useEffect, useState } from 'preact/hooks';
import { api, type Container } from '../api/client';
import { rate } from './format';

export interface Sample {
  t: number;
  cpu: number | null;
  mem: number | null;
  rx: number | null;
  tx: number | null;
}

/** How much is kept: 15 minutes. */
export const WINDOW_SECS = 15 * 60;
const EVERY_MS = 5_000;

interface Live {
  samples: Sample[];
  last: { t: number; rx: number | null; tx: number | null } | null;
  memoryLimit: number | null;
}

const byApp = new Map<string, Live>();

/** Sums over the app's running containers (a deploy briefly runs two). */
export function sample(cs: Container[], t: number, live: Live): Sample {
  const running = cs.filter((c) => c.state === 'running' && c.stats_at);
  const sum = (f: (c: Container) => number | null | undefined) => running.reduce((n, c) => n + (f(c) ?? 0), 0);
  if (running.length === 0) {
    live.last = null;
    return { t, cpu: null, mem: null, rx: null, tx: null };
  }
  const rxTotal = sum((c) => c.net_rx_bytes);
  const txTotal = sum((c) => c.net_tx_bytes);
  const prev = live.last;
  live.last = { t, rx: rxTotal, tx: txTotal };
  return {
    t,
    cpu: sum((c) => c.cpu_percent),
    mem: sum((c) => c.memory_bytes),
    rx: prev ? rate(prev.rx, rxTotal, t - prev.t) : null,
    tx: prev ? rate(prev.tx, txTotal, t - prev.t) : null,
  };
}

/** Appends `s`, dropping what is older than the window. */
export function keep(samples: Sample[], s: Sample): Sample[] {
  return [...samples.filter((o) => o.t > s.t - WINDOW_SECS), s];
}

/** The app's live samples (and the memory limit), refreshed while mounted and the tab visible. */
export function useLiveStats(slug: string): { samples: Sample[]; memoryLimit: number | null; error: Error | null } {
  const live = byApp.get(slug) ?? { samples: [], last: null, memoryLimit: null };
  byApp.set(slug, live);
  const [, setTick] = useState(0);
  const [error, setError] = useState<Error | null>(null);
  useEffect(() => {
    let stopped = false;
    const once = async () => {
      if (document.visibilityState === 'hidden') return;
      try {
        const cs = await api.containers(slug);
        if (stopped) return;
        live.samples = keep(live.samples, sample(cs, Date.now() / 1000, live));
        live.memoryLimit = cs.find((c) => c.memory_limit)?.memory_limit ?? live.memoryLimit;
        setError(null);
        setTick((n) => n + 1);
      } catch (e) {
        if (!stopped) setError(e as Error);
      }
    };
    void once();
    const timer = setInterval(() => void once(), EVERY_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [slug]);
  return { samples: live.samples, memoryLimit: live.memoryLimit, error };
}
