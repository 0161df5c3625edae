// Vite builds the dashboard into dist/, which the control plane embeds. Hashed file names under
// assets/ let the control plane cache them for a year; index.html is never cached.
import { defineConfig } from 'vite';

export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    // The CSP allows no inline script: nothing may be inlined as a data: module.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2022',
  },
  server: {
    // `npm run dev` next to `wh dev`: the API is the control plane's.
    proxy: { '/api': 'http://127.0.0.1:8081' },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
});
