import { describe, expect, it } from 'vitest';
import { Follow, LogBuffer, MAX_LINES, atBottom, visible } from '../src/lib/logwindow';

const lines = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ text: `line ${from + i}`, stream: 'stdout' }));

describe('the log buffer', () => {
  it('keeps at most 10,000 lines and counts the ones dropped', () => {
    const b = new LogBuffer();
    b.push(lines(MAX_LINES - 1));
    expect([b.length, b.dropped]).toEqual([MAX_LINES - 1, 0]);
    b.push(lines(5, MAX_LINES - 1));
    expect([b.length, b.dropped]).toEqual([MAX_LINES, 4]);
    expect(b.slice(0, 1)[0]?.text).toBe('line 4');
    // 100,000 lines in batches: still the newest 10,000, in order, with stable sequence numbers.
    const c = new LogBuffer();
    for (let i = 0; i < 100; i++) c.push(lines(1000, i * 1000));
    expect([c.length, c.dropped]).toEqual([MAX_LINES, 90_000]);
    const all = c.all();
    expect(all[0]?.text).toBe('line 90000');
    expect(all[all.length - 1]?.text).toBe('line 99999');
    expect(all[0]?.seq).toBe(90_000);
    c.clear();
    expect([c.length, c.dropped]).toEqual([0, 0]);
  });
});

describe('windowing', () => {
  it('renders only the rows in sight, with overscan', () => {
    const w = visible(10_000, 18, 18 * 5000, 360, 10);
    expect(w).toEqual({ start: 4990, end: 5030, top: 4990 * 18, total: 180_000 });
    expect(w.end - w.start).toBeLessThan(50);
  });

  it('clamps at both ends and copes with nothing', () => {
    expect(visible(100, 18, 0, 360, 10)).toEqual({ start: 0, end: 30, top: 0, total: 1800 });
    expect(visible(100, 18, 1800, 360, 10)).toMatchObject({ start: 90, end: 100 });
    expect(visible(0, 18, 0, 360)).toEqual({ start: 0, end: 0, top: 0, total: 0 });
    expect(visible(100, 18, -50, 360, 0).start).toBe(0);
  });
});

describe('following', () => {
  it('stops when the user scrolls up and resumes on "jump to latest" or at the bottom', () => {
    const f = new Follow();
    const total = 18 * 1000;
    expect(f.following).toBe(true);
    // The view scrolls itself to the bottom as lines arrive: still following.
    f.scrolledBySelf(total - 360);
    f.onScroll(total - 360, 360, total, 18);
    expect(f.following).toBe(true);
    // The user scrolls up.
    f.onScroll(total - 2000, 360, total, 18);
    expect(f.following).toBe(false);
    // New lines arrive (total grows): not following, so nothing moves.
    expect(atBottom(total - 2000, 360, total + 18 * 50, 18)).toBe(false);
    f.jumpToLatest();
    expect(f.following).toBe(true);
    f.onScroll(100, 360, total, 18);
    expect(f.following).toBe(false);
    // Scrolling back down to the bottom follows again.
    f.onScroll(total - 360, 360, total, 18);
    expect(f.following).toBe(true);
  });
});
