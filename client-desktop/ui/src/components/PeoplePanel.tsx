// Everyone in the call with their microphone, camera, hand and link state, and a way to
// message each privately.

import type { MeView, PeerView } from '../bindings';
import { initials } from '../format';
import { CameraIcon, CloseIcon, HandIcon, MicIcon } from './icons';

const LINK_TEXT: Record<PeerView['link'], string> = {
  connecting: 'Connecting…',
  connected: '',
  reconnecting: 'Reconnecting…',
  failed: 'Could not connect',
};

export function PeoplePanel({
  me,
  peers,
  onMessage,
  onClose,
}: {
  me: MeView;
  peers: PeerView[];
  onMessage: (peerId: string) => void;
  onClose: () => void;
}) {
  return (
    <aside class="side-panel people-panel" data-testid="people-panel" aria-label="People">
      <header class="panel-header">
        <h2>People ({peers.length + 1})</h2>
        <button type="button" class="icon-button" aria-label="Close people" title="Close people" data-testid="people-close" onClick={onClose}>
          <CloseIcon />
        </button>
      </header>
      <ul class="people-list">
        <li class="person" data-testid="person" data-peer-id="self">
          <span class="avatar small" aria-hidden="true">
            {initials(me.name)}
          </span>
          <span class="person-name">{me.name} (you)</span>
          <StateIcons muted={me.audio_muted} cameraOff={!me.camera_on} hand={me.hand_raised} />
        </li>
        {peers.map((p) => (
          <li key={p.peer_id} class={'person' + (p.away ? ' away' : '')} data-testid="person" data-peer-id={p.peer_id}>
            <span class="avatar small" aria-hidden="true">
              {initials(p.name)}
            </span>
            <span class="person-name">
              {p.name}
              {p.is_test_participant ? <span class="person-note"> · test participant</span> : null}
              {p.away ? <span class="person-note"> · away</span> : null}
              {LINK_TEXT[p.link] ? <span class="person-note"> · {LINK_TEXT[p.link]}</span> : null}
            </span>
            <StateIcons muted={p.audio_muted} cameraOff={p.video_off} hand={p.hand_raised} />
            <button
              type="button"
              class="link-button"
              data-testid="message-privately"
              data-peer-id={p.peer_id}
              aria-label={`Message ${p.name} privately`}
              onClick={() => onMessage(p.peer_id)}
            >
              Message privately
            </button>
          </li>
        ))}
      </ul>
    </aside>
  );
}

function StateIcons({ muted, cameraOff, hand }: { muted: boolean; cameraOff: boolean; hand: boolean }) {
  return (
    <span class="person-icons">
      {hand ? (
        <span class="state-icon hand" title="Hand raised" aria-label="Hand raised" role="img">
          <HandIcon />
        </span>
      ) : null}
      <span class={'state-icon' + (muted ? ' off' : '')} title={muted ? 'Muted' : 'Microphone on'} aria-label={muted ? 'Muted' : 'Microphone on'} role="img">
        <MicIcon off={muted} />
      </span>
      <span
        class={'state-icon' + (cameraOff ? ' off' : '')}
        title={cameraOff ? 'Camera off' : 'Camera on'}
        aria-label={cameraOff ? 'Camera off' : 'Camera on'}
        role="img"
      >
        <CameraIcon off={cameraOff} />
      </span>
    </span>
  );
}
