// What a webhook or channel delivery came to, in words, from its attempts.

export interface AttemptLike {
  status?: number | null;
  error?: string | null;
  duration_ms: number;
}

/** The outcome of a delivery's last attempt. */
export function outcome(d: { tries: AttemptLike[] }): string {
  const last = d.tries[d.tries.length - 1];
  if (!last) return 'not tried yet';
  if (last.status != null) return `HTTP ${last.status} in ${last.duration_ms} ms`;
  return last.error ?? 'no answer';
}
