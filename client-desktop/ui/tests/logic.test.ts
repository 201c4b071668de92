import assert from 'node:assert/strict';
import { test } from 'node:test';
import { asUiError } from '../src/api';
import type { ChatEntry, MeView, PeerView, View } from '../src/bindings';
import { ROOM, listThreads, mergeChat, threadOf } from '../src/chat';
import { nextStep } from '../src/errors';
import { hhmm, initials, pickDevice, secondsUntil } from '../src/format';
import { bestGrid } from '../src/layout';
import { SHORTCUTS, matchShortcut } from '../src/shortcuts';
import { buildStage, voiceStep } from '../src/tiles';

const key = (k: string, code: string, ctrl = true, alt = false) => ({ key: k, code, ctrlKey: ctrl, altKey: alt, shiftKey: false, metaKey: false });

test('shortcuts: Ctrl+D, Ctrl+E, Ctrl+Alt+C/P/H/L, and nothing else', () => {
  assert.equal(matchShortcut(key('d', 'KeyD')), 'mic');
  assert.equal(matchShortcut(key('e', 'KeyE')), 'camera');
  assert.equal(matchShortcut(key('c', 'KeyC', true, true)), 'chat');
  assert.equal(matchShortcut(key('p', 'KeyP', true, true)), 'people');
  assert.equal(matchShortcut(key('h', 'KeyH', true, true)), 'hand');
  assert.equal(matchShortcut(key('l', 'KeyL', true, true)), 'leave');
  assert.equal(matchShortcut(key('d', 'KeyD', false)), null);
  assert.equal(matchShortcut(key('c', 'KeyC')), null, 'Ctrl+C is copy');
  assert.equal(matchShortcut(key('d', 'KeyD', true, true)), null);
  assert.equal(matchShortcut({ ...key('D', 'KeyD'), shiftKey: true }), null);
});

test('shortcuts: a layout that turns Ctrl+Alt+letter into another character falls back to the key position', () => {
  assert.equal(matchShortcut(key('©', 'KeyC', true, true)), 'chat');
  // On a layout where the letter is elsewhere, the letter wins over the position.
  assert.equal(matchShortcut(key('d', 'KeyE')), 'mic');
});

test('shortcut labels match aria-keyshortcuts', () => {
  assert.equal(SHORTCUTS.mic.label, 'Ctrl+D');
  assert.equal(SHORTCUTS.mic.aria, 'Control+D');
  assert.equal(SHORTCUTS.leave.aria, 'Control+Alt+L');
});

test('bestGrid fills the area with the largest tiles', () => {
  assert.equal(bestGrid(1, 1280, 720).cols, 1);
  assert.equal(bestGrid(2, 1280, 720).cols, 2);
  assert.equal(bestGrid(2, 464, 700).cols, 1, 'narrow: stacked');
  assert.equal(bestGrid(4, 1280, 720).cols, 2);
  assert.equal(bestGrid(9, 1280, 720).cols, 3);
  const g = bestGrid(9, 1264, 680);
  assert.ok(g.cols * g.width + (g.cols - 1) * 8 <= 1264 + 1);
  assert.ok(g.rows * g.height + (g.rows - 1) * 8 <= 680 + 1);
  assert.equal(bestGrid(0, 100, 100).cols, 1);
});

test('initials, times, countdowns', () => {
  assert.equal(initials('Ada Lovelace'), 'AL');
  assert.equal(initials('  bob '), 'B');
  assert.equal(initials(''), '?');
  assert.equal(initials('Émile von Zola'), 'ÉZ');
  assert.equal(initials('😀 smile'), '😀S');
  const d = new Date(2024, 0, 1, 9, 5);
  assert.equal(hhmm(d.getTime()), '09:05');
  assert.equal(secondsUntil(10_500, 10_000), 1);
  assert.equal(secondsUntil(10_000, 12_000), 0);
});

test('pickDevice: remembered, else default, else first', () => {
  const devs = [
    { id: 'a', name: 'A', is_default: false },
    { id: 'b', name: 'B', is_default: true },
  ];
  assert.equal(pickDevice(devs, 'a'), 'a');
  assert.equal(pickDevice(devs, 'gone'), 'b');
  assert.equal(pickDevice([devs[0]], null), 'a');
  assert.equal(pickDevice([], 'a'), null);
  // The test source only when chosen before; never picked for the user.
  const synth = { id: 'synthetic', name: 'Test tone', is_default: false };
  assert.equal(pickDevice([synth], null), null);
  assert.equal(pickDevice([synth, devs[0]], null), 'a');
  assert.equal(pickDevice([synth], 'synthetic'), 'synthetic');
});

test('asUiError keeps a UiError and wraps anything else', () => {
  const e = { kind: 'room_full', title: 'Full', message: 'Try later', detail: 'd' };
  assert.deepEqual(asUiError(e), e);
  assert.equal(asUiError({ kind: 'nonsense', title: 't', message: 'm' }).kind, 'internal');
  const w = asUiError('command join not found');
  assert.equal(w.kind, 'internal');
  assert.equal(w.detail, 'command join not found');
  assert.equal(asUiError(new Error('boom')).detail, 'boom');
});

test('every error kind has a next step', () => {
  assert.deepEqual(nextStep('wrong_password'), { field: 'password', retry: false });
  assert.equal(nextStep('camera_busy').withoutCamera, true);
  assert.equal(nextStep('no_microphone').withoutMic, true);
  assert.equal(nextStep('server_unreachable').retry, true);
});

function entry(p: Partial<ChatEntry>): ChatEntry {
  return { id: 'x', from: 'a', from_name: 'A', to: null, to_name: null, text: 't', ts_ms: 0, mine: false, thread: null, ...p };
}

test('chat: threads and merging by id', () => {
  assert.equal(threadOf(entry({})), ROOM);
  assert.equal(threadOf(entry({ to: 'me', thread: 'a' })), 'a');
  assert.equal(threadOf(entry({ to: 'b', mine: true, thread: null })), 'b');
  const a = entry({ id: '1' });
  const b = entry({ id: '2' });
  const c = entry({ id: '3' });
  assert.deepEqual(mergeChat([a, b], [b, c]).map((e) => e.id), ['1', '2', '3']);
  const same = [a];
  assert.equal(mergeChat(same, [a]), same, 'no copy when nothing is new');
  const threads = listThreads([peer('p1', 'Pat')], [entry({ id: '9', from: 'gone', from_name: 'Gone', to: 'me', thread: 'gone' })]);
  assert.deepEqual(
    threads.map((t) => [t.key, t.name, t.present]),
    [
      [ROOM, 'Everyone', true],
      ['p1', 'Pat', true],
      ['gone', 'Gone', false],
    ],
  );
});

function peer(id: string, name: string, p: Partial<PeerView> = {}): PeerView {
  return {
    peer_id: id, name, audio_muted: false, video_off: false, screen_sharing: false, hand_raised: false, away: false,
    link: 'connected', level: 0, speaking: false, active_speaker: false, quality: null, error: null,
    camera_tile: `${id}/camera`, screen_tile: `${id}/screen`, is_test_participant: false, ...p,
  };
}

const me: MeView = {
  peer_id: 'm', name: 'Me', audio_muted: false, camera_on: true, screen_sharing: false, hand_raised: false, level: 0,
  speaking: false, active_speaker: false, has_camera: true, has_microphone: true, camera_starting: false,
  camera_tile: 'self/camera', screen_tile: 'self/screen',
};

function view(p: Partial<View>): View {
  return {
    rev: 1 as unknown as bigint, phase: { phase: 'in_call' }, room: 'r', server_label: '', embedded: true, me, peers: [],
    presenter: null, notices: [], test_participant: false, invite: null, ...p,
  };
}

test('stage: a grid of people with self last', () => {
  const s = buildStage(view({ peers: [peer('a', 'A'), peer('b', 'B', { video_off: true })] }));
  assert.equal(s.layout, 'grid');
  assert.deepEqual(s.tiles.map((t) => t.id), ['a/camera', 'b/camera', 'self/camera']);
  assert.equal(s.tiles[1].videoOn, false);
  assert.equal(s.tiles[2].peerId, 'self');
});

test('stage: presenter layout puts the shared screen large', () => {
  const s = buildStage(view({ peers: [peer('a', 'A', { screen_sharing: true })], presenter: 'a' }));
  assert.equal(s.layout, 'presenter');
  assert.equal(s.main?.id, 'a/screen');
  assert.deepEqual(s.tiles.map((t) => t.id), ['a/camera', 'self/camera']);
  const mine = buildStage(view({ me: { ...me, screen_sharing: true }, presenter: 'self' }));
  assert.equal(mine.main?.id, 'self/screen');
  // Presenter named before its sharing flag arrives: still the presenter layout.
  const early = buildStage(view({ peers: [peer('a', 'A')], presenter: 'a' }));
  assert.equal(early.main?.id, 'a/screen');
  // A presenter who is gone: back to the grid.
  assert.equal(buildStage(view({ presenter: 'gone' })).layout, 'grid');
});

test('stage: a camera that is on but missing shows why', () => {
  const s = buildStage(view({ me: { ...me, has_camera: false } }));
  assert.equal(s.tiles[0].videoOn, false);
  assert.equal(s.tiles[0].noCamera, true);
});

test('voiceStep: five fixed steps, out-of-range and non-numbers clamped', () => {
  assert.deepEqual([0, 0.1, 0.13, 0.5, 0.87, 1].map(voiceStep), [0, 0, 1, 2, 3, 4]);
  assert.equal(voiceStep(-1), 0);
  assert.equal(voiceStep(7), 4);
  assert.equal(voiceStep(Number.NaN), 0);
  assert.equal(voiceStep(Number.POSITIVE_INFINITY), 0);
});
