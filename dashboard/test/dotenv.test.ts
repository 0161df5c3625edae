import { describe, expect, it } from 'vitest';
import { diff, parse, quote, sameVars, serialize } from '../src/lib/dotenv';

describe('.env parsing', () => {
  it('reads plain, exported, quoted and commented lines', () => {
    const p = parse(
      [
        '# database',
        'DATABASE_URL=postgres://db/app',
        'export MODE=production  # inline comment',
        '',
        "SINGLE='literal \\n #not a comment'",
        'DOUBLE="tab\\there \\"quoted\\""',
        'EMPTY=',
      ].join('\n'),
    );
    expect(p.errors).toEqual([]);
    expect(Object.fromEntries(p.vars)).toEqual({
      DATABASE_URL: 'postgres://db/app',
      MODE: 'production',
      SINGLE: 'literal \\n #not a comment',
      DOUBLE: 'tab\there "quoted"',
      EMPTY: '',
    });
    expect(p.lines.map((l) => l.kind)).toEqual(['comment', 'var', 'var', 'blank', 'var', 'var', 'var']);
  });

  it('reads quoted values over several lines', () => {
    const p = parse('KEY="-----BEGIN KEY-----\nabc\n-----END KEY-----"\nNEXT=1\n');
    expect(p.errors).toEqual([]);
    expect(p.vars.get('KEY')).toBe('-----BEGIN KEY-----\nabc\n-----END KEY-----');
    expect(p.vars.get('NEXT')).toBe('1');
    const single = parse("A='one\ntwo'");
    expect(single.vars.get('A')).toBe('one\ntwo');
  });

  it('names the line of every mistake', () => {
    const p = parse('GOOD=1\nnot a variable\n1BAD=x\nOPEN="never closed\nGOOD=2');
    expect(p.errors.map((e) => e.line)).toEqual([2, 3, 4]);
    expect(p.errors[2]?.message).toContain('never closed');
    const twice = parse('A=1\nA=2');
    expect(twice.vars.get('A')).toBe('2');
    expect(twice.errors[0]?.message).toContain('set twice');
  });
});

describe('.env writing', () => {
  const values = ['plain', '', 'two words', 'has#hash', 'a #comment', "it's", 'say "hi"', 'both \' and "', 'line\nbreak', 'back\\slash', '\ttab', 'ünïcode', '  padded  '];

  it('round-trips any value', () => {
    const vars = new Map(values.map((v, i) => [`K${i}`, v]));
    const text = serialize(vars);
    const back = parse(text);
    expect(back.errors).toEqual([]);
    expect(Object.fromEntries(back.vars)).toEqual(Object.fromEntries(vars));
  });

  it('round-trips random values', () => {
    const alphabet = 'ab #\'"\\\n\t=é$`';
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 500; round++) {
      const vars = new Map<string, string>();
      for (let k = 0; k < 4; k++) {
        let v = '';
        const n = Math.floor(rand() * 12);
        for (let i = 0; i < n; i++) v += alphabet[Math.floor(rand() * alphabet.length)];
        vars.set(`V${k}`, v);
      }
      const back = parse(serialize(vars));
      expect(back.errors).toEqual([]);
      expect(Object.fromEntries(back.vars)).toEqual(Object.fromEntries(vars));
    }
  });

  it('keeps the comments, blank lines, order and untouched lines of the previous text', () => {
    const before = parse('# app settings\nB=2   # the second\n\n# secrets\nA="1"\nGONE=x\n');
    const next = new Map([
      ['A', '1'],
      ['B', 'changed'],
      ['C', 'new value'],
    ]);
    expect(serialize(next, before)).toBe('# app settings\nB=changed\n\n# secrets\nA="1"\nC="new value"\n');
  });

  it('quotes only when needed', () => {
    expect(quote('simple')).toBe('simple');
    expect(quote('two words')).toBe('"two words"');
    expect(quote('say "hi"')).toBe(`'say "hi"'`);
    expect(quote('')).toBe('""');
  });
});

describe('unsaved changes', () => {
  it('are the variables, not the text', () => {
    const server = new Map([
      ['A', '1'],
      ['B', 'two words'],
    ]);
    expect(sameVars(parse('# a comment added\nB="two words"\nA=1\n').vars, server)).toBe(true);
    expect(sameVars(parse('A=1\nB=two words\nC=3').vars, server)).toBe(false);
    expect(diff(server, parse('A=2\nC=3').vars)).toEqual({ set: ['A', 'C'], removed: ['B'] });
  });
});
