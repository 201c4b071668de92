// The call's controls bar: microphone, camera, screen share, reactions, raise hand, chat,
// people, more, leave. Always on screen; below ~900 px wide the labels go and icons stay.

import type { ComponentChildren, Ref } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Device, MeView, View } from '../bindings';
import { SHORTCUTS } from '../shortcuts';
import type { ShortcutAction } from '../shortcuts';
import { CameraIcon, ChatIcon, HandIcon, LeaveIcon, MicIcon, MoreIcon, PeopleIcon, ScreenIcon, SmileIcon } from './icons';

export const REACTIONS: Array<[string, string]> = [
  ['👍', 'Thumbs up'],
  ['👏', 'Clapping'],
  ['😂', 'Laughing'],
  ['❤️', 'Heart'],
  ['🎉', 'Celebrate'],
  ['😮', 'Surprised'],
];

export interface ControlActions {
  toggleMic: () => void;
  toggleCamera: () => void;
  /** Lists the screens; one: shares it, several: the caller shows a picker. */
  listScreens: () => Promise<Device[]>;
  shareScreen: (screen: string | null) => void;
  stopScreen: () => void;
  react: (emoji: string) => void;
  toggleHand: () => void;
  toggleChat: () => void;
  togglePeople: () => void;
  addTest: () => void;
  removeTest: () => void;
  copyInvite: () => void;
  saveDiagnostics: () => void;
  leave: () => void;
}

type Menu = 'screen' | 'react' | 'more' | null;

function tip(text: string, action?: ShortcutAction): string {
  return action ? `${text} (${SHORTCUTS[action].label})` : text;
}

function ControlButton({
  testid,
  label,
  title,
  shortcut,
  pressed,
  on,
  disabled,
  danger,
  expanded,
  onClick,
  children,
  badge,
  buttonRef,
  text,
  warnOff,
}: {
  testid: string;
  label: string;
  title: string;
  shortcut?: ShortcutAction;
  pressed?: boolean;
  on?: boolean;
  disabled?: boolean;
  danger?: boolean;
  expanded?: boolean;
  onClick: () => void;
  children: ComponentChildren;
  badge?: ComponentChildren;
  buttonRef?: Ref<HTMLButtonElement>;
  text: string;
  warnOff?: boolean;
}) {
  // Microphone and camera warn when off; the other toggles light up when on.
  const cls = ['control', warnOff && on === false ? 'off' : '', !warnOff && pressed ? 'active' : '', danger ? 'danger' : '']
    .filter(Boolean)
    .join(' ');
  return (
    <button
      ref={buttonRef}
      type="button"
      class={cls}
      data-testid={testid}
      data-on={on === undefined ? undefined : on ? 'true' : 'false'}
      aria-label={label}
      aria-pressed={pressed === undefined ? undefined : pressed ? 'true' : 'false'}
      aria-expanded={expanded === undefined ? undefined : expanded ? 'true' : 'false'}
      aria-haspopup={expanded === undefined ? undefined : 'menu'}
      aria-keyshortcuts={shortcut ? SHORTCUTS[shortcut].aria : undefined}
      aria-disabled={disabled ? 'true' : undefined}
      title={tip(title, shortcut)}
      onClick={() => {
        if (!disabled) onClick();
      }}
    >
      {children}
      <span class="control-label">{text}</span>
      {badge}
    </button>
  );
}

export function Controls({
  view,
  me,
  panel,
  unread,
  actions,
}: {
  view: View;
  me: MeView;
  panel: 'chat' | 'people' | null;
  unread: number;
  actions: ControlActions;
}) {
  const [menu, setMenu] = useState<Menu>(null);
  const [screens, setScreens] = useState<Device[]>([]);
  const bar = useRef<HTMLDivElement>(null);
  const triggers = {
    screen: useRef<HTMLButtonElement>(null),
    react: useRef<HTMLButtonElement>(null),
    more: useRef<HTMLButtonElement>(null),
  };

  useEffect(() => {
    if (menu === null) return undefined;
    const close = (refocus: boolean) => {
      const t = menu ? triggers[menu].current : null;
      setMenu(null);
      if (refocus) t?.focus();
    };
    const onDown = (e: MouseEvent) => {
      if (bar.current && !bar.current.contains(e.target as Node)) close(false);
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        close(true);
      }
    };
    document.addEventListener('mousedown', onDown);
    document.addEventListener('keydown', onKey, true);
    return () => {
      document.removeEventListener('mousedown', onDown);
      document.removeEventListener('keydown', onKey, true);
    };
  }, [menu]);

  // Put focus on the first item of a menu that opens, for keyboard users.
  const menuRef = useRef<HTMLDivElement>(null);
  useEffect(() => {
    menuRef.current?.querySelector<HTMLButtonElement>('button:not([disabled])')?.focus();
  }, [menu]);

  const toggleMenu = (m: Exclude<Menu, null>) => setMenu((cur) => (cur === m ? null : m));
  const pick = (fn: () => void) => () => {
    setMenu(null);
    fn();
  };

  async function onScreen() {
    if (me.screen_sharing) {
      actions.stopScreen();
      return;
    }
    if (menu === 'screen') {
      setMenu(null);
      return;
    }
    const list = await actions.listScreens();
    if (list.length > 1) {
      setScreens(list);
      setMenu('screen');
    } else {
      actions.shareScreen(list.length === 1 ? list[0].id : null);
    }
  }

  const micOn = !me.audio_muted;
  return (
    <div class="controls" ref={bar} role="toolbar" aria-label="Call controls">
      <div class="controls-group">
        <ControlButton
          testid="btn-mic"
          label="Microphone"
          text={micOn ? 'Mute' : 'Unmute'}
          title={!me.has_microphone ? 'No microphone: connect one and rejoin' : micOn ? 'Mute' : 'Unmute'}
          shortcut="mic"
          pressed={micOn}
          on={micOn}
          warnOff
          disabled={!me.has_microphone}
          onClick={actions.toggleMic}
        >
          <MicIcon off={!micOn} />
        </ControlButton>
        <ControlButton
          testid="btn-camera"
          label="Camera"
          text={me.camera_on ? 'Stop video' : 'Start video'}
          title={!me.has_camera ? 'No camera: connect one and rejoin' : me.camera_on ? 'Turn the camera off' : 'Turn the camera on'}
          shortcut="camera"
          pressed={me.camera_on}
          on={me.camera_on}
          warnOff
          disabled={!me.has_camera}
          onClick={actions.toggleCamera}
        >
          <CameraIcon off={!me.camera_on} />
        </ControlButton>
        <div class="menu-anchor">
          <ControlButton
            buttonRef={triggers.screen}
            testid="btn-screen"
            label="Share screen"
            text={me.screen_sharing ? 'Stop sharing' : 'Share'}
            title={me.screen_sharing ? 'Stop sharing your screen' : 'Share your screen'}
            pressed={me.screen_sharing}
            on={me.screen_sharing}
            onClick={() => void onScreen()}
          >
            <ScreenIcon />
          </ControlButton>
          {menu === 'screen' ? (
            <div class="menu" role="menu" aria-label="Choose a screen" ref={menuRef} data-testid="screen-menu">
              {screens.map((s) => (
                <button
                  type="button"
                  role="menuitem"
                  key={s.id}
                  data-testid="screen-option"
                  data-screen={s.id}
                  onClick={pick(() => actions.shareScreen(s.id))}
                >
                  {s.name}
                  {s.is_default ? ' (main)' : ''}
                </button>
              ))}
            </div>
          ) : null}
        </div>
        <div class="menu-anchor">
          <ControlButton
            buttonRef={triggers.react}
            testid="btn-react"
            label="Reactions"
            text="React"
            title="Send a reaction"
            expanded={menu === 'react'}
            onClick={() => toggleMenu('react')}
          >
            <SmileIcon />
          </ControlButton>
          {menu === 'react' ? (
            <div class="menu reactions-menu" role="menu" aria-label="Reactions" ref={menuRef} data-testid="reactions-menu">
              {REACTIONS.map(([emoji, name]) => (
                <button
                  type="button"
                  role="menuitem"
                  key={emoji}
                  class="emoji-button"
                  data-testid="reaction-option"
                  data-emoji={emoji}
                  aria-label={name}
                  title={name}
                  onClick={pick(() => actions.react(emoji))}
                >
                  {emoji}
                </button>
              ))}
            </div>
          ) : null}
        </div>
        <ControlButton
          testid="btn-hand"
          label="Raise hand"
          text={me.hand_raised ? 'Lower hand' : 'Raise hand'}
          title={me.hand_raised ? 'Lower your hand' : 'Raise your hand'}
          shortcut="hand"
          pressed={me.hand_raised}
          on={me.hand_raised}
          onClick={actions.toggleHand}
        >
          <HandIcon />
        </ControlButton>
      </div>

      <div class="controls-group">
        <ControlButton
          testid="btn-chat"
          label={unread > 0 ? `Chat, ${unread} unread` : 'Chat'}
          text="Chat"
          title="Chat"
          shortcut="chat"
          pressed={panel === 'chat'}
          onClick={actions.toggleChat}
          badge={
            unread > 0 ? (
              <span class="count-badge" data-testid="chat-unread" aria-hidden="true">
                {unread > 99 ? '99+' : unread}
              </span>
            ) : null
          }
        >
          <ChatIcon />
        </ControlButton>
        <ControlButton
          testid="btn-people"
          label="People"
          text="People"
          title={`People (${view.peers.length + 1})`}
          shortcut="people"
          pressed={panel === 'people'}
          onClick={actions.togglePeople}
          badge={<span class="count-badge neutral" aria-hidden="true">{view.peers.length + 1}</span>}
        >
          <PeopleIcon />
        </ControlButton>
        <div class="menu-anchor">
          <ControlButton
            buttonRef={triggers.more}
            testid="btn-more"
            label="More"
            text="More"
            title="More actions"
            expanded={menu === 'more'}
            onClick={() => toggleMenu('more')}
          >
            <MoreIcon />
          </ControlButton>
          {menu === 'more' ? (
            <div class="menu more-menu" role="menu" aria-label="More actions" ref={menuRef} data-testid="more-menu">
              {view.test_participant ? (
                <button type="button" role="menuitem" data-testid="remove-test-participant" onClick={pick(actions.removeTest)}>
                  Remove the test participant
                </button>
              ) : (
                <button type="button" role="menuitem" data-testid="add-test-participant" onClick={pick(actions.addTest)}>
                  Add a test participant
                </button>
              )}
              <button
                type="button"
                role="menuitem"
                data-testid="copy-invite"
                disabled={!view.invite}
                onClick={pick(actions.copyInvite)}
              >
                Copy invite link
              </button>
              <button type="button" role="menuitem" data-testid="save-diagnostics" onClick={pick(actions.saveDiagnostics)}>
                Save diagnostics
              </button>
            </div>
          ) : null}
        </div>
        <ControlButton
          testid="btn-leave"
          label="Leave call"
          text="Leave"
          title="Leave the call"
          shortcut="leave"
          danger
          onClick={actions.leave}
        >
          <LeaveIcon />
        </ControlButton>
      </div>
    </div>
  );
}
