// One video tile: the person's (or screen's) video or initials, name, muted icon, raised hand,
// speaking ring and active-speaker highlight, the link state, and the connection-quality badge
// with its details (including the link's safety code).

import { useEffect, useRef, useState } from 'preact/hooks';
import type { QualityView } from '../bindings';
import { formatKbps, initials } from '../format';
import { voiceStep } from '../tiles';
import type { TileModel } from '../tiles';
import { BarsIcon, CloseIcon, HandIcon, MicIcon } from './icons';
import { Video } from './Video';

export interface FloatingReaction {
  id: number;
  peerId: string;
  emoji: string;
  /** Horizontal position in the tile, 0..1, so several reactions do not overlap. */
  x: number;
}

function linkText(t: TileModel): string | null {
  if (t.isSelf) return null;
  switch (t.link) {
    case 'connecting':
      return 'Connecting…';
    case 'reconnecting':
      return 'Reconnecting…';
    case 'failed':
      return t.error ?? `Could not connect to ${t.name}. A TURN server on your side or theirs fixes this.`;
    case 'connected':
      return null;
  }
}

export function Tile({
  tile,
  reactions,
  onRemoveTest,
  small,
}: {
  tile: TileModel;
  reactions: FloatingReaction[];
  onRemoveTest: () => void;
  small?: boolean;
}) {
  const overlay = linkText(tile);
  const failed = !tile.isSelf && tile.link === 'failed';
  const speakingRing = tile.kind === 'camera' && tile.speaking && !tile.muted;
  const cls = [
    'tile',
    'tile-' + tile.kind,
    tile.activeSpeaker && tile.kind === 'camera' ? 'active-speaker' : '',
    speakingRing ? 'speaking' : '',
    tile.away ? 'away' : '',
    small ? 'small' : '',
  ]
    .filter(Boolean)
    .join(' ');
  const placeholder = (
    <>
      <div class="avatar" aria-hidden="true">
        {initials(tile.kind === 'screen' ? tile.name.replace(/'s screen$/, '') : tile.name.replace(/ \(you\)$/, ''))}
      </div>
      {tile.starting ? <span class="placeholder-text">Starting camera…</span> : null}
      {tile.noCamera ? <span class="placeholder-text">No camera available</span> : null}
      {tile.kind === 'screen' ? <span class="placeholder-text">Waiting for the screen…</span> : null}
    </>
  );
  return (
    <div
      class={cls}
      data-testid="tile"
      data-tile={tile.id}
      data-kind={tile.kind}
      data-peer-id={tile.peerId}
      data-link={tile.link}
      data-muted={tile.muted ? 'true' : 'false'}
      data-hand={tile.hand ? 'true' : 'false'}
      data-active-speaker={tile.activeSpeaker ? 'true' : 'false'}
      data-video={tile.videoOn ? 'on' : 'off'}
      data-away={tile.away ? 'true' : 'false'}
      data-voice={voiceStep(tile.level)}
      role="group"
      aria-label={tile.name}
    >
      <div class="tile-media">
        {tile.videoOn && !failed ? (
          <Video tile={tile.id} fit={tile.kind === 'screen' ? 'contain' : 'cover'} placeholder={placeholder} />
        ) : (
          <div class="video-placeholder">{placeholder}</div>
        )}
        {overlay ? (
          <div class={'tile-overlay link-' + tile.link} data-testid="tile-link" role="status">
            {tile.link === 'failed' ? null : <span class="spinner" aria-hidden="true" />}
            <span>{overlay}</span>
          </div>
        ) : null}
        {reactions.map((r) => (
          <span key={r.id} class="reaction-float" data-testid="reaction" style={{ left: `${15 + r.x * 70}%` }} aria-hidden="true">
            {r.emoji}
          </span>
        ))}
      </div>

      <div class="tile-top">
        {tile.hand ? (
          <span class="badge hand" data-testid="tile-hand" title="Hand raised" aria-label="Hand raised">
            <HandIcon />
          </span>
        ) : null}
        {tile.away ? (
          <span class="badge away-badge" data-testid="tile-away" title="Their connection to the server dropped; they may come back">
            Away
          </span>
        ) : null}
        <span class="spacer" />
        {!tile.isSelf && tile.kind === 'camera' ? <QualityBadge name={tile.name} quality={tile.quality} /> : null}
        {tile.isTest && tile.kind === 'camera' ? (
          <button
            type="button"
            class="icon-button remove-test"
            data-testid="remove-test-participant"
            aria-label="Remove the test participant"
            title="Remove the test participant"
            onClick={onRemoveTest}
          >
            <CloseIcon />
          </button>
        ) : null}
      </div>

      <div class="tile-bottom">
        {tile.kind === 'camera' && tile.muted ? (
          <span class="muted-icon" data-testid="tile-muted" title="Muted" aria-label="Muted">
            <MicIcon off />
          </span>
        ) : null}
        <span class="tile-name" data-testid="tile-name">
          {tile.name}
        </span>
      </div>
    </div>
  );
}

const LEVEL_BARS: Record<string, number> = { good: 3, fair: 2, poor: 1 };

function fmt(v: number | null, unit: string, digits = 0): string {
  return v === null ? '—' : `${v.toFixed(digits)} ${unit}`;
}

/** good/fair/poor bars; click (or hover) shows the link's numbers and its safety code. */
function QualityBadge({ name, quality }: { name: string; quality: QualityView | null }) {
  const [pinned, setPinned] = useState(false);
  const [hover, setHover] = useState(false);
  const root = useRef<HTMLDivElement>(null);
  const open = pinned || hover;
  const level = quality?.level ?? 'unknown';

  useEffect(() => {
    if (!pinned) return undefined;
    const onDown = (e: MouseEvent) => {
      if (root.current && !root.current.contains(e.target as Node)) setPinned(false);
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') setPinned(false);
    };
    document.addEventListener('mousedown', onDown);
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('mousedown', onDown);
      document.removeEventListener('keydown', onKey);
    };
  }, [pinned]);

  const shortName = name.replace(/ \(you\)$/, '');
  return (
    <div class="quality" ref={root} onMouseEnter={() => setHover(true)} onMouseLeave={() => setHover(false)}>
      <button
        type="button"
        class={'quality-button q-' + level}
        data-testid="tile-quality"
        data-level={level}
        aria-label={`Connection to ${shortName}: ${quality ? level : 'measuring'}. Show details`}
        aria-expanded={open ? 'true' : 'false'}
        title={`Connection: ${quality ? level : 'measuring'}`}
        onClick={() => setPinned((p) => !p)}
      >
        <BarsIcon lit={LEVEL_BARS[level] ?? 0} />
      </button>
      {open ? (
        <div class="quality-details" data-testid="quality-details" role="dialog" aria-label={`Connection to ${shortName}`}>
          {quality ? (
            <>
              <dl>
                <dt>Quality</dt>
                <dd class={'q-text q-' + level}>{level}</dd>
                <dt>Round trip</dt>
                <dd>{fmt(quality.rtt_ms, 'ms')}</dd>
                <dt>Loss</dt>
                <dd>{fmt(quality.loss_pct, '%', 1)}</dd>
                <dt>Jitter</dt>
                <dd>{fmt(quality.jitter_ms, 'ms')}</dd>
                <dt>Bitrate</dt>
                <dd>
                  ↑ {formatKbps(quality.sent_kbps)} · ↓ {formatKbps(quality.received_kbps)}
                </dd>
                <dt>Video</dt>
                <dd>
                  {quality.width > 0 ? `${quality.width}×${quality.height}` : '—'} · {Math.round(quality.fps)} fps
                </dd>
                <dt>Route</dt>
                <dd>{quality.candidates ?? 'not known yet'}</dd>
              </dl>
              <div class="safety">
                <div class="safety-label">Safety code</div>
                <div class="safety-code" data-testid="safety-code">
                  {quality.safety_code ?? 'not known yet'}
                </div>
                <p class="safety-help">
                  Compare with {shortName}: the same code on both screens means nobody is listening in.
                </p>
              </div>
            </>
          ) : (
            <p>Measuring the connection…</p>
          )}
        </div>
      ) : null}
    </div>
  );
}
