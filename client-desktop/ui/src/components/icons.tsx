// The few icons the page needs, as inline SVG (no icon font, nothing fetched). Decorative:
// every control that shows one also has an aria-label.

import type { JSX } from 'preact';

function Svg({ children, class: cls }: { children: JSX.Element | JSX.Element[]; class?: string }) {
  return (
    <svg
      class={'icon' + (cls ? ' ' + cls : '')}
      viewBox="0 0 24 24"
      width="20"
      height="20"
      fill="none"
      stroke="currentColor"
      stroke-width="2"
      stroke-linecap="round"
      stroke-linejoin="round"
      aria-hidden="true"
      focusable="false"
    >
      {children}
    </svg>
  );
}

const slash = <path d="M4 4l16 16" />;

export const MicIcon = ({ off }: { off?: boolean }) => (
  <Svg>
    <rect x="9" y="3" width="6" height="11" rx="3" />
    <path d="M5.5 11a6.5 6.5 0 0 0 13 0M12 17.5V21" />
    {off ? slash : <g />}
  </Svg>
);

export const CameraIcon = ({ off }: { off?: boolean }) => (
  <Svg>
    <rect x="3" y="6.5" width="12" height="11" rx="2" />
    <path d="M15 10.5l6-3.5v10l-6-3.5z" />
    {off ? slash : <g />}
  </Svg>
);

export const ScreenIcon = () => (
  <Svg>
    <rect x="3" y="4" width="18" height="12" rx="2" />
    <path d="M8 20h8M12 16v4M12 13V7M9.5 9.5L12 7l2.5 2.5" />
  </Svg>
);

export const ChatIcon = () => (
  <Svg>
    <path d="M4 5h16v11H10l-5 4v-4H4z" />
  </Svg>
);

export const PeopleIcon = () => (
  <Svg>
    <circle cx="9" cy="8" r="3.5" />
    <path d="M2.5 20c0-3.6 2.9-6 6.5-6s6.5 2.4 6.5 6M16 4.8a3.2 3.2 0 0 1 0 6.4M18 14.3c2.2.6 3.5 2.7 3.5 5.7" />
  </Svg>
);

export const HandIcon = () => (
  <Svg>
    <path d="M8 12.5V6a1.5 1.5 0 0 1 3 0v5M11 11V4.5a1.5 1.5 0 0 1 3 0V11M14 11V6a1.5 1.5 0 0 1 3 0v7.5c0 4-2.6 7-6.2 7-2.6 0-4-1.4-5.3-3.6L3.4 13a1.5 1.5 0 0 1 2.5-1.6L8 14" />
  </Svg>
);

export const SmileIcon = () => (
  <Svg>
    <circle cx="12" cy="12" r="9" />
    <path d="M8.5 14.5c.9 1.2 2 1.8 3.5 1.8s2.6-.6 3.5-1.8M9 9.5h.01M15 9.5h.01" />
  </Svg>
);

export const MoreIcon = () => (
  <Svg>
    <path d="M5 12h.01M12 12h.01M19 12h.01" />
  </Svg>
);

export const LeaveIcon = () => (
  <Svg>
    <path d="M3 14.5c5-4.7 13-4.7 18 0l-1.8 2.7-3.7-1.2v-2.8a12 12 0 0 0-7 0V16l-3.7 1.2z" />
  </Svg>
);

export const CloseIcon = () => (
  <Svg>
    <path d="M6 6l12 12M18 6L6 18" />
  </Svg>
);

export const SpeakerIcon = () => (
  <Svg>
    <path d="M4 9h4l5-4v14l-5-4H4zM16.5 8.5a5 5 0 0 1 0 7" />
  </Svg>
);

export const RefreshIcon = () => (
  <Svg>
    <path d="M20 11a8 8 0 1 0-2.3 5.7M20 4v7h-7" />
  </Svg>
);

export const SendIcon = () => (
  <Svg>
    <path d="M4 12l16-8-6 16-2.5-6.5z" />
  </Svg>
);

/** Three bars, `level` of them lit. */
export const BarsIcon = ({ lit }: { lit: number }) => (
  <svg class="icon bars" viewBox="0 0 18 14" width="18" height="14" aria-hidden="true" focusable="false">
    {[0, 1, 2].map((i) => (
      <rect x={1 + i * 6} y={9 - i * 4} width="4" height={5 + i * 4} rx="1" class={i < lit ? 'bar lit' : 'bar'} />
    ))}
  </svg>
);
