// Tile geometry: how many columns make the tiles largest for a given area.

export interface Grid {
  cols: number;
  rows: number;
  /** Size of one tile, px. */
  width: number;
  height: number;
}

/** The column count that gives `n` tiles of aspect `aspect` (w/h) the largest size inside
 * `width` x `height` with `gap` px between them. */
export function bestGrid(n: number, width: number, height: number, aspect = 16 / 9, gap = 8): Grid {
  const count = Math.max(1, n);
  let best: Grid = { cols: 1, rows: count, width: 0, height: 0 };
  for (let cols = 1; cols <= count; cols++) {
    const rows = Math.ceil(count / cols);
    const cellW = (width - gap * (cols - 1)) / cols;
    const cellH = (height - gap * (rows - 1)) / rows;
    if (cellW <= 0 || cellH <= 0) continue;
    const w = Math.min(cellW, cellH * aspect);
    if (w > best.width + 0.5) best = { cols, rows, width: w, height: w / aspect };
  }
  return best;
}
