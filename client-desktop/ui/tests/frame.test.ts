import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FRAME_MAGIC, parseFrame } from '../src/video/frame';
import { i420ToRgba } from '../src/video/yuv';
import { fnv1a } from '../src/video/renderer';

function message(w: number, h: number, opts: { magic?: number; header?: number; short?: number } = {}): ArrayBuffer {
  const header = opts.header ?? 32;
  const cw = Math.ceil(w / 2);
  const ch = Math.ceil(h / 2);
  const buf = new ArrayBuffer(header + w * h + 2 * cw * ch - (opts.short ?? 0));
  const dv = new DataView(buf);
  dv.setUint32(0, opts.magic ?? FRAME_MAGIC, true);
  dv.setUint32(4, w, true);
  dv.setUint32(8, h, true);
  dv.setUint32(12, 7, true);
  dv.setFloat64(16, 1700000000123.5, true);
  dv.setFloat64(24, 1700000000130.25, true);
  const bytes = new Uint8Array(buf);
  bytes.fill(1, header, header + w * h);
  bytes.fill(2, header + w * h, header + w * h + cw * ch);
  bytes.fill(3, header + w * h + cw * ch);
  return buf;
}

test('a frame parses with its header fields and plane views', () => {
  const r = parseFrame(message(5, 3));
  assert.ok(r.ok);
  const f = r.frame;
  assert.equal(f.width, 5);
  assert.equal(f.height, 3);
  assert.equal(f.seq, 7);
  assert.equal(f.captureMs, 1700000000123.5);
  assert.equal(f.sentMs, 1700000000130.25);
  assert.equal(f.y.length, 15);
  assert.equal(f.u.length, 6); // ceil(5/2) * ceil(3/2)
  assert.equal(f.v.length, 6);
  assert.ok(f.y.every((b) => b === 1) && f.u.every((b) => b === 2) && f.v.every((b) => b === 3));
});

test('planes start at header_bytes when the server sends a longer header', () => {
  const r = parseFrame(message(2, 2, { header: 48 }), 48);
  assert.ok(r.ok);
  assert.ok(r.frame.y.every((b) => b === 1));
});

test('bad magic, zero size and truncated messages are refused', () => {
  assert.equal(parseFrame(message(4, 4, { magic: 0x12345678 })).ok, false);
  assert.equal(parseFrame(message(4, 4, { short: 1 })).ok, false);
  assert.equal(parseFrame(new ArrayBuffer(10)).ok, false);
  const zero = message(2, 2);
  new DataView(zero).setUint32(4, 0, true);
  assert.equal(parseFrame(zero).ok, false);
  const huge = message(2, 2);
  new DataView(huge).setUint32(4, 100000, true);
  assert.equal(parseFrame(huge).ok, false);
});

function rgbOf(y: number, u: number, v: number): number[] {
  const out = new Uint8Array(4);
  i420ToRgba(Uint8Array.of(y), Uint8Array.of(u), Uint8Array.of(v), 1, 1, out);
  return Array.from(out);
}

test('BT.601 limited range: black, white and the primaries', () => {
  assert.deepEqual(rgbOf(16, 128, 128), [0, 0, 0, 255]);
  assert.deepEqual(rgbOf(235, 128, 128), [255, 255, 255, 255]);
  const close = (a: number[], b: number[]) => a.every((x, i) => Math.abs(x - b[i]) <= 2);
  assert.ok(close(rgbOf(82, 90, 240), [255, 0, 0, 255]), String(rgbOf(82, 90, 240)));
  assert.ok(close(rgbOf(145, 54, 34), [0, 255, 0, 255]), String(rgbOf(145, 54, 34)));
  assert.ok(close(rgbOf(41, 240, 110), [0, 0, 255, 255]), String(rgbOf(41, 240, 110)));
});

test('odd sizes use the chroma sample of each 2x2 block', () => {
  const w = 3;
  const h = 3;
  const y = new Uint8Array(w * h).fill(126);
  const u = Uint8Array.of(128, 128, 128, 240); // bottom-right block is blue-ish
  const v = Uint8Array.of(128, 128, 128, 128);
  const out = new Uint8Array(4 * w * h);
  i420ToRgba(y, u, v, w, h, out);
  const px = (x: number, yy: number) => Array.from(out.subarray((yy * w + x) * 4, (yy * w + x) * 4 + 4));
  assert.deepEqual(px(0, 0), px(1, 1));
  assert.ok(px(2, 2)[2] > px(0, 0)[2] + 100);
});

test('fnv1a is the standard 32-bit FNV-1a', () => {
  assert.equal(fnv1a([]), 0x811c9dc5);
  assert.equal(fnv1a(Array.from('a', (c) => c.charCodeAt(0))), 0xe40c292c);
  assert.equal(fnv1a(Array.from('foobar', (c) => c.charCodeAt(0))), 0xbf9cf968);
});
