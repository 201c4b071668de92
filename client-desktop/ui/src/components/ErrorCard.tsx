// A failure for people: the title, what to do, the next-step buttons, and the technical detail
// behind a disclosure.

import type { ComponentChildren } from 'preact';
import type { UiError } from '../bindings';
import { CloseIcon } from './icons';

export function ErrorCard({
  error,
  testid = 'error',
  children,
  onDismiss,
  compact,
}: {
  error: UiError;
  testid?: string;
  children?: ComponentChildren;
  onDismiss?: () => void;
  compact?: boolean;
}) {
  return (
    <div class={'error-card' + (compact ? ' compact' : '')} role="alert" data-testid={testid} data-kind={error.kind}>
      <div class="error-text">
        <strong class="error-title">{error.title}</strong>
        <p class="error-message">{error.message}</p>
        {children ? <div class="error-actions">{children}</div> : null}
        {error.detail ? (
          <details class="error-detail">
            <summary>Details</summary>
            <pre>{error.detail}</pre>
          </details>
        ) : null}
      </div>
      {onDismiss ? (
        <button type="button" class="icon-button dismiss" aria-label="Dismiss" title="Dismiss" onClick={onDismiss}>
          <CloseIcon />
        </button>
      ) : null}
    </div>
  );
}
