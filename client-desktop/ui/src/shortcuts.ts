// The in-call keyboard shortcuts, in one table so the handler, the tooltips and
// aria-keyshortcuts cannot disagree.

export type ShortcutAction = 'mic' | 'camera' | 'chat' | 'people' | 'hand' | 'leave';

export interface Shortcut {
  action: ShortcutAction;
  ctrl: true;
  alt: boolean;
  /** Lower-case letter. */
  key: string;
  /** For tooltips: "Ctrl+Alt+C". */
  label: string;
  /** For aria-keyshortcuts: "Control+Alt+C". */
  aria: string;
}

function sc(action: ShortcutAction, alt: boolean, key: string): Shortcut {
  const mods = alt ? 'Alt+' : '';
  const k = key.toUpperCase();
  return { action, ctrl: true, alt, key, label: `Ctrl+${mods}${k}`, aria: `Control+${mods}${k}` };
}

export const SHORTCUTS: Record<ShortcutAction, Shortcut> = {
  mic: sc('mic', false, 'd'),
  camera: sc('camera', false, 'e'),
  chat: sc('chat', true, 'c'),
  people: sc('people', true, 'p'),
  hand: sc('hand', true, 'h'),
  leave: sc('leave', true, 'l'),
};

/** Typing in a field is never a shortcut. */
export function isTypingTarget(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  const tag = target.tagName;
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || target.isContentEditable;
}

interface KeyLike {
  key: string;
  code: string;
  ctrlKey: boolean;
  altKey: boolean;
  shiftKey: boolean;
  metaKey: boolean;
}

/** The shortcut a key press means, if any. The letter is read from `key`; when a layout or
 * AltGr turns Ctrl+Alt+letter into another character, the physical key (`code`) decides. */
export function matchShortcut(e: KeyLike): ShortcutAction | null {
  if (!e.ctrlKey || e.shiftKey || e.metaKey) return null;
  const key = e.key.length === 1 ? e.key.toLowerCase() : '';
  const latin = /^[a-z]$/.test(key);
  for (const s of Object.values(SHORTCUTS)) {
    if (s.alt !== e.altKey) continue;
    if (latin ? key === s.key : e.code === 'Key' + s.key.toUpperCase()) return s.action;
  }
  return null;
}
