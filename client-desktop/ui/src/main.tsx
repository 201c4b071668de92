// Entry point: crash handlers first, then the page inside its error boundary. Run outside
// Tauri by the Vite dev server (`npm run dev` in a browser), a fake backend stands in for Rust
// (development only; it is not part of the built bundle).

import { render } from 'preact';
import { App } from './App';
import { ErrorBoundary } from './components/ErrorBoundary';
import { installGlobalHandlers } from './crash';
import './styles.css';

async function start() {
  installGlobalHandlers();
  if (import.meta.env.DEV && !('__TAURI_INTERNALS__' in window)) {
    const { installMockBackend } = await import('./dev/mock-backend');
    installMockBackend();
  }
  if (new URLSearchParams(location.search).get('bench') === 'frame-path') {
    // `hearth --bench-frame-path`: a measurement page instead of the app (see docs/decisions.md).
    const { runFramePathBench } = await import('./dev/frame-path-bench');
    await runFramePathBench();
    return;
  }
  const root = document.getElementById('app');
  if (!root) throw new Error('index.html has no #app element');
  render(
    <ErrorBoundary>
      <App />
    </ErrorBoundary>,
    root,
  );
}

void start();
