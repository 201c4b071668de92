// Small pure helpers for what the page prints: initials, times, device names.

import { SYNTHETIC_DEVICE } from './bindings';
import type { Device } from './bindings';

/** Up to two letters for a camera-off placeholder: "Ada Lovelace" -> "AL", "bob" -> "B". */
export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter((w) => w.length > 0);
  if (words.length === 0) return '?';
  // Array.from splits by code point, so an emoji or accented first letter stays whole.
  const first = (w: string) => Array.from(w)[0] ?? '';
  const letters = words.length === 1 ? first(words[0]) : first(words[0]) + first(words[words.length - 1]);
  return letters.toUpperCase();
}

/** Local wall-clock "HH:MM" of a Unix-ms time. */
export function hhmm(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => (n < 10 ? '0' : '') + n;
  return pad(d.getHours()) + ':' + pad(d.getMinutes());
}

export type DeviceKind = 'camera' | 'microphone' | 'speaker';

/** How a device is named in a picker; the built-in synthetic source gets a plain name. */
export function deviceLabel(kind: DeviceKind, device: Device): string {
  if (device.id === SYNTHETIC_DEVICE) {
    if (kind === 'camera') return 'Test pattern';
    if (kind === 'microphone') return 'Test tone';
  }
  return device.name;
}

/** The id a picker should start on: the remembered one if still present, else the default,
 * else the first real device; `null` (the system default) when there is none. The built-in
 * test source is only ever chosen by the user: nobody should send a test tone by accident. */
export function pickDevice(devices: Device[], remembered: string | null): string | null {
  if (remembered !== null && devices.some((d) => d.id === remembered)) return remembered;
  const real = devices.filter((d) => d.id !== SYNTHETIC_DEVICE);
  const def = real.find((d) => d.is_default);
  if (def) return def.id;
  return real.length > 0 ? real[0].id : null;
}

/** Whether a list holds a device other than the built-in test source. */
export function hasRealDevice(devices: Device[]): boolean {
  return devices.some((d) => d.id !== SYNTHETIC_DEVICE);
}

/** Whole seconds left until `atMs`, never negative. */
export function secondsUntil(atMs: number, nowMs: number): number {
  return Math.max(0, Math.ceil((atMs - nowMs) / 1000));
}

export function formatKbps(kbps: number): string {
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbit/s` : `${Math.round(kbps)} kbit/s`;
}
