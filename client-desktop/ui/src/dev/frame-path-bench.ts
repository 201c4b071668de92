// `hearth --bench-frame-path`: the page's half of the frame-transport measurement (see
// client-desktop/src/frame_path.rs). For each transport in turn it opens one stream per tile,
// asks Rust to feed them for a fixed time, and records when each frame's ArrayBuffer reached
// JavaScript against the time Rust handed it to the transport (both are Unix milliseconds on
// the same machine). It then reports the figures and the app exits.

import { Channel, invoke } from '@tauri-apps/api/core';
import { api } from '../api';
import { parseFrame } from '../video/frame';
import { streamUrl } from '../video/stream';

interface Feed {
  transport: string;
  frames_offered: number;
  seconds: number;
  cpu_pct_of_one_core: number;
}

interface Config {
  streams: number;
  fps: number;
  seconds: number;
  width: number;
  height: number;
}

class Recorder {
  latencies: number[] = [];
  received = 0;
  bad = 0;
  bytes = 0;

  take(data: unknown): void {
    if (!(data instanceof ArrayBuffer)) {
      this.bad++;
      return;
    }
    const now = Date.now();
    const parsed = parseFrame(data);
    if (!parsed.ok) {
      this.bad++;
      return;
    }
    this.received++;
    this.bytes += data.byteLength;
    this.latencies.push(now - parsed.frame.sentMs);
  }

  summary(feed: Feed) {
    const s = [...this.latencies].sort((a, b) => a - b);
    const at = (q: number) => (s.length ? s[Math.round((s.length - 1) * q)] : null);
    return {
      transport: feed.transport,
      frames_offered: feed.frames_offered,
      frames_received: this.received,
      bad_messages: this.bad,
      received_per_second_per_stream: this.received / feed.seconds / Math.max(1, cfgStreams),
      megabytes_per_second: this.bytes / feed.seconds / 1e6,
      latency_ms: { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1) },
      cpu_pct_of_one_core: feed.cpu_pct_of_one_core,
    };
  }
}

let cfgStreams = 1;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function feed(transport: string, cfg: Config, channels: Channel<ArrayBuffer>[]): Promise<Feed> {
  for (const channel of channels) await invoke('frame_path_channel', { channel });
  return invoke<Feed>('frame_path_feed', { transport, ...cfg });
}

async function viaWebSocket(cfg: Config) {
  const info = await api.frameServer();
  const rec = new Recorder();
  const sockets: WebSocket[] = [];
  for (let i = 0; i < cfg.streams; i++) {
    const ws = new WebSocket(streamUrl(info, `frame-path/${i}`));
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (ev: MessageEvent) => {
      // The same acknowledgement the app's streams send (flow control).
      if (ws.readyState === WebSocket.OPEN) ws.send('1');
      rec.take(ev.data);
    };
    sockets.push(ws);
  }
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve, reject) => {
          ws.onopen = () => resolve();
          ws.onerror = () => reject(new Error('frame socket failed to open'));
        }),
    ),
  );
  const f = await feed('websocket', cfg, []);
  await sleep(1000); // frames still on the way count; late ones show in the latency
  for (const ws of sockets) ws.close();
  return rec.summary(f);
}

async function viaChannel(cfg: Config) {
  const rec = new Recorder();
  const channels: Channel<ArrayBuffer>[] = [];
  for (let i = 0; i < cfg.streams; i++) {
    const ch = new Channel<ArrayBuffer>();
    ch.onmessage = (m) => rec.take(m);
    channels.push(ch);
  }
  const f = await feed('channel', cfg, channels);
  await sleep(1000);
  return rec.summary(f);
}

export async function runFramePathBench(): Promise<void> {
  const q = new URLSearchParams(location.search);
  const num = (k: string, d: number) => Number(q.get(k) ?? d) || d;
  const cfg: Config = {
    streams: num('streams', 5),
    fps: num('fps', 30),
    seconds: num('seconds', 10),
    width: num('width', 640),
    height: num('height', 360),
  };
  cfgStreams = cfg.streams;
  document.body.textContent = `Measuring frame transports: ${cfg.streams} streams of ${cfg.width}x${cfg.height} at ${cfg.fps} fps…`;
  const report: Record<string, unknown> = { config: cfg, ok: false };
  try {
    // Channel first, then the WebSocket, then the Channel again: a warm-up effect would show
    // as a difference between the two Channel runs.
    const runs = [await viaChannel(cfg), await viaWebSocket(cfg), await viaChannel(cfg)];
    report.runs = runs;
    report.ok = runs.every((r) => r.frames_received > 0 && r.bad_messages === 0);
  } catch (e) {
    report.error = String(e);
  }
  await invoke('frame_path_report', { report });
}
