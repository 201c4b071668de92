// Fans the one "hearth" event subscription out to the components that care, so a high-rate
// event (the pre-join meter, ~20/s) re-renders only its meter, not the whole page.

import { useEffect, useRef } from 'preact/hooks';
import type { UiEvent } from './bindings';

type Handler = (event: UiEvent) => void;
const handlers = new Set<Handler>();

export function dispatchHearthEvent(event: UiEvent): void {
  for (const h of Array.from(handlers)) h(event);
}

/** Calls `handler` for each event of `type` while the component is mounted. */
export function useHearthEvent<T extends UiEvent['type']>(
  type: T,
  handler: (event: Extract<UiEvent, { type: T }>) => void,
): void {
  const latest = useRef(handler);
  latest.current = handler;
  useEffect(() => {
    const h: Handler = (e) => {
      if (e.type === type) latest.current(e as Extract<UiEvent, { type: T }>);
    };
    handlers.add(h);
    return () => {
      handlers.delete(h);
    };
  }, [type]);
}
