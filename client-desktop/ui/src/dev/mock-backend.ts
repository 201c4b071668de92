// Development only (loaded by main.tsx when the page runs outside Tauri under the Vite dev
// server; never in the built bundle): a small stand-in for the Rust side, so the page can be
// worked on and looked at in a browser. It follows the contract in bindings.ts: whole Views on
// every change, chat/reaction/toast events, the pre-join preview and meter.
//
// Scripted failures, by what you type: room "full" -> room_full, password "wrong" ->
// wrong_password, server "ws://nowhere" -> server_unreachable, camera "busy" (see devices).
// `window.__mock` can add peers, make them talk, share, drop the server, crash the page.

import { emit } from '@tauri-apps/api/event';
import { mockIPC } from '@tauri-apps/api/mocks';
import type {
  ChatEntry,
  Devices,
  JoinRequest,
  PeerView,
  Phase,
  QualityView,
  Settings,
  UiError,
  UiEvent,
  View,
} from '../bindings';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function err(kind: UiError['kind'], title: string, message: string, detail = ''): UiError {
  return { kind, title, message, detail };
}

export function installMockBackend(): void {
  let rev = 0;
  let settings: Settings = {
    name: '',
    room: 'standup',
    server: '',
    camera: null,
    microphone: null,
    speaker: null,
    camera_on: true,
    mic_on: true,
    audio: { echo_cancellation: true, noise_suppression: true, gain_control: true },
  };
  const devices: Devices = {
    cameras: [
      { id: 'synthetic', name: 'Test pattern', is_default: false },
      { id: 'video0', name: 'Integrated Camera', is_default: true },
      { id: 'busy', name: 'USB Camera (always busy)', is_default: false },
    ],
    microphones: [
      { id: 'synthetic', name: 'Test tone', is_default: false },
      { id: 'pulse', name: 'Built-in Audio Analog Stereo', is_default: true },
    ],
    speakers: [{ id: 'pulse-out', name: 'Built-in Audio Analog Stereo', is_default: true }],
    screens: [
      { id: 'screen-0', name: 'Screen 1 (1920×1080)', is_default: true },
      { id: 'screen-1', name: 'Screen 2 (2560×1440)', is_default: false },
    ],
    problems: [],
  };
  let chat: ChatEntry[] = [];
  let view: View = {
    rev: 0 as unknown as bigint,
    phase: { phase: 'idle' },
    room: '',
    server_label: '',
    embedded: true,
    me: null,
    peers: [],
    presenter: null,
    notices: [],
    test_participant: false,
    invite: null,
  };
  let previewTimer: ReturnType<typeof setInterval> | null = null;
  let statsTimer: ReturnType<typeof setInterval> | null = null;
  let noticeId = 1;

  const send = (e: UiEvent) => void emit('hearth', e);
  const update = (patch: Partial<View>) => {
    rev++;
    view = { ...view, ...patch, rev: rev as unknown as bigint };
    send({ type: 'view', view });
  };
  const setPhase = (phase: Phase) => update({ phase });
  const updateMe = (patch: Partial<NonNullable<View['me']>>) => {
    if (view.me) update({ me: { ...view.me, ...patch } });
  };
  const updatePeer = (id: string, patch: Partial<PeerView>) =>
    update({ peers: view.peers.map((p) => (p.peer_id === id ? { ...p, ...patch } : p)) });

  const quality = (level: string): QualityView => ({
    level,
    rtt_ms: 12 + Math.random() * 30,
    loss_pct: Math.random() * 2,
    jitter_ms: 2 + Math.random() * 5,
    sent_kbps: 900 + Math.random() * 300,
    received_kbps: 850 + Math.random() * 300,
    fps: 29 + Math.random(),
    width: 640,
    height: 360,
    candidates: 'host ↔ host (udp)',
    safety_code: '482 913',
    local_fingerprint: 'sha-256 AB:CD',
    remote_fingerprint: 'sha-256 EF:01',
  });

  let peerSeq = 0;
  const addPeer = (name: string, opts: Partial<PeerView> = {}): string => {
    const peer_id = opts.peer_id ?? `p${++peerSeq}`;
    const peer: PeerView = {
      peer_id,
      name,
      audio_muted: false,
      video_off: false,
      screen_sharing: false,
      hand_raised: false,
      away: false,
      link: 'connecting',
      level: 0,
      speaking: false,
      active_speaker: false,
      quality: null,
      error: null,
      camera_tile: `${peer_id}/camera`,
      screen_tile: `${peer_id}/screen`,
      is_test_participant: false,
      ...opts,
    };
    update({ peers: view.peers.concat(peer) });
    setTimeout(() => {
      if (view.peers.some((p) => p.peer_id === peer_id && p.link === 'connecting')) {
        updatePeer(peer_id, { link: 'connected', quality: quality('good') });
      }
    }, 1200);
    return peer_id;
  };
  const removePeer = (id: string) =>
    update({
      peers: view.peers.filter((p) => p.peer_id !== id),
      presenter: view.presenter === id ? null : view.presenter,
      test_participant: view.peers.some((p) => p.peer_id !== id && p.is_test_participant),
    });
  const say = (from: string, text: string, to: string | null = null) => {
    const p = view.peers.find((x) => x.peer_id === from);
    if (!p || !view.me) return;
    const entry: ChatEntry = {
      id: `m${Date.now()}${Math.random()}`,
      from,
      from_name: p.name,
      to: to === null ? null : view.me.peer_id,
      to_name: to === null ? null : view.me.name,
      text,
      ts_ms: Date.now(),
      mine: false,
      thread: to === null ? null : from,
    };
    chat = chat.concat(entry);
    send({ type: 'chat', entry });
  };

  const startStats = () => {
    statsTimer = setInterval(() => {
      if (!view.me) return;
      const t = Date.now() / 1000;
      const peers = view.peers.map((p, i) => {
        const level = p.audio_muted ? 0 : Math.max(0, Math.sin(t + i * 2)) * 0.8;
        return { ...p, level, speaking: level > 0.3, active_speaker: false, quality: p.link === 'connected' ? quality(['good', 'good', 'fair', 'poor'][i % 4]) : p.quality };
      });
      let loudest = -1;
      peers.forEach((p, i) => {
        if (p.speaking && (loudest < 0 || p.level > peers[loudest].level)) loudest = i;
      });
      if (loudest >= 0) peers[loudest] = { ...peers[loudest], active_speaker: true };
      update({ peers });
    }, 1000);
  };

  async function join(req: JoinRequest): Promise<void> {
    if (req.server === '') {
      setPhase({ phase: 'starting_server' });
      await sleep(500);
    }
    const server = req.server || 'ws://127.0.0.1:7878';
    setPhase({ phase: 'connecting', server });
    await sleep(600);
    if (req.server === 'ws://nowhere') {
      const e = err('server_unreachable', 'Cannot reach the server', `Check the address (${req.server}) and your network, then try again.`, 'connect: Connection refused (os error 111)');
      setPhase({ phase: 'failed', error: e });
      throw e;
    }
    setPhase({ phase: 'joining' });
    await sleep(500);
    if (req.room === 'full') {
      const e = err('room_full', 'The room is full', 'This room already has 8 people. Try again later or pick another room.', 'server: room_full (max 8)');
      setPhase({ phase: 'failed', error: e });
      throw e;
    }
    if (req.password === 'wrong') {
      const e = err('wrong_password', 'Wrong password', 'Check the password with whoever invited you and try again.', 'server: wrong_password');
      setPhase({ phase: 'failed', error: e });
      throw e;
    }
    if (req.camera_on && req.camera === 'busy') {
      const e = err('camera_busy', 'Your camera is in use', 'Close the other app using the camera, or join with the camera off.', 'v4l2: EBUSY');
      setPhase({ phase: 'failed', error: e });
      throw e;
    }
    update({
      phase: { phase: 'in_call' },
      room: req.room,
      server_label: req.server || 'Local server (this computer)',
      embedded: req.server === '',
      me: {
        peer_id: 'me1',
        name: req.name,
        audio_muted: !req.mic_on,
        camera_on: req.camera_on,
        screen_sharing: false,
        hand_raised: false,
        level: 0,
        speaking: false,
        active_speaker: false,
        has_camera: true,
        has_microphone: true,
        camera_starting: req.camera_on,
        camera_tile: 'self/camera',
        screen_tile: 'self/screen',
      },
      peers: [],
      invite: `hearth://join?server=${encodeURIComponent(req.server)}&room=${encodeURIComponent(req.room)}`,
    });
    setTimeout(() => updateMe({ camera_starting: false }), 700);
    chat = [
      {
        id: 'h1', from: 'old', from_name: 'Earlier person', to: null, to_name: null,
        text: 'History from before you joined: see https://example.org/notes.', ts_ms: Date.now() - 600_000, mine: false, thread: null,
      },
    ];
    startStats();
  }

  const handlers: Record<string, (a: Record<string, unknown>) => unknown> = {
    app_info: () => ({ version: '0.1.0-dev', protocol: 1, os: 'browser (mock backend)', automation: null }),
    get_settings: () => settings,
    save_settings: (a) => {
      settings = a.settings as Settings;
    },
    list_devices: () => devices,
    frame_server: () => ({ url: `ws://${location.host}/__mock_frames`, token: 'dev-token', header_bytes: 32 }),
    start_preview: (a) => {
      if (previewTimer) clearInterval(previewTimer);
      previewTimer = null;
      if (a.camera === 'busy' && a.camera_on) {
        setTimeout(() => send({ type: 'preview_error', error: err('camera_busy', 'Your camera is in use', 'Close the other app using it, or pick another camera.', 'v4l2: EBUSY') }), 300);
      }
      if (a.mic_on) {
        previewTimer = setInterval(() => send({ type: 'preview_level', level: Math.abs(Math.sin(Date.now() / 300)) * 0.7 }), 50);
      }
    },
    stop_preview: () => {
      if (previewTimer) clearInterval(previewTimer);
      previewTimer = null;
    },
    test_speaker: async () => {
      await sleep(1000);
    },
    get_view: () => view,
    get_chat: () => chat,
    join: (a) => join(a.request as JoinRequest),
    leave: () => {
      if (statsTimer) clearInterval(statsTimer);
      statsTimer = null;
      chat = [];
      update({ phase: { phase: 'left', reason: 'You left the call.' }, me: null, peers: [], presenter: null, notices: [], test_participant: false, invite: null });
    },
    set_muted: (a) => updateMe({ audio_muted: a.muted as boolean }),
    set_camera: (a) => {
      updateMe({ camera_on: a.on as boolean, camera_starting: a.on as boolean });
      if (a.on) setTimeout(() => updateMe({ camera_starting: false }), 500);
    },
    start_screen_share: (a) => {
      if (a.screen === 'screen-1') {
        throw err('screen_share_failed', 'Could not share that screen', 'Pick another screen or try again.', 'scrap: display 1 not found');
      }
      updateMe({ screen_sharing: true });
      update({ presenter: 'self' });
    },
    stop_screen_share: () => {
      updateMe({ screen_sharing: false });
      update({ presenter: null });
    },
    send_chat: (a) => {
      if (!view.me) throw err('internal', 'Not in a call', 'Join a call first.');
      const to = a.to as string | null;
      const peer = view.peers.find((p) => p.peer_id === to);
      const entry: ChatEntry = {
        id: `m${Date.now()}${Math.random()}`,
        from: view.me.peer_id,
        from_name: view.me.name,
        to,
        to_name: peer?.name ?? null,
        text: a.text as string,
        ts_ms: Date.now(),
        mine: true,
        thread: to,
      };
      chat = chat.concat(entry);
      send({ type: 'chat', entry });
      const test = view.peers.find((p) => p.is_test_participant);
      if (test) setTimeout(() => say(test.peer_id, `echo: ${a.text as string}`, to === test.peer_id ? test.peer_id : null), 600);
    },
    react: (a) => send({ type: 'reaction', peer_id: view.me?.peer_id ?? 'self', emoji: a.emoji as string }),
    raise_hand: (a) => updateMe({ hand_raised: a.raised as boolean }),
    add_test_participant: () => {
      addPeer('Test participant', { is_test_participant: true });
      update({ test_participant: true });
    },
    remove_test_participant: () => {
      const t = view.peers.find((p) => p.is_test_participant);
      if (t) removePeer(t.peer_id);
    },
    dismiss_notice: (a) => update({ notices: view.notices.filter((n) => Number(n.id) !== a.id) }),
    save_diagnostics: () => '/home/you/.local/share/hearth/diagnostics-2025-01-01T10-00-00.json',
    pending_invite: () => null,
    report_paint: () => undefined,
    ui_error: (a) => console.info('[mock] ui_error', a.message),
    ui_ready: () => {
      (window as unknown as { __mockReady: boolean }).__mockReady = true;
    },
    open_link: (a) => {
      (window as unknown as { __mockOpened: string[] }).__mockOpened = ((window as unknown as { __mockOpened?: string[] }).__mockOpened ?? []).concat(a.url as string);
    },
  };

  mockIPC(
    (cmd, payload) => {
      const h = handlers[cmd];
      if (!h) return Promise.reject(`unknown command ${cmd}`);
      try {
        return Promise.resolve(h((payload ?? {}) as Record<string, unknown>));
      } catch (e) {
        return Promise.reject(e);
      }
    },
    { shouldMockEvents: true },
  );

  const mock = {
    view: () => view,
    addPeer: (name: string, opts?: Partial<PeerView>) => addPeer(name, opts),
    removePeer,
    peer: updatePeer,
    me: updateMe,
    say,
    share: (id: string) => {
      updatePeer(id, { screen_sharing: true });
      update({ presenter: id });
    },
    unshare: (id: string) => {
      updatePeer(id, { screen_sharing: false });
      update({ presenter: null });
    },
    react: (id: string, emoji: string) => send({ type: 'reaction', peer_id: id, emoji }),
    toast: (message: string) => send({ type: 'toast', message }),
    notice: (kind: UiError['kind'], title: string, message: string) =>
      update({ notices: view.notices.concat({ id: noticeId++ as unknown as bigint, error: err(kind, title, message, 'mock detail') }) }),
    dropServer: (seconds = 5, attempt = 1) => update({ phase: { phase: 'reconnecting', retry_at_ms: Date.now() + seconds * 1000, attempt } }),
    serverBack: () => update({ phase: { phase: 'in_call' } }),
    crash: () => {
      setTimeout(() => {
        throw new Error('mock crash');
      });
    },
  };
  (window as unknown as { __mock: typeof mock }).__mock = mock;
  console.info('[mock] Hearth mock backend installed: window.__mock', Object.keys(mock));
}
