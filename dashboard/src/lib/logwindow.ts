// The runtime log viewer's model: a bounded buffer of lines (the oldest dropped past the cap,
// with a count the view shows), which rows a scroll position shows (only those are rendered),
// and when the view follows new lines: it does until the user scrolls up, and again after
// "jump to latest" or scrolling back to the bottom.

export const MAX_LINES = 10_000;

export interface Row {
  /** Position among all lines ever received (stable keys while old lines are dropped). */
  seq: number;
  text: string;
  stream: string;
}

export class LogBuffer {
  private rows: Row[] = [];
  private first = 0;
  private next = 0;
  /** Lines dropped from the front because the buffer was full. */
  dropped = 0;

  constructor(readonly max = MAX_LINES) {}

  push(lines: ReadonlyArray<{ text: string; stream: string }>): void {
    for (const l of lines) this.rows.push({ seq: this.next++, text: l.text, stream: l.stream });
    const over = this.rows.length - this.first - this.max;
    if (over > 0) {
      this.first += over;
      this.dropped += over;
      // Compact now and then, not on every push.
      if (this.first > this.max) {
        this.rows = this.rows.slice(this.first);
        this.first = 0;
      }
    }
  }

  get length(): number {
    return this.rows.length - this.first;
  }

  /** Rows `start` to `end` (exclusive) of those kept. */
  slice(start: number, end: number): Row[] {
    return this.rows.slice(this.first + start, this.first + end);
  }

  all(): Row[] {
    return this.rows.slice(this.first);
  }

  clear(): void {
    this.rows = [];
    this.first = 0;
    this.dropped = 0;
  }
}

export interface Window {
  start: number;
  end: number;
  /** Height of the rows above `start`, in pixels. */
  top: number;
  total: number;
}

/** The rows a viewport `height` tall at `scrollTop` shows, with `overscan` rows either side. */
export function visible(count: number, rowHeight: number, scrollTop: number, height: number, overscan = 10): Window {
  const total = count * rowHeight;
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const shown = Math.ceil(height / rowHeight);
  const start = Math.max(0, Math.min(count, first - overscan));
  const end = Math.min(count, first + shown + overscan);
  return { start, end, top: start * rowHeight, total };
}

/** Whether a scroll position is at the bottom (within one row). */
export function atBottom(scrollTop: number, height: number, total: number, rowHeight: number): boolean {
  return scrollTop + height >= total - rowHeight;
}

/**
 * Following: on while the view is at the bottom; scrolling up turns it off; "jump to latest"
 * (or scrolling back down) turns it on. A scroll the view made itself (to follow) is not the
 * user's and changes nothing.
 */
export class Follow {
  following = true;
  private expected: number | null = null;

  /** The view is about to scroll itself to `top`. */
  scrolledBySelf(top: number): void {
    this.expected = top;
  }

  /** A scroll event at `scrollTop`. */
  onScroll(scrollTop: number, height: number, total: number, rowHeight: number): void {
    if (this.expected !== null && Math.abs(scrollTop - this.expected) < 1) {
      this.expected = null;
      return;
    }
    this.expected = null;
    this.following = atBottom(scrollTop, height, total, rowHeight);
  }

  jumpToLatest(): void {
    this.following = true;
  }
}
