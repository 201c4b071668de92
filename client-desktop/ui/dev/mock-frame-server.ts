// Development only: a Vite plugin that answers WebSocket upgrades on /__mock_frames with a
// moving I420 test pattern in the frame server's format (32-byte header + Y, U, V), so the
// page's renderers can be seen and measured in a plain browser without the Rust side.

import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Plugin } from 'vite';

const MAGIC = 0x31465448;
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** One I420 frame of a pattern that moves with `t` (a diagonal gradient and a bright bar). */
export function patternFrame(width: number, height: number, seq: number, t: number, hue: number): Buffer {
  const cw = Math.ceil(width / 2);
  const ch = Math.ceil(height / 2);
  const buf = Buffer.alloc(32 + width * height + 2 * cw * ch);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt32LE(width, 4);
  buf.writeUInt32LE(height, 8);
  buf.writeUInt32LE(seq >>> 0, 12);
  buf.writeDoubleLE(t, 16);
  buf.writeDoubleLE(Date.now(), 24);
  const shift = Math.floor(t / 8) % width;
  const bar = Math.floor((t / 10) % width);
  let o = 32;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inBar = Math.abs(x - bar) < width / 40;
      buf[o++] = inBar ? 235 : 40 + (((x + y + shift) * 150) / (width + height)) | 0;
    }
  }
  const u = 128 + Math.round(60 * Math.cos(hue));
  const v = 128 + Math.round(60 * Math.sin(hue));
  buf.fill(u, o, o + cw * ch);
  buf.fill(v, o + cw * ch, o + 2 * cw * ch);
  return buf;
}

function wsFrame(payload: Buffer, opcode: number): Buffer {
  const len = payload.length;
  let head: Buffer;
  if (len < 126) {
    head = Buffer.from([0x80 | opcode, len]);
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}

function hueOf(tile: string): number {
  let h = 0;
  for (const c of tile) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return (h % 628) / 100;
}

function serve(req: IncomingMessage, socket: Duplex): void {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const tile = url.searchParams.get('tile') ?? 'unknown';
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string') {
    socket.destroy();
    return;
  }
  const accept = createHash('sha1').update(key + GUID).digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' + `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  const screen = tile.endsWith('/screen');
  // Odd sizes on purpose: the renderers must handle them.
  const [w, h] = screen ? [1279, 719] : [641, 361];
  const hue = hueOf(tile);
  let seq = 0;
  const timer = setInterval(() => {
    // Latest wins, as in the real server: skip a frame while the socket is backed up.
    if ((socket as Duplex & { writableLength: number }).writableLength > 4 * w * h) return;
    socket.write(wsFrame(patternFrame(w, h, seq++, Date.now(), hue), 0x2));
  }, 1000 / 30);
  const stop = () => clearInterval(timer);
  socket.on('close', stop);
  socket.on('error', stop);
  socket.on('data', (d: Buffer) => {
    // A close frame from the page (opcode 8): answer and end.
    if (d.length > 0 && (d[0] & 0x0f) === 0x8) {
      stop();
      socket.end(wsFrame(Buffer.alloc(0), 0x8));
    }
  });
}

export function mockFrameServer(): Plugin {
  return {
    name: 'hearth-mock-frame-server',
    configureServer(server) {
      server.httpServer?.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
        if (req.url?.startsWith('/__mock_frames')) serve(req, socket);
      });
    },
  };
}
