import { describe, expect, it } from 'vitest';
import { tar } from '../src/lib/tar';

const dec = new TextDecoder();

describe('tar', () => {
  it('writes ustar headers with valid checksums and padded data', () => {
    const out = tar([
      { path: 'index.html', data: new TextEncoder().encode('<h1>hi</h1>') },
      { path: `${'d'.repeat(120)}/file.txt`, data: new Uint8Array(600) },
    ]);
    expect(out.length % 512).toBe(0);
    expect(out.length).toBe(512 + 512 + 512 + 1024 + 1024);
    const header = out.slice(0, 512);
    expect(dec.decode(header.slice(0, 10))).toBe('index.html');
    expect(dec.decode(header.slice(257, 262))).toBe('ustar');
    const sum = header.reduce((n, b, i) => n + (i >= 148 && i < 156 ? 0x20 : b), 0);
    expect(parseInt(dec.decode(header.slice(148, 154)), 8)).toBe(sum);
    expect(parseInt(dec.decode(header.slice(124, 135)), 8)).toBe(11);
    // A long path goes into the prefix field.
    const second = out.slice(1024, 1536);
    expect(dec.decode(second.slice(0, 8))).toBe('file.txt');
    expect(dec.decode(second.slice(345, 350))).toBe('ddddd');
  });

  it('refuses a name it cannot store', () => {
    expect(() => tar([{ path: 'x'.repeat(300), data: new Uint8Array() }])).toThrow(/too long/);
  });
});
