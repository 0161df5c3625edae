// A folder picked in the browser as the gzip-compressed tar archive an upload deploy takes
// (ustar; regular files only, as the control plane's archive check accepts).

export interface TarFile {
  path: string;
  data: Uint8Array;
  mode?: number;
}

const enc = new TextEncoder();

function field(block: Uint8Array, offset: number, length: number, value: string): void {
  const bytes = enc.encode(value);
  if (bytes.length > length) throw new Error(`tar: "${value}" is too long`);
  block.set(bytes, offset);
}

function octal(block: Uint8Array, offset: number, length: number, n: number): void {
  field(block, offset, length, n.toString(8).padStart(length - 1, '0') + '\0');
}

/** Splits a path into ustar's prefix (≤ 155 bytes) and name (≤ 100 bytes). */
function split(path: string): [string, string] {
  if (enc.encode(path).length <= 100) return ['', path];
  for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (enc.encode(prefix).length <= 155 && enc.encode(name).length <= 100) return [prefix, name];
  }
  throw new Error(`tar: the path ${path} is too long`);
}

export function tar(files: TarFile[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const f of files) {
    const header = new Uint8Array(512);
    const [prefix, name] = split(f.path);
    field(header, 0, 100, name);
    octal(header, 100, 8, f.mode ?? 0o644);
    octal(header, 108, 8, 0);
    octal(header, 116, 8, 0);
    octal(header, 124, 12, f.data.length);
    octal(header, 136, 12, 0);
    header.fill(0x20, 148, 156);
    header[156] = 0x30; // '0': a regular file
    field(header, 257, 6, 'ustar\0');
    field(header, 263, 2, '00');
    field(header, 345, 155, prefix);
    let sum = 0;
    for (const b of header) sum += b;
    field(header, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
    blocks.push(header);
    const padded = new Uint8Array(Math.ceil(f.data.length / 512) * 512);
    padded.set(f.data);
    blocks.push(padded);
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** The files of a folder input (`webkitdirectory`), paths relative to the folder. */
export async function folderArchive(list: FileList): Promise<Blob> {
  const files: TarFile[] = [];
  for (const file of Array.from(list)) {
    // "folder/sub/file": drop the picked folder's own name.
    const rel = (file.webkitRelativePath || file.name).split('/').slice(1).join('/') || file.name;
    files.push({ path: rel, data: new Uint8Array(await file.arrayBuffer()) });
  }
  const stream = new Blob([tar(files) as BlobPart]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Response(stream).blob();
}
