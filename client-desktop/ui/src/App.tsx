// The page: holds the latest View from Rust (the whole call state, replaced on every `view`
// event), the chat, and presentation-only state (open panel, chat thread, unread counts,
// toasts); picks the screen for the phase.

import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, asUiError, onHearthEvent } from './api';
import type { AppInfo, ChatEntry, UiError, UiEvent, View } from './bindings';
import { ROOM, mergeChat, threadOf } from './chat';
import type { ThreadKey } from './chat';
import { ErrorCard } from './components/ErrorCard';
import { Toasts } from './components/Toasts';
import type { Toast } from './components/Toasts';
import { dispatchHearthEvent } from './events';
import { Call } from './screens/Call';
import type { Panel } from './screens/Call';
import { PreJoin } from './screens/PreJoin';
import { startPaintReporting } from './video/paint-stats';

const TOAST_MS = 5000;
const TOAST_WITH_DETAIL_MS = 15000;

function isCallPhase(v: View | null): boolean {
  const p = v?.phase.phase;
  return p === 'in_call' || p === 'reconnecting';
}

export function App() {
  const [view, setView] = useState<View | null>(null);
  const [loadError, setLoadError] = useState<UiError | null>(null);
  const [info, setInfo] = useState<AppInfo | null>(null);
  const [chat, setChat] = useState<ChatEntry[]>([]);
  const [panel, setPanelState] = useState<Panel>(null);
  const [thread, setThreadState] = useState<ThreadKey>(ROOM);
  const [unread, setUnread] = useState<Record<ThreadKey, number>>({});
  const [toasts, setToasts] = useState<Toast[]>([]);
  const toastId = useRef(1);

  // What the reader sees now, for counting unread messages in event handlers.
  const seen = useRef({ panel, thread });
  seen.current = { panel, thread };

  const clearUnread = (t: ThreadKey) =>
    setUnread((u) => {
      if (!u[t]) return u;
      const next = { ...u };
      delete next[t];
      return next;
    });
  const setPanel = (p: Panel) => {
    setPanelState(p);
    if (p === 'chat') clearUnread(seen.current.thread);
  };
  const setThread = (t: ThreadKey) => {
    setThreadState(t);
    clearUnread(t);
  };

  const toast = (message: string, detail?: string) => {
    const id = toastId.current++;
    setToasts((list) => list.concat({ id, message, detail }).slice(-4));
    setTimeout(() => setToasts((list) => list.filter((t) => t.id !== id)), detail ? TOAST_WITH_DETAIL_MS : TOAST_MS);
  };

  const onEvent = (e: UiEvent) => {
    switch (e.type) {
      case 'view':
        // Events arrive in order: the newest always wins.
        setView(e.view);
        break;
      case 'chat': {
        setChat((c) => mergeChat(c, [e.entry]));
        const key = threadOf(e.entry);
        const { panel: p, thread: t } = seen.current;
        if (!e.entry.mine && !(p === 'chat' && t === key)) {
          setUnread((u) => ({ ...u, [key]: (u[key] ?? 0) + 1 }));
        }
        break;
      }
      case 'toast':
        toast(e.message);
        break;
      default:
        break;
    }
    dispatchHearthEvent(e);
  };
  const latestOnEvent = useRef(onEvent);
  latestOnEvent.current = onEvent;

  const load = () => {
    setLoadError(null);
    Promise.all([api.getView(), api.getChat()]).then(
      ([v, c]) => {
        // An event may have brought a newer View while we waited.
        setView((cur) => (cur && Number(cur.rev) > Number(v.rev) ? cur : v));
        setChat((cur) => mergeChat(c, cur));
      },
      (e) => setLoadError(asUiError(e)),
    );
  };

  useEffect(() => {
    let disposed = false;
    let unlisten: (() => void) | null = null;
    // Listen first, then ask for the state, so no change falls between the two.
    onHearthEvent((e) => latestOnEvent.current(e)).then(
      (u) => {
        if (disposed) u();
        else {
          unlisten = u;
          load();
        }
      },
      (e) => setLoadError(asUiError(e)),
    );
    api.appInfo().then(setInfo, (e) => console.warn('app_info failed', e));
    const stopPaint = startPaintReporting();
    return () => {
      disposed = true;
      unlisten?.();
      stopPaint();
    };
  }, []);

  // Entering a call: its chat history (the server sends it on join). Leaving: a clean slate.
  const inCall = isCallPhase(view);
  const wasInCall = useRef(false);
  useEffect(() => {
    if (inCall && !wasInCall.current) {
      api.getChat().then(
        (c) => setChat((cur) => mergeChat(c, cur)),
        (e) => console.warn('get_chat failed', e),
      );
    }
    if (!inCall && wasInCall.current) {
      setChat([]);
      setUnread({});
      setPanelState(null);
      setThreadState(ROOM);
    }
    wasInCall.current = inCall;
  }, [inCall]);

  const phase = view ? view.phase.phase : loadError ? 'unavailable' : 'loading';
  // A layout effect: the attribute changes in the same frame as the screen it names.
  useLayoutEffect(() => {
    document.documentElement.setAttribute('data-phase', phase);
  }, [phase]);
  useLayoutEffect(() => {
    document.title = inCall && view?.room ? `${view.room} — Hearth` : 'Hearth';
  }, [inCall, view?.room]);

  let content;
  if (!view && loadError) {
    content = (
      <div class="center-screen">
        <ErrorCard error={loadError}>
          <button type="button" class="button primary" data-testid="retry" onClick={load}>
            Try again
          </button>
        </ErrorCard>
      </div>
    );
  } else if (!view) {
    content = (
      <div class="center-screen" aria-busy="true">
        <span class="spinner" aria-hidden="true" /> Starting Hearth…
      </div>
    );
  } else if (inCall && view.me) {
    content = (
      <Call
        view={view}
        me={view.me}
        chat={chat}
        panel={panel}
        setPanel={setPanel}
        thread={thread}
        setThread={setThread}
        unread={unread}
        toast={toast}
      />
    );
  } else if (inCall) {
    content = (
      <div class="center-screen" aria-busy="true" data-testid="progress" data-phase={phase}>
        <span class="spinner" aria-hidden="true" /> Entering the call…
      </div>
    );
  } else {
    content = <PreJoin view={view} info={info} />;
  }

  return (
    <div class="app" data-phase={phase}>
      {content}
      <Toasts toasts={toasts} onDismiss={(id) => setToasts((list) => list.filter((t) => t.id !== id))} />
    </div>
  );
}
