// After `vite build`: writes a .gz and a .br twin of every text file in dist/ (the control
// plane serves them to clients that accept them), and fails the build when the JavaScript,
// gzipped, is over its budget of 150 KB.

import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const DIST = new URL('../dist/', import.meta.url).pathname;
const BUDGET = 150 * 1024;
const TEXT = /\.(js|mjs|css|html|svg|json|txt|webmanifest)$/;

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

let js = 0;
const rows = [];
for (const path of [...files(DIST)]) {
  if (!TEXT.test(path)) continue;
  const data = readFileSync(path);
  const gz = gzipSync(data, { level: 9 });
  const br = brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } });
  writeFileSync(path + '.gz', gz);
  writeFileSync(path + '.br', br);
  if (/\.m?js$/.test(path)) js += gz.length;
  rows.push(`${relative(DIST, path).padEnd(40)} ${String(data.length).padStart(8)} B  gzip ${String(gz.length).padStart(7)} B  br ${String(br.length).padStart(7)} B`);
}
console.log(rows.join('\n'));
console.log(`JavaScript, gzipped: ${(js / 1024).toFixed(1)} KB of ${BUDGET / 1024} KB`);
if (js > BUDGET) {
  console.error('over the JavaScript budget');
  process.exit(1);
}
