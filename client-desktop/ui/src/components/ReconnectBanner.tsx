// The banner while the signaling connection is down: a live countdown to the engine's next
// attempt. The call stays on screen (media to peers may still flow).

import { useEffect, useState } from 'preact/hooks';
import { secondsUntil } from '../format';

export function ReconnectBanner({ retryAtMs, attempt }: { retryAtMs: number; attempt: number }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, []);
  const left = secondsUntil(retryAtMs, now);
  return (
    <div class="banner reconnect-banner" data-testid="reconnect-banner" data-attempt={attempt} data-seconds={left} role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" />
      <span>
        <strong>Reconnecting to the server…</strong>{' '}
        {left > 0 ? `Next try in ${left} s` : 'Trying now'} (attempt {attempt}). You can keep talking to people already
        connected.
      </span>
    </div>
  );
}
