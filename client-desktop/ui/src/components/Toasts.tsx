// Short messages that go away by themselves (from Rust's `toast` events and from the page).

export interface Toast {
  id: number;
  message: string;
  /** Text worth selecting (a saved file's path): shown monospace. */
  detail?: string;
}

export function Toasts({ toasts, onDismiss }: { toasts: Toast[]; onDismiss: (id: number) => void }) {
  return (
    <div class="toasts" role="status" aria-live="polite">
      {toasts.map((t) => (
        <div class="toast" key={t.id} data-testid="toast">
          <span>{t.message}</span>
          {t.detail ? <code class="toast-detail">{t.detail}</code> : null}
          <button type="button" class="link-button" onClick={() => onDismiss(t.id)} aria-label="Dismiss message">
            OK
          </button>
        </div>
      ))}
    </div>
  );
}
