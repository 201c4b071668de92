// One tile's frame stream: a WebSocket to the loopback frame server that hands each decoded
// frame to `onFrame`, and opens again 500 ms after it closes until `close()` is called.

import { api } from '../api';
import type { FrameServerInfo } from '../bindings';
import { parseFrame } from './frame';
import type { Frame } from './frame';

const RECONNECT_MS = 500;

let serverInfo: Promise<FrameServerInfo> | null = null;

/** The frame server's address, asked once per page (asked again after a failure). */
export function frameServerInfo(): Promise<FrameServerInfo> {
  if (!serverInfo) {
    serverInfo = api.frameServer();
    serverInfo.catch(() => {
      serverInfo = null;
    });
  }
  return serverInfo;
}

export function streamUrl(info: FrameServerInfo, tile: string): string {
  return `${info.url}?token=${encodeURIComponent(info.token)}&tile=${encodeURIComponent(tile)}`;
}

export class FrameStream {
  private socket: WebSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  private warned = false;
  /** The tile's size on screen in device pixels, told to Rust so it sends no larger frames. */
  private shown: [number, number] | null = null;

  constructor(
    private readonly tile: string,
    private readonly onFrame: (frame: Frame) => void,
  ) {
    this.open();
  }

  private open(): void {
    if (this.closed) return;
    frameServerInfo().then(
      (info) => this.connect(info),
      (e) => {
        console.warn(`frame server unavailable for ${this.tile}`, e);
        this.retry();
      },
    );
  }

  private connect(info: FrameServerInfo): void {
    if (this.closed) return;
    let ws: WebSocket;
    try {
      ws = new WebSocket(streamUrl(info, this.tile));
    } catch (e) {
      console.warn(`frame socket for ${this.tile}`, e);
      this.retry();
      return;
    }
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (ev: MessageEvent) => {
      if (!(ev.data instanceof ArrayBuffer)) return;
      const receivedMs = Date.now();
      // Flow control: Rust keeps at most a couple of frames in flight per socket and sends the
      // next one only when we acknowledge this one, so a slow page never builds a queue.
      if (ws.readyState === WebSocket.OPEN) ws.send('1');
      const parsed = parseFrame(ev.data, info.header_bytes);
      if (parsed.ok) {
        parsed.frame.receivedMs = receivedMs;
        this.onFrame(parsed.frame);
      }
      else if (!this.warned) {
        // Once per stream: a bad frame is a bug on the Rust side, not worth a log line per frame.
        this.warned = true;
        console.warn(`dropped a frame for ${this.tile}: ${parsed.reason}`);
      }
    };
    ws.onopen = () => this.sendSize();
    ws.onclose = () => {
      if (this.socket === ws) this.socket = null;
      this.retry();
    };
    this.socket = ws;
  }

  /** Frames larger than this (device pixels) are scaled down in Rust before they are sent. */
  setShownSize(width: number, height: number): void {
    const w = Math.max(1, Math.round(width));
    const h = Math.max(1, Math.round(height));
    if (this.shown && this.shown[0] === w && this.shown[1] === h) return;
    this.shown = [w, h];
    this.sendSize();
  }

  private sendSize(): void {
    const ws = this.socket;
    if (this.shown && ws && ws.readyState === WebSocket.OPEN) ws.send(`s ${this.shown[0]} ${this.shown[1]}`);
  }

  private retry(): void {
    if (this.closed || this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.open();
    }, RECONNECT_MS);
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const ws = this.socket;
    this.socket = null;
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      ws.close();
    }
  }
}
