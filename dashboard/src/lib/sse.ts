// Server-sent events read with fetch instead of EventSource: the page decides how much of a
// burst it handles per frame (EventSource dispatches every event of a received chunk in one
// go: 100,000 lines arriving together froze the page for a third of a second per frame), and
// reconnects itself, with backoff.

export interface SseEvent {
  event: string;
  data: string;
}

/** An incremental parser of the `text/event-stream` format (fields `event` and `data`). */
export class SseParser {
  private buf = '';
  private event = '';
  private data: string[] = [];

  /** Feeds decoded text; returns the events it completed. */
  feed(text: string): SseEvent[] {
    this.buf += text;
    const out: SseEvent[] = [];
    let start = 0;
    for (;;) {
      const nl = this.buf.indexOf('\n', start);
      if (nl < 0) break;
      let line = this.buf.slice(start, nl);
      start = nl + 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (this.data.length > 0) out.push({ event: this.event || 'message', data: this.data.join('\n') });
        this.event = '';
        this.data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'event') this.event = value;
    }
    this.buf = this.buf.slice(start);
    return out;
  }
}

export type FollowState = 'connecting' | 'open' | 'retrying';

export interface FollowOptions {
  /** Called with events, at most about `budgetMs` of work between frames. */
  onEvents: (events: SseEvent[]) => void;
  onState: (s: FollowState) => void;
  signal: AbortSignal;
  budgetMs?: number;
  /** Events handed over per call at most. */
  batch?: number;
}

/** How much text is parsed between checks of the budget. */
const SLICE = 16 * 1024;

const nextFrame = () => new Promise<void>((r) => (typeof requestAnimationFrame === 'function' ? requestAnimationFrame(() => r()) : setTimeout(r, 16)));

/** Follows `url` until `signal` aborts: reconnects with backoff (0.5 s to 10 s) when it ends. */
export async function follow(url: string, opts: FollowOptions): Promise<void> {
  const budget = opts.budgetMs ?? 8;
  const batch = opts.batch ?? 500;
  for (let attempt = 0; !opts.signal.aborted; attempt++) {
    opts.onState(attempt === 0 ? 'connecting' : 'retrying');
    try {
      const resp = await fetch(url, { headers: { accept: 'text/event-stream' }, credentials: 'same-origin', signal: opts.signal });
      if (!resp.ok || !resp.body) throw new Error(`${resp.status}`);
      opts.onState('open');
      attempt = 0;
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        // A big chunk is decoded and parsed a slice at a time, so that this is budgeted too.
        let started = performance.now();
        for (let at = 0; at < value.length; at += SLICE) {
          const events = parser.feed(decoder.decode(value.subarray(at, at + SLICE), { stream: true }));
          for (let i = 0; i < events.length; i += batch) {
            opts.onEvents(events.slice(i, i + batch));
            if (performance.now() - started > budget) {
              await nextFrame();
              started = performance.now();
            }
          }
        }
      }
    } catch (e) {
      if (opts.signal.aborted) return;
      void e;
    }
    opts.onState('retrying');
    await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** Math.min(attempt, 5))));
  }
}
