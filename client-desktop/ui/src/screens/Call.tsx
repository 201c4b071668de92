// The call: tiles in a grid (or the shared screen large with people in a strip), the notices
// and reconnect banner above, the chat or people panel beside (an overlay on narrow windows),
// and the controls bar below. Renders from the View; keeps only presentation state.

import { useEffect, useRef, useState } from 'preact/hooks';
import { api, asUiError, signalReady } from '../api';
import type { ChatEntry, MeView, UiError, View } from '../bindings';
import type { ThreadKey } from '../chat';
import { ChatPanel } from '../components/ChatPanel';
import { Controls } from '../components/Controls';
import type { ControlActions } from '../components/Controls';
import { ErrorCard } from '../components/ErrorCard';
import { PeoplePanel } from '../components/PeoplePanel';
import { ReconnectBanner } from '../components/ReconnectBanner';
import { Tile } from '../components/Tile';
import type { FloatingReaction } from '../components/Tile';
import { useHearthEvent } from '../events';
import { bestGrid } from '../layout';
import { SHORTCUTS, isTypingTarget, matchShortcut } from '../shortcuts';
import { SELF, buildStage } from '../tiles';
import type { TileModel } from '../tiles';

export type Panel = 'chat' | 'people' | null;

const REACTION_MS = 3000;

export interface CallProps {
  view: View;
  me: MeView;
  chat: ChatEntry[];
  panel: Panel;
  setPanel: (p: Panel) => void;
  thread: ThreadKey;
  setThread: (t: ThreadKey) => void;
  unread: Record<ThreadKey, number>;
  toast: (message: string, detail?: string) => void;
}

async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // Fall through to the selection-based copy below.
  }
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.style.position = 'fixed';
  ta.style.opacity = '0';
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

export function Call({ view, me, chat, panel, setPanel, thread, setThread, unread, toast }: CallProps) {
  const [errors, setErrors] = useState<Array<{ id: number; error: UiError }>>([]);
  const [reactions, setReactions] = useState<FloatingReaction[]>([]);
  const nextId = useRef(1);
  const stage = buildStage(view);

  // A page reloaded mid-call is ready when the call is on screen.
  useEffect(signalReady, []);

  const showError = (e: unknown) => {
    const error = asUiError(e);
    const id = nextId.current++;
    // One card per kind: pressing a failing button twice does not stack the same message.
    setErrors((list) => list.filter((x) => x.error.kind !== error.kind).concat({ id, error }));
  };
  const run = (p: Promise<unknown>) => {
    p.catch(showError);
  };

  useHearthEvent('reaction', (e) => {
    const peerId = e.peer_id === me.peer_id || e.peer_id === SELF ? SELF : e.peer_id;
    const id = nextId.current++;
    setReactions((list) => list.concat({ id, peerId, emoji: e.emoji, x: Math.random() }));
    setTimeout(() => setReactions((list) => list.filter((r) => r.id !== id)), REACTION_MS);
  });

  const totalUnread = Object.values(unread).reduce((a, b) => a + b, 0);

  const actions: ControlActions = {
    toggleMic: () => run(api.setMuted(!me.audio_muted)),
    toggleCamera: () => run(api.setCamera(!me.camera_on)),
    listScreens: () =>
      api.listDevices().then(
        (d) => d.screens,
        (e) => {
          showError(e);
          return [];
        },
      ),
    shareScreen: (screen) => run(api.startScreenShare(screen)),
    stopScreen: () => run(api.stopScreenShare()),
    react: (emoji) => run(api.react(emoji)),
    toggleHand: () => run(api.raiseHand(!me.hand_raised)),
    toggleChat: () => setPanel(panel === 'chat' ? null : 'chat'),
    togglePeople: () => setPanel(panel === 'people' ? null : 'people'),
    addTest: () => run(api.addTestParticipant()),
    removeTest: () => run(api.removeTestParticipant()),
    copyInvite: () => {
      const link = view.invite;
      if (!link) return;
      void copyText(link).then((ok) => toast(ok ? 'Invite link copied' : 'Copy this invite link:', link));
    },
    saveDiagnostics: () =>
      run(api.saveDiagnostics().then((path) => toast('Diagnostics saved. Attach this file to a bug report:', path))),
    leave: () => run(api.leave()),
  };

  // Keyboard shortcuts (never while typing in a field).
  const latest = useRef(actions);
  latest.current = actions;
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || e.repeat) return;
      if (e.key === 'Escape') {
        // Also from the chat box: Escape closes the panel it is in.
        setPanel(null);
        return;
      }
      if (isTypingTarget(e.target)) return;
      const action = matchShortcut(e);
      if (!action) return;
      e.preventDefault();
      const a = latest.current;
      ({ mic: a.toggleMic, camera: a.toggleCamera, chat: a.toggleChat, people: a.togglePeople, hand: a.toggleHand, leave: a.leave })[action]();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [setPanel]);

  const removeTest = () => run(api.removeTestParticipant());
  const reactionsOf = (t: TileModel) => (t.kind === 'camera' ? reactions.filter((r) => r.peerId === t.peerId) : []);
  // A reaction from someone without a tile on screen floats over the stage instead.
  const tilePeers = new Set(stage.tiles.filter((t) => t.kind === 'camera').map((t) => t.peerId));
  const strayReactions = reactions.filter((r) => !tilePeers.has(r.peerId));

  const phase = view.phase;
  return (
    <div class={'call' + (panel ? ' with-panel' : '')} data-testid="call" data-layout={stage.layout}>
      <div class="call-top">
        {phase.phase === 'reconnecting' ? <ReconnectBanner retryAtMs={phase.retry_at_ms} attempt={phase.attempt} /> : null}
        {view.notices.map((n) => (
          <ErrorCard
            key={String(n.id)}
            error={n.error}
            testid="notice"
            compact
            onDismiss={() => run(api.dismissNotice(n.id))}
          />
        ))}
        {errors.map((x) => (
          <ErrorCard key={x.id} error={x.error} compact onDismiss={() => setErrors((l) => l.filter((y) => y.id !== x.id))} />
        ))}
      </div>

      <div class="call-body">
        <main class="stage" aria-label={`Call in ${view.room}`}>
          {stage.layout === 'presenter' && stage.main ? (
            <div class="presenter">
              <div class="presenter-main">
                <Tile tile={stage.main} reactions={[]} onRemoveTest={removeTest} />
              </div>
              <div class="strip" aria-label="People">
                {stage.tiles.map((t) => (
                  <Tile key={t.id} tile={t} reactions={reactionsOf(t)} onRemoveTest={removeTest} small />
                ))}
              </div>
            </div>
          ) : (
            <Grid tiles={stage.tiles} reactionsOf={reactionsOf} onRemoveTest={removeTest} />
          )}
          {strayReactions.map((r) => (
            <span key={r.id} class="reaction-float stray" data-testid="reaction" style={{ left: `${10 + r.x * 80}%` }} aria-hidden="true">
              {r.emoji}
            </span>
          ))}
          {me.speaking && me.audio_muted ? (
            <div class="muted-hint" data-testid="muted-hint" role="status">
              You are muted. Press {SHORTCUTS.mic.label} to unmute.
            </div>
          ) : null}
        </main>

        {panel === 'chat' ? (
          <ChatPanel chat={chat} peers={view.peers} thread={thread} unread={unread} onThread={setThread} onClose={() => setPanel(null)} />
        ) : null}
        {panel === 'people' ? (
          <PeoplePanel
            me={me}
            peers={view.peers}
            onClose={() => setPanel(null)}
            onMessage={(peerId) => {
              setThread(peerId);
              setPanel('chat');
            }}
          />
        ) : null}
      </div>

      <Controls view={view} me={me} panel={panel} unread={totalUnread} actions={actions} />
    </div>
  );
}

/** Tiles sized to the largest 16:9 that fits the stage for their count. */
function Grid({
  tiles,
  reactionsOf,
  onRemoveTest,
}: {
  tiles: TileModel[];
  reactionsOf: (t: TileModel) => FloatingReaction[];
  onRemoveTest: () => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [size, setSize] = useState<{ w: number; h: number } | null>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const measure = () => setSize({ w: el.clientWidth, h: el.clientHeight });
    measure();
    if (typeof ResizeObserver === 'undefined') {
      window.addEventListener('resize', measure);
      return () => window.removeEventListener('resize', measure);
    }
    const ro = new ResizeObserver(() => measure());
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const grid = size ? bestGrid(tiles.length, size.w, size.h) : null;
  const style = grid
    ? { gridTemplateColumns: `repeat(${grid.cols}, ${Math.floor(grid.width)}px)`, gridAutoRows: `${Math.floor(grid.height)}px` }
    : undefined;
  return (
    <div class="grid-box" ref={box}>
      <div class="grid" style={style} data-count={tiles.length} data-cols={grid?.cols ?? 0}>
        {tiles.map((t) => (
          <Tile key={t.id} tile={t} reactions={reactionsOf(t)} onRemoveTest={onRemoveTest} />
        ))}
      </div>
    </div>
  );
}
