// UI crashes: a component that threw, or an error or rejected promise nobody handled. Each is
// reported to Rust (`ui_error`, for the log and diagnostics) and shown on the recover screen,
// so the window is never left blank or half-working without saying so.

import { api } from './api';

export interface Crash {
  message: string;
  stack: string;
}

type Listener = (crash: Crash) => void;
let listener: Listener | null = null;

/** The error boundary registers here to show crashes that happen outside rendering. */
export function onCrash(l: Listener | null): void {
  listener = l;
}

export function describe(reason: unknown): Crash {
  if (reason instanceof Error) return { message: `${reason.name}: ${reason.message}`, stack: reason.stack ?? '' };
  if (reason && typeof reason === 'object') {
    try {
      return { message: JSON.stringify(reason), stack: '' };
    } catch {
      // A cyclic object: its string form will do.
    }
  }
  return { message: String(reason), stack: '' };
}

export function reportCrash(crash: Crash): void {
  console.error('UI crash:', crash.message, crash.stack);
  api.uiError(crash.message, crash.stack).catch(() => undefined);
}

/** Browsers report these as errors although nothing broke. */
function harmless(message: string): boolean {
  return message.includes('ResizeObserver loop');
}

export function installGlobalHandlers(): void {
  window.addEventListener('error', (e: ErrorEvent) => {
    const crash = e.error !== undefined && e.error !== null ? describe(e.error) : { message: e.message || 'Script error', stack: `${e.filename}:${e.lineno}:${e.colno}` };
    if (harmless(crash.message)) return;
    reportCrash(crash);
    listener?.(crash);
  });
  window.addEventListener('unhandledrejection', (e: PromiseRejectionEvent) => {
    const crash = describe(e.reason);
    if (harmless(crash.message)) return;
    reportCrash(crash);
    listener?.(crash);
  });
}
