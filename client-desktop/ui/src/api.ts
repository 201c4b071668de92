// The page's only way to talk to Rust: typed wrappers over the Tauri commands and the "hearth"
// event. Argument keys are snake_case exactly as the commands declare them. Every command that
// fails rejects with a `UiError`; `asUiError` turns anything else thrown into one, so callers
// always have a title and a "what to do" to show.

import { invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import type {
  AppInfo,
  ChatEntry,
  Devices,
  ErrorKind,
  FrameServerInfo,
  Invite,
  JoinRequest,
  Settings,
  TilePaint,
  UiError,
  UiEvent,
  View,
} from './bindings';

export const api = {
  appInfo: () => invoke<AppInfo>('app_info'),
  getSettings: () => invoke<Settings>('get_settings'),
  saveSettings: (settings: Settings) => invoke<void>('save_settings', { settings }),
  listDevices: () => invoke<Devices>('list_devices'),
  frameServer: () => invoke<FrameServerInfo>('frame_server'),
  startPreview: (a: { camera: string | null; microphone: string | null; camera_on: boolean; mic_on: boolean }) =>
    invoke<void>('start_preview', a),
  stopPreview: () => invoke<void>('stop_preview'),
  testSpeaker: (speaker: string | null) => invoke<void>('test_speaker', { speaker }),
  getView: () => invoke<View>('get_view'),
  getChat: () => invoke<ChatEntry[]>('get_chat'),
  join: (request: JoinRequest) => invoke<void>('join', { request }),
  leave: () => invoke<void>('leave'),
  setMuted: (muted: boolean) => invoke<void>('set_muted', { muted }),
  setCamera: (on: boolean) => invoke<void>('set_camera', { on }),
  startScreenShare: (screen: string | null) => invoke<void>('start_screen_share', { screen }),
  stopScreenShare: () => invoke<void>('stop_screen_share'),
  sendChat: (text: string, to: string | null) => invoke<void>('send_chat', { text, to }),
  react: (emoji: string) => invoke<void>('react', { emoji }),
  raiseHand: (raised: boolean) => invoke<void>('raise_hand', { raised }),
  addTestParticipant: () => invoke<void>('add_test_participant'),
  removeTestParticipant: () => invoke<void>('remove_test_participant'),
  // The id is a u64 on the Rust side; it arrives as a JSON number (see bindings' `bigint`).
  dismissNotice: (id: number | bigint) => invoke<void>('dismiss_notice', { id: Number(id) }),
  saveDiagnostics: () => invoke<string>('save_diagnostics'),
  pendingInvite: () => invoke<Invite | null>('pending_invite'),
  reportPaint: (tiles: TilePaint[]) => invoke<void>('report_paint', { tiles }),
  uiError: (message: string, stack: string) => invoke<void>('ui_error', { message, stack }),
  // Not in bindings.ts (commands without types of their own), see client-desktop/src/commands.rs:
  /** The first screen is painted (the launch-time figure; the self-test waits for it). */
  uiReady: () => invoke<void>('ui_ready'),
  /** Opens an http(s) link in the system browser (the webview never navigates away). */
  openLink: (url: string) => invoke<void>('open_link', { url }),
};

let readySent = false;

/** Tells Rust, once per page load, that a screen is on the display: after the next two
 * animation frames, i.e. once the frame with it has been painted. */
export function signalReady(): void {
  if (readySent) return;
  readySent = true;
  requestAnimationFrame(() =>
    requestAnimationFrame(() => {
      api.uiReady().catch((e) => console.warn('ui_ready failed', e));
    }),
  );
}

/** Subscribes to every event Rust sends; resolves to the unsubscribe function. */
export function onHearthEvent(handler: (event: UiEvent) => void): Promise<() => void> {
  return listen<UiEvent>('hearth', (e) => handler(e.payload));
}

const KINDS: ReadonlySet<string> = new Set<ErrorKind>([
  'server_unreachable', 'bad_server_url', 'wrong_password', 'password_required', 'too_many_attempts',
  'room_full', 'token_refused', 'version_mismatch', 'name_taken', 'invalid_input', 'camera_missing',
  'camera_busy', 'camera_denied', 'camera_lost', 'no_microphone', 'microphone_busy', 'microphone_denied',
  'microphone_lost', 'no_speaker', 'screen_share_failed', 'peer_unreachable', 'embedded_server_failed',
  'internal',
]);

/** A rejected command's reason as a `UiError` (Tauri itself rejects with plain strings, e.g.
 * for an unknown command; those become `internal`). */
export function asUiError(reason: unknown): UiError {
  if (reason && typeof reason === 'object') {
    const r = reason as Partial<UiError>;
    if (typeof r.title === 'string' && typeof r.message === 'string') {
      return {
        kind: typeof r.kind === 'string' && KINDS.has(r.kind) ? r.kind : 'internal',
        title: r.title,
        message: r.message,
        detail: typeof r.detail === 'string' ? r.detail : '',
      };
    }
  }
  const detail = reason instanceof Error ? reason.message : String(reason);
  return {
    kind: 'internal',
    title: 'Something went wrong',
    message: 'Try again. If it keeps happening, save diagnostics (More menu) and report it.',
    detail,
  };
}
