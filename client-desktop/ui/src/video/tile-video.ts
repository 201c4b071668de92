// Puts one tile's video on screen: a renderer's canvas inside `container`, fed by the tile's
// frame stream. Frames are painted in requestAnimationFrame; a frame that arrives before the
// previous one was painted replaces it (latest wins, nothing queues).

import { acquire, release } from './paint-stats';
import type { TileStats } from './paint-stats';
import type { Frame } from './frame';
import { createRenderer } from './renderer';
import type { Renderer } from './renderer';
import { FrameStream } from './stream';

const SAMPLE_EVERY_MS = 1000;

const dirty = new Set<TileVideo>();
let rafPending = false;

function schedule(v: TileVideo): void {
  dirty.add(v);
  if (rafPending) return;
  rafPending = true;
  requestAnimationFrame(() => {
    rafPending = false;
    const now = Date.now();
    const batch = Array.from(dirty);
    dirty.clear();
    for (const tv of batch) tv.paint(now);
  });
}

export class TileVideo {
  private readonly renderer: Renderer;
  private readonly stream: FrameStream;
  private readonly stats: TileStats;
  private pending: Frame | null = null;
  private lastSampleMs = 0;
  private disposed = false;
  private paintedOnce = false;
  private readonly resize: ResizeObserver | null;

  constructor(
    tile: string,
    container: HTMLElement,
    private readonly onFirstPaint: () => void,
  ) {
    this.renderer = createRenderer();
    this.renderer.canvas.className = 'video-canvas';
    this.renderer.canvas.setAttribute('data-renderer', this.renderer.kind);
    container.appendChild(this.renderer.canvas);
    this.stats = acquire(tile);
    this.stats.renderer = this.renderer.kind;
    this.stream = new FrameStream(tile, (frame) => {
      this.pending = frame;
      schedule(this);
    });
    // Rust sends frames no larger than the tile is shown (device pixels).
    const tell = () => {
      const r = container.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      if (r.width > 0 && r.height > 0) this.stream.setShownSize(r.width * dpr, r.height * dpr);
    };
    this.resize = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(tell);
    this.resize?.observe(container);
    tell();
  }

  get rendererKind() {
    return this.renderer.kind;
  }

  paint(now: number): void {
    const frame = this.pending;
    this.pending = null;
    if (!frame || this.disposed) return;
    this.renderer.draw(frame);
    const paintedMs = Date.now();
    this.stats.painted(paintedMs - frame.captureMs, [
      frame.sentMs - frame.captureMs,
      frame.receivedMs - frame.sentMs,
      paintedMs - frame.receivedMs,
    ]);
    if (now - this.lastSampleMs >= SAMPLE_EVERY_MS) {
      this.lastSampleMs = now;
      const hash = this.renderer.sampleHash();
      if (hash !== null) this.stats.sampled(hash);
    }
    if (!this.paintedOnce) {
      this.paintedOnce = true;
      this.onFirstPaint();
    }
  }

  dispose(): void {
    this.disposed = true;
    this.resize?.disconnect();
    dirty.delete(this);
    this.stream.close();
    release(this.stats);
    this.renderer.dispose();
    this.renderer.canvas.remove();
  }
}
