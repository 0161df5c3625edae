import { describe, expect, it } from 'vitest';
import { outcome } from '../src/lib/delivery';

describe('outcome', () => {
  it('names the last attempt', () => {
    expect(outcome({ tries: [] })).toBe('not tried yet');
    expect(outcome({ tries: [{ status: 500, duration_ms: 3 }, { status: 200, duration_ms: 12 }] })).toBe('HTTP 200 in 12 ms');
    expect(outcome({ tries: [{ status: null, error: 'refused: only https:// URLs may be called', duration_ms: 0 }] })).toBe('refused: only https:// URLs may be called');
    expect(outcome({ tries: [{ duration_ms: 0 }] })).toBe('no answer');
  });
});
