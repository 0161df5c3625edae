// The `.env` format of the bulk editor: parse a text into its lines (comments and blank lines
// kept, so a round trip through the editor loses nothing of what the user wrote), and write a
// set of variables back as a text, reusing the user's comments and order where it can.
//
// Accepted: `KEY=value`, `export KEY=value`, `# comments`, blank lines; values unquoted
// (trimmed; ` #` starts a trailing comment), 'single-quoted' (literal) or "double-quoted"
// (\n \r \t \" \\ escapes). Quoted values may span lines.

export type Line =
  | { kind: 'blank'; raw: string }
  | { kind: 'comment'; raw: string }
  | { kind: 'var'; key: string; value: string; raw: string };

export interface ParseError {
  line: number;
  message: string;
}

export interface Parsed {
  lines: Line[];
  vars: Map<string, string>;
  errors: ParseError[];
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function parse(text: string): Parsed {
  const lines: Line[] = [];
  const vars = new Map<string, string>();
  const errors: ParseError[] = [];
  const src = text.replace(/\r\n?/g, '\n').split('\n');
  // A text ending in a newline has no extra empty last line.
  if (src.length > 1 && src[src.length - 1] === '') src.pop();
  for (let i = 0; i < src.length; i++) {
    const first = src[i] ?? '';
    const trimmed = first.trim();
    if (trimmed === '') {
      lines.push({ kind: 'blank', raw: first });
      continue;
    }
    if (trimmed.startsWith('#')) {
      lines.push({ kind: 'comment', raw: first });
      continue;
    }
    const lineNo = i + 1;
    const body = trimmed.replace(/^export\s+/, '');
    const eq = body.indexOf('=');
    if (eq <= 0) {
      errors.push({ line: lineNo, message: 'expected KEY=value' });
      lines.push({ kind: 'comment', raw: first });
      continue;
    }
    const key = body.slice(0, eq).trim();
    if (!KEY.test(key)) {
      errors.push({ line: lineNo, message: `${key}: a name is letters, digits and _, not starting with a digit` });
      lines.push({ kind: 'comment', raw: first });
      continue;
    }
    let rest = body.slice(eq + 1).replace(/^[ \t]+/, '');
    let raw = first;
    let value: string;
    const quote = rest[0];
    if (quote === '"' || quote === "'") {
      // Read until the closing quote, across lines if need be.
      let content = rest.slice(1);
      let close = findClose(content, quote);
      while (close < 0 && i + 1 < src.length) {
        i++;
        raw += '\n' + (src[i] ?? '');
        content += '\n' + (src[i] ?? '');
        close = findClose(content, quote);
      }
      if (close < 0) {
        errors.push({ line: lineNo, message: `${key}: the ${quote === '"' ? 'double' : 'single'} quote is never closed` });
        value = content;
      } else {
        const after = content.slice(close + 1).trim();
        if (after !== '' && !after.startsWith('#')) {
          errors.push({ line: lineNo, message: `${key}: unexpected text after the closing quote` });
        }
        content = content.slice(0, close);
        value = quote === '"' ? unescape(content) : content;
      }
    } else {
      const hash = rest.search(/\s#/);
      if (hash >= 0) rest = rest.slice(0, hash);
      value = rest.trim();
    }
    if (vars.has(key)) errors.push({ line: lineNo, message: `${key} is set twice (the last one counts)` });
    vars.set(key, value);
    lines.push({ kind: 'var', key, value, raw });
  }
  return { lines, vars, errors };
}

function findClose(s: string, quote: string): number {
  for (let i = 0; i < s.length; i++) {
    if (quote === '"' && s[i] === '\\') {
      i++;
      continue;
    }
    if (s[i] === quote) return i;
  }
  return -1;
}

function unescape(s: string): string {
  return s.replace(/\\(.)/gs, (_, c: string) => ({ n: '\n', r: '\r', t: '\t' } as Record<string, string>)[c] ?? c);
}

/** `value` as it is written after `KEY=`: bare when that reads back the same, else quoted. */
export function quote(value: string): string {
  if (value !== '' && /^[^\s'"#\\]+$/.test(value) && !value.includes(' #')) return value;
  if (!value.includes("'") && !/[\n\r]/.test(value) && value.includes('"')) return `'${value}'`;
  return '"' + value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t') + '"';
}

/**
 * A text for `vars`. With `previous` (what the user had), its comments, blank lines and order
 * are kept: lines of variables still there keep their own text when the value is unchanged,
 * removed variables go, new ones are appended in name order.
 */
export function serialize(vars: ReadonlyMap<string, string>, previous?: Parsed): string {
  const out: string[] = [];
  const written = new Set<string>();
  for (const line of previous?.lines ?? []) {
    if (line.kind !== 'var') {
      out.push(line.raw);
      continue;
    }
    if (written.has(line.key) || !vars.has(line.key)) continue;
    const value = vars.get(line.key) as string;
    out.push(value === line.value ? line.raw : `${line.key}=${quote(value)}`);
    written.add(line.key);
  }
  for (const key of [...vars.keys()].sort()) {
    if (!written.has(key)) out.push(`${key}=${quote(vars.get(key) as string)}`);
  }
  return out.length === 0 ? '' : out.join('\n') + '\n';
}

/** Whether two sets of variables are the same. */
export function sameVars(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** What saving `next` over `current` changes: names set (new or changed) and removed. */
export function diff(current: ReadonlyMap<string, string>, next: ReadonlyMap<string, string>): { set: string[]; removed: string[] } {
  const set = [...next].filter(([k, v]) => current.get(k) !== v).map(([k]) => k);
  const removed = [...current.keys()].filter((k) => !next.has(k));
  return { set, removed };
}
