// The tiles of a call, from the View: one camera tile per person (self included) and a screen
// tile per screen being shared. Pure, so the layout rules are testable without a DOM.

import type { LinkUi, QualityView, View } from './bindings';

export const SELF = 'self';

export interface TileModel {
  /** The frame-stream tile id ("self/camera", "{peer_id}/screen", ...). */
  id: string;
  kind: 'camera' | 'screen';
  /** "self" or the peer id. */
  peerId: string;
  name: string;
  isSelf: boolean;
  /** Open a frame stream (the camera is on / the screen is shared). */
  videoOn: boolean;
  /** Waiting for the camera's first frame. */
  starting: boolean;
  muted: boolean;
  hand: boolean;
  speaking: boolean;
  activeSpeaker: boolean;
  level: number;
  /** Our link to the peer; "connected" for self. */
  link: LinkUi;
  away: boolean;
  error: string | null;
  quality: QualityView | null;
  isTest: boolean;
  /** Why a self tile has no video although the camera should be on. */
  noCamera: boolean;
}

export interface Stage {
  layout: 'grid' | 'presenter';
  /** The presented screen (presenter layout only). */
  main: TileModel | null;
  /** Grid tiles, or the people strip beside the presented screen. */
  tiles: TileModel[];
}

/** How loud a tile's voice is, in five fixed steps (0-4) for its speaking ring. The page shows
 * the step as an attribute matched by fixed style rules, not as an inline style value: WebKitGTK's
 * web process kept memory for every new inline custom-property value (~1 MB/s in a 5-party
 * call with the level changing ten times a second). */
export function voiceStep(level: number): number {
  if (!Number.isFinite(level)) return 0;
  return Math.round(Math.max(0, Math.min(1, level)) * 4);
}

export function buildStage(view: View): Stage {
  const people: TileModel[] = [];
  const screens: TileModel[] = [];
  for (const p of view.peers) {
    const base = {
      peerId: p.peer_id,
      isSelf: false,
      starting: false,
      muted: p.audio_muted,
      hand: p.hand_raised,
      speaking: p.speaking,
      activeSpeaker: p.active_speaker,
      level: p.level,
      link: p.link,
      away: p.away,
      error: p.error,
      quality: p.quality,
      isTest: p.is_test_participant,
      noCamera: false,
    };
    people.push({ ...base, id: p.camera_tile, kind: 'camera', name: p.name, videoOn: !p.video_off });
    if (p.screen_sharing) {
      screens.push({ ...base, id: p.screen_tile, kind: 'screen', name: `${p.name}'s screen`, videoOn: true, hand: false });
    }
  }
  const me = view.me;
  if (me) {
    const base = {
      peerId: SELF,
      isSelf: true,
      muted: me.audio_muted,
      hand: me.hand_raised,
      speaking: me.speaking,
      activeSpeaker: me.active_speaker,
      level: me.level,
      link: 'connected' as const,
      away: false,
      error: null,
      quality: null,
      isTest: false,
    };
    people.push({
      ...base,
      id: me.camera_tile,
      kind: 'camera',
      name: `${me.name} (you)`,
      videoOn: me.camera_on && me.has_camera,
      starting: me.camera_on && me.camera_starting,
      noCamera: me.camera_on && !me.has_camera,
    });
    if (me.screen_sharing) {
      screens.push({ ...base, id: me.screen_tile, kind: 'screen', name: 'Your screen', videoOn: true, starting: false, hand: false, noCamera: false });
    }
  }
  const presenter = view.presenter;
  if (presenter !== null) {
    const main = screens.find((s) => s.peerId === presenter) ?? presenterFallback(view, presenter);
    if (main) {
      return { layout: 'presenter', main, tiles: screens.filter((s) => s !== main).concat(people) };
    }
  }
  return { layout: 'grid', main: null, tiles: people.concat(screens) };
}

/** The presenter's screen tile when the View names a presenter whose `screen_sharing` flag
 * has not arrived yet (the tile still shows "waiting" until frames come). */
function presenterFallback(view: View, presenter: string): TileModel | null {
  if (presenter === SELF && view.me) {
    const me = view.me;
    return {
      id: me.screen_tile, kind: 'screen', peerId: SELF, name: 'Your screen', isSelf: true, videoOn: true,
      starting: false, muted: me.audio_muted, hand: false, speaking: false, activeSpeaker: false, level: 0,
      link: 'connected', away: false, error: null, quality: null, isTest: false, noCamera: false,
    };
  }
  const p = view.peers.find((x) => x.peer_id === presenter);
  if (!p) return null;
  return {
    id: p.screen_tile, kind: 'screen', peerId: p.peer_id, name: `${p.name}'s screen`, isSelf: false, videoOn: true,
    starting: false, muted: p.audio_muted, hand: false, speaking: false, activeSpeaker: false, level: 0, link: p.link,
    away: p.away, error: p.error, quality: p.quality, isTest: p.is_test_participant, noCamera: false,
  };
}
