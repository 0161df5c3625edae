// Small formatting helpers shared by the pages.

export function bytes(n: number | null | undefined): string {
  if (n == null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** Per-second rate from two counter samples; a counter that went down was reset: no rate. */
export function rate(prev: number | null | undefined, next: number | null | undefined, seconds: number): number | null {
  if (prev == null || next == null || seconds <= 0 || next < prev) return null;
  return (next - prev) / seconds;
}

export const FINAL_STATES = new Set(['live', 'failed', 'cancelled', 'superseded']);
