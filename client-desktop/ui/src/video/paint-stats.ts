// What the page painted, per tile: frames, capture -> painted latency, and distinct hashes of
// read-back pixels. Sent to Rust every second (`report_paint`: totals and the frames painted
// since the previous report; for lip sync, the self-test and the benchmark) and readable by
// WebDriver tests as `window.__hearthPaint()`.

import { api } from '../api';
import type { TilePaint } from '../bindings';
import type { RendererKind } from './renderer';

const MAX_LATENCIES = 600;
/** A tile gone this long is forgotten (peer ids change with every call). */
const FORGET_AFTER_MS = 60_000;
/** Enough to tell moving video from a frozen picture; bounds memory in a long call. */
const MAX_HASHES = 100_000;

export class TileStats {
  frames = 0;
  private latencies: number[] = [];
  /** Per painted frame: capture -> sent, sent -> received, received -> painted. */
  private stages: [number, number, number][] = [];
  /** The frames painted since the last report to Rust (which keeps the last 600 itself). */
  private unsentLatencies: number[] = [];
  private unsentStages: [number, number, number][] = [];
  private readonly hashes = new Set<number>();
  renderer: RendererKind = 'webgl';
  /** How many mounted views show this tile (a tile can move between grid and strip). */
  mounted = 0;
  lastSeenMs = Date.now();

  constructor(readonly tile: string) {}

  painted(latencyMs: number, stages: [number, number, number]): void {
    this.frames++;
    this.latencies.push(latencyMs);
    this.stages.push(stages);
    this.unsentLatencies.push(latencyMs);
    this.unsentStages.push(stages);
    // Reports failing: the newest 600 wait (trimmed in batches, as above).
    if (this.unsentLatencies.length > MAX_LATENCIES + 100) {
      this.unsentLatencies = this.unsentLatencies.slice(-MAX_LATENCIES);
      this.unsentStages = this.unsentStages.slice(-MAX_LATENCIES);
    }
    // Trim in batches so the cost per frame stays constant.
    if (this.latencies.length > MAX_LATENCIES + 100) {
      this.latencies = this.latencies.slice(-MAX_LATENCIES);
      this.stages = this.stages.slice(-MAX_LATENCIES);
    }
  }

  sampled(hash: number): void {
    if (this.hashes.size < MAX_HASHES) this.hashes.add(hash);
  }

  /** For `report_paint`: the totals, and only the frames painted since the previous call. */
  takeReport(): TilePaint {
    const p: TilePaint = {
      tile: this.tile,
      frames: this.frames,
      latencies_ms: this.unsentLatencies,
      stages_ms: this.unsentStages,
      distinct_pixel_hashes: this.hashes.size,
      renderer: this.renderer,
    };
    this.unsentLatencies = [];
    this.unsentStages = [];
    return p;
  }

  /** A report that did not reach Rust: its frames go back before those painted since. */
  restore(p: TilePaint): void {
    this.unsentLatencies = p.latencies_ms.concat(this.unsentLatencies).slice(-MAX_LATENCIES);
    this.unsentStages = p.stages_ms.concat(this.unsentStages).slice(-MAX_LATENCIES);
  }

  /** Everything kept (the last 600 frames), for WebDriver tests. */
  toPaint(): TilePaint {
    return {
      tile: this.tile,
      frames: this.frames,
      latencies_ms: this.latencies.slice(-MAX_LATENCIES),
      stages_ms: this.stages.slice(-MAX_LATENCIES),
      distinct_pixel_hashes: this.hashes.size,
      renderer: this.renderer,
    };
  }
}

const stats = new Map<string, TileStats>();

/** The stats of a tile a view starts showing; pair with `release`. Counts continue from the
 * tile's earlier views, so a tile moved between layouts keeps its totals. */
export function acquire(tile: string): TileStats {
  let s = stats.get(tile);
  if (!s) {
    s = new TileStats(tile);
    stats.set(tile, s);
  }
  s.mounted++;
  return s;
}

export function release(s: TileStats): void {
  s.mounted = Math.max(0, s.mounted - 1);
  s.lastSeenMs = Date.now();
}

/** The tiles on screen now. */
export function currentPaints(): TilePaint[] {
  return onScreen().map((s) => s.toPaint());
}

/** The tiles on screen now, each with only the frames painted since the previous report. */
export function takeReports(): { tiles: TilePaint[]; restore: () => void } {
  const taken = onScreen().map((s) => [s, s.takeReport()] as const);
  return {
    tiles: taken.map(([, p]) => p),
    restore: () => {
      for (const [s, p] of taken) s.restore(p);
    },
  };
}

function onScreen(): TileStats[] {
  const now = Date.now();
  const out: TileStats[] = [];
  for (const [tile, s] of stats) {
    if (s.mounted > 0) out.push(s);
    else if (now - s.lastSeenMs > FORGET_AFTER_MS) stats.delete(tile);
  }
  return out;
}

declare global {
  interface Window {
    __hearthPaint?: () => TilePaint[];
  }
}

/** Reports every second while any tile is on screen; returns the stop function. */
export function startPaintReporting(): () => void {
  window.__hearthPaint = currentPaints;
  let failures = 0;
  const timer = setInterval(() => {
    const { tiles, restore } = takeReports();
    if (tiles.length === 0) return;
    api.reportPaint(tiles).then(
      () => {
        failures = 0;
      },
      (e) => {
        restore();
        // Only the first failure is logged: the next report a second later says the same.
        if (failures++ === 0) console.warn('report_paint failed', e);
      },
    );
  }, 1000);
  return () => clearInterval(timer);
}
