// A tile's live video: opens the tile's frame stream while mounted (mount it only for tiles on
// screen whose video is on) and shows `placeholder` until the first frame is painted.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { TileVideo } from '../video/tile-video';

export function Video({
  tile,
  fit,
  placeholder,
}: {
  tile: string;
  /** "cover" crops to fill (people), "contain" shows all of it (screens). */
  fit: 'cover' | 'contain';
  placeholder?: ComponentChildren;
}) {
  const host = useRef<HTMLDivElement>(null);
  const [painted, setPainted] = useState(false);
  useEffect(() => {
    const el = host.current;
    if (!el) return undefined;
    setPainted(false);
    const video = new TileVideo(tile, el, () => setPainted(true));
    return () => video.dispose();
  }, [tile]);
  return (
    <div class={'video fit-' + fit} data-painted={painted ? 'true' : 'false'}>
      {/* The canvas is added here by TileVideo; this element has no children of its own. */}
      <div class="video-host" ref={host} />
      {!painted && placeholder ? <div class="video-placeholder">{placeholder}</div> : null}
    </div>
  );
}
