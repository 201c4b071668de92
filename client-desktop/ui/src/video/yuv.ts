// I420 -> RGBA in JavaScript, for the canvas-2D renderer (used when WebGL is missing, e.g.
// WebKitGTK under Xvfb without /dev/dri). BT.601 limited range, the same matrix as the WebGL
// shader, in 16.16 fixed point with per-value lookup tables so the inner loop is adds and shifts.

const FIX = 16;
const Y_TAB = new Int32Array(256); // 1.164 * (Y - 16)
const RV_TAB = new Int32Array(256); // 1.596 * (V - 128)
const GU_TAB = new Int32Array(256); // 0.392 * (U - 128)
const GV_TAB = new Int32Array(256); // 0.813 * (V - 128)
const BU_TAB = new Int32Array(256); // 2.017 * (U - 128)
for (let i = 0; i < 256; i++) {
  // The half added here makes the final `>> FIX` round to nearest instead of down.
  Y_TAB[i] = Math.round(1.164383 * (i - 16) * (1 << FIX)) + (1 << (FIX - 1));
  RV_TAB[i] = Math.round(1.596027 * (i - 128) * (1 << FIX));
  GU_TAB[i] = Math.round(0.391762 * (i - 128) * (1 << FIX));
  GV_TAB[i] = Math.round(0.812968 * (i - 128) * (1 << FIX));
  BU_TAB[i] = Math.round(2.017232 * (i - 128) * (1 << FIX));
}

function clamp8(v: number): number {
  const x = v >> FIX;
  return x < 0 ? 0 : x > 255 ? 255 : x;
}

/** Writes `width * height` RGBA pixels into `out` (length >= 4 * width * height). */
export function i420ToRgba(
  y: Uint8Array,
  u: Uint8Array,
  v: Uint8Array,
  width: number,
  height: number,
  out: Uint8ClampedArray | Uint8Array,
): void {
  const cw = (width + 1) >> 1;
  for (let row = 0; row < height; row++) {
    const yRow = row * width;
    const cRow = (row >> 1) * cw;
    let o = yRow * 4;
    for (let col = 0; col < width; col++) {
      const ci = cRow + (col >> 1);
      const uu = u[ci];
      const vv = v[ci];
      const yy = Y_TAB[y[yRow + col]];
      out[o] = clamp8(yy + RV_TAB[vv]);
      out[o + 1] = clamp8(yy - GU_TAB[uu] - GV_TAB[vv]);
      out[o + 2] = clamp8(yy + BU_TAB[uu]);
      out[o + 3] = 255;
      o += 4;
    }
  }
}
