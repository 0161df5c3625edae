import { describe, expect, it } from 'vitest';
import { SseParser } from '../src/lib/sse';

describe('the event-stream parser', () => {
  it('reads data and event fields, comments and CRLF, across any chunking', () => {
    const text = ': keep-alive\r\ndata: {"a":1}\r\n\r\nevent: dropped\ndata: 7\n\ndata: line one\ndata: line two\n\n';
    const want = [
      { event: 'message', data: '{"a":1}' },
      { event: 'dropped', data: '7' },
      { event: 'message', data: 'line one\nline two' },
    ];
    expect(new SseParser().feed(text)).toEqual(want);
    for (let size = 1; size < 12; size++) {
      const p = new SseParser();
      const got = [];
      for (let i = 0; i < text.length; i += size) got.push(...p.feed(text.slice(i, i + size)));
      expect(got).toEqual(want);
    }
  });

  it('keeps an unfinished event until its blank line', () => {
    const p = new SseParser();
    expect(p.feed('data: half')).toEqual([]);
    expect(p.feed(' done\n')).toEqual([]);
    expect(p.feed('\n')).toEqual([{ event: 'message', data: 'half done' }]);
    expect(p.feed('data:no-space\n\n')).toEqual([{ event: 'message', data: 'no-space' }]);
  });
});
