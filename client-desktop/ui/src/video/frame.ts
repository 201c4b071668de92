// One video frame as the loopback frame server sends it: a 32-byte little-endian header
// (u32 magic "HTF1", u32 width, u32 height, u32 seq, f64 capture_ms, f64 sent_ms) then I420
// planes Y (w*h), U and V (ceil(w/2)*ceil(h/2) each). The planes are views into the message's
// buffer, not copies.

export const FRAME_MAGIC = 0x31465448;
export const FRAME_HEADER_BYTES = 32;

export interface Frame {
  width: number;
  height: number;
  seq: number;
  /** Unix ms when the frame was captured (its stamp rides through the whole pipeline). */
  captureMs: number;
  sentMs: number;
  /** Unix ms when the page received the message (set by the stream; 0 until then). */
  receivedMs: number;
  y: Uint8Array;
  u: Uint8Array;
  v: Uint8Array;
}

/** Frames larger than this are refused (8K UHD fits). */
const MAX_SIDE = 8192;

export type ParseResult = { ok: true; frame: Frame } | { ok: false; reason: string };

/** Decodes a binary message; `pixelOffset` is the server's `header_bytes` (where the planes
 * start; at least the 32 bytes this page reads). */
export function parseFrame(buf: ArrayBuffer, pixelOffset: number = FRAME_HEADER_BYTES): ParseResult {
  if (pixelOffset < FRAME_HEADER_BYTES) return { ok: false, reason: `header_bytes ${pixelOffset} < 32` };
  if (buf.byteLength < pixelOffset) return { ok: false, reason: `message of ${buf.byteLength} bytes has no header` };
  const dv = new DataView(buf);
  const magic = dv.getUint32(0, true);
  if (magic !== FRAME_MAGIC) return { ok: false, reason: `bad magic 0x${magic.toString(16)}` };
  const width = dv.getUint32(4, true);
  const height = dv.getUint32(8, true);
  if (width === 0 || height === 0 || width > MAX_SIDE || height > MAX_SIDE) {
    return { ok: false, reason: `bad size ${width}x${height}` };
  }
  const ySize = width * height;
  const cSize = Math.ceil(width / 2) * Math.ceil(height / 2);
  const need = pixelOffset + ySize + 2 * cSize;
  if (buf.byteLength < need) return { ok: false, reason: `message of ${buf.byteLength} bytes, ${need} needed for ${width}x${height}` };
  return {
    ok: true,
    frame: {
      width,
      height,
      seq: dv.getUint32(12, true),
      captureMs: dv.getFloat64(16, true),
      sentMs: dv.getFloat64(24, true),
      receivedMs: 0,
      y: new Uint8Array(buf, pixelOffset, ySize),
      u: new Uint8Array(buf, pixelOffset + ySize, cSize),
      v: new Uint8Array(buf, pixelOffset + ySize + cSize, cSize),
    },
  };
}
