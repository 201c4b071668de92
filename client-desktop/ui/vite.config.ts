// Builds the page into dist/ for the Tauri shell (custom protocol, so paths are relative).
// The dev server (port 1420, what tauri.conf.json's devUrl points at) also serves fake frame
// streams for `npm run dev` in a plain browser (see dev/mock-frame-server.ts).

import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';
import { mockFrameServer } from './dev/mock-frame-server.ts';

export default defineConfig(({ command }) => ({
  base: './',
  plugins: [preact({ devToolsEnabled: false, prefreshEnabled: true }), command === 'serve' ? mockFrameServer() : null],
  clearScreen: false,
  server: {
    port: 1420,
    strictPort: true,
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // WebKitGTK 2.4x (Tauri on Linux) and the Safari-era WebKit of macOS webviews.
    target: 'safari13',
    cssTarget: 'safari13',
    sourcemap: false,
    // No modulepreload polyfill: one entry chunk, nothing to preload.
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
    chunkSizeWarningLimit: 200,
  },
}));
