// Paints I420 frames on a canvas: a WebGL shader (three LUMINANCE textures, BT.601 limited
// range -> RGB on the GPU) or, where WebGL is missing or broken, canvas 2D with the conversion
// done in JavaScript. Both can read back a few painted pixels, which is how the page proves
// (to the self-test and the benchmark) that moving video really reached the screen.

import type { Frame } from './frame';
import { i420ToRgba } from './yuv';

export type RendererKind = 'webgl' | '2d';

export interface Renderer {
  readonly kind: RendererKind;
  readonly canvas: HTMLCanvasElement;
  /** Paints the frame, resizing the canvas to the frame's size. */
  draw(frame: Frame): void;
  /** A hash of a 4x4 grid of painted pixels read back from the canvas; call right after
   * `draw` (a WebGL drawing buffer is only readable until the page is composited). */
  sampleHash(): number | null;
  dispose(): void;
}

/** 4 x 4 sample points, at the centres of a 4 x 4 partition of the picture. */
const SAMPLES = 4;

/** FNV-1a over bytes. */
export function fnv1a(bytes: ArrayLike<number>, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i] & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function samplePoints(width: number, height: number): Array<[number, number]> {
  const pts: Array<[number, number]> = [];
  for (let j = 0; j < SAMPLES; j++) {
    for (let i = 0; i < SAMPLES; i++) {
      pts.push([Math.floor(((i + 0.5) * width) / SAMPLES), Math.floor(((j + 0.5) * height) / SAMPLES)]);
    }
  }
  return pts;
}

// Set once WebGL failed on this page, so later tiles go straight to canvas 2D.
let webglFailed = false;

/** "2d" when forced by `?renderer=2d` or `localStorage["hearth.renderer"] = "2d"` (tests of the
 * fallback use this), else "webgl" unless WebGL already failed on this page. */
function preferredKind(): RendererKind {
  try {
    const forced = new URLSearchParams(location.search).get('renderer') ?? localStorage.getItem('hearth.renderer');
    if (forced === '2d') return '2d';
  } catch {
    // Storage can be unavailable; the default applies.
  }
  return webglFailed ? '2d' : 'webgl';
}

/** A renderer on a new canvas (the caller inserts `renderer.canvas`). WebGL is tried first;
 * a canvas that got a WebGL context cannot get a 2D one, so the fallback uses a fresh canvas. */
export function createRenderer(): Renderer {
  if (preferredKind() === 'webgl') {
    const canvas = document.createElement('canvas');
    try {
      const gl = WebGLRenderer.create(canvas);
      if (gl) return gl;
    } catch (e) {
      console.warn('WebGL renderer failed, using canvas 2D', e);
    }
    webglFailed = true;
  }
  return new Canvas2DRenderer(document.createElement('canvas'));
}

const VERTEX_SRC = `
attribute vec2 a_pos;
varying vec2 v_tc;
void main() {
  // Clip space y=+1 is the top of the canvas; texture row 0 is the first (top) row uploaded.
  v_tc = vec2((a_pos.x + 1.0) * 0.5, (1.0 - a_pos.y) * 0.5);
  gl_Position = vec4(a_pos, 0.0, 1.0);
}`;

const FRAGMENT_SRC = `
precision mediump float;
varying vec2 v_tc;
uniform sampler2D u_y;
uniform sampler2D u_u;
uniform sampler2D u_v;
// Chroma planes are ceil(w/2) x ceil(h/2): for odd sizes they cover one pixel more than the
// picture, so chroma coordinates are scaled by w / (2 * ceil(w/2)).
uniform vec2 u_cscale;
void main() {
  float y = 1.164383 * (texture2D(u_y, v_tc).r - 0.0627451);
  vec2 ctc = v_tc * u_cscale;
  float u = texture2D(u_u, ctc).r - 0.5019608;
  float v = texture2D(u_v, ctc).r - 0.5019608;
  gl_FragColor = vec4(y + 1.596027 * v, y - 0.391762 * u - 0.812968 * v, y + 2.017232 * u, 1.0);
}`;

class WebGLRenderer implements Renderer {
  readonly kind = 'webgl' as const;
  private program: WebGLProgram | null = null;
  private textures: WebGLTexture[] = [];
  private buffer: WebGLBuffer | null = null;
  private cscale: WebGLUniformLocation | null = null;
  private texW = 0;
  private texH = 0;
  private lost = false;
  private readonly pixel = new Uint8Array(4 * SAMPLES * SAMPLES);

  private constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly gl: WebGLRenderingContext,
  ) {
    canvas.addEventListener('webglcontextlost', this.onLost);
    canvas.addEventListener('webglcontextrestored', this.onRestored);
  }

  static create(canvas: HTMLCanvasElement): WebGLRenderer | null {
    const attrs: WebGLContextAttributes = {
      alpha: false,
      antialias: false,
      depth: false,
      stencil: false,
      preserveDrawingBuffer: false,
      powerPreference: 'low-power',
    };
    const gl = (canvas.getContext('webgl', attrs) ?? canvas.getContext('experimental-webgl', attrs)) as WebGLRenderingContext | null;
    if (!gl) return null;
    const r = new WebGLRenderer(canvas, gl);
    if (!r.init()) {
      r.dispose();
      return null;
    }
    return r;
  }

  private onLost = (e: Event) => {
    // Asking for restoration: without preventDefault the context never comes back.
    e.preventDefault();
    this.lost = true;
  };

  private onRestored = () => {
    this.lost = false;
    this.texW = 0;
    this.texH = 0;
    this.init();
  };

  private init(): boolean {
    const gl = this.gl;
    const compile = (type: number, src: string) => {
      const s = gl.createShader(type);
      if (!s) return null;
      gl.shaderSource(s, src);
      gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) {
        console.warn('shader:', gl.getShaderInfoLog(s));
        gl.deleteShader(s);
        return null;
      }
      return s;
    };
    const vs = compile(gl.VERTEX_SHADER, VERTEX_SRC);
    const fs = compile(gl.FRAGMENT_SHADER, FRAGMENT_SRC);
    const program = gl.createProgram();
    if (!vs || !fs || !program) return false;
    gl.attachShader(program, vs);
    gl.attachShader(program, fs);
    gl.linkProgram(program);
    gl.deleteShader(vs);
    gl.deleteShader(fs);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
      console.warn('program:', gl.getProgramInfoLog(program));
      return false;
    }
    gl.useProgram(program);
    this.program = program;

    this.buffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const pos = gl.getAttribLocation(program, 'a_pos');
    gl.enableVertexAttribArray(pos);
    gl.vertexAttribPointer(pos, 2, gl.FLOAT, false, 0, 0);

    // Plane rows are tightly packed; odd widths would be misread with the default 4.
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.pixelStorei(gl.PACK_ALIGNMENT, 1);
    this.textures = [];
    ['u_y', 'u_u', 'u_v'].forEach((name, unit) => {
      const tex = gl.createTexture();
      if (!tex) return;
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, tex);
      // Non-power-of-two textures in WebGL 1: clamp, no mipmaps.
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      gl.uniform1i(gl.getUniformLocation(program, name), unit);
      this.textures.push(tex);
    });
    this.cscale = gl.getUniformLocation(program, 'u_cscale');
    return this.textures.length === 3 && gl.getError() === gl.NO_ERROR;
  }

  draw(f: Frame): void {
    if (this.lost || !this.program) return;
    const gl = this.gl;
    const cw = (f.width + 1) >> 1;
    const ch = (f.height + 1) >> 1;
    const resized = f.width !== this.texW || f.height !== this.texH;
    if (resized) {
      this.canvas.width = f.width;
      this.canvas.height = f.height;
      gl.viewport(0, 0, f.width, f.height);
      gl.uniform2f(this.cscale, f.width / (2 * cw), f.height / (2 * ch));
    }
    const planes: Array<[Uint8Array, number, number]> = [
      [f.y, f.width, f.height],
      [f.u, cw, ch],
      [f.v, cw, ch],
    ];
    planes.forEach(([data, w, h], unit) => {
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, this.textures[unit]);
      if (resized) gl.texImage2D(gl.TEXTURE_2D, 0, gl.LUMINANCE, w, h, 0, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
      else gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, w, h, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
    });
    this.texW = f.width;
    this.texH = f.height;
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }

  sampleHash(): number | null {
    if (this.lost || this.texW === 0) return null;
    const gl = this.gl;
    const one = new Uint8Array(4);
    samplePoints(this.texW, this.texH).forEach(([x, y], i) => {
      gl.readPixels(x, y, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, one);
      this.pixel.set(one, i * 4);
    });
    return fnv1a(this.pixel);
  }

  dispose(): void {
    this.canvas.removeEventListener('webglcontextlost', this.onLost);
    this.canvas.removeEventListener('webglcontextrestored', this.onRestored);
    const gl = this.gl;
    this.textures.forEach((t) => gl.deleteTexture(t));
    if (this.buffer) gl.deleteBuffer(this.buffer);
    if (this.program) gl.deleteProgram(this.program);
    this.textures = [];
    this.program = null;
    // Give the context back now rather than at garbage collection: WebKit caps live contexts,
    // and a call joined and left many times must not pile them up.
    gl.getExtension('WEBGL_lose_context')?.loseContext();
  }
}

class Canvas2DRenderer implements Renderer {
  readonly kind = '2d' as const;
  private readonly ctx: CanvasRenderingContext2D | null;
  private image: ImageData | null = null;
  private readonly pixel = new Uint8Array(4 * SAMPLES * SAMPLES);

  constructor(readonly canvas: HTMLCanvasElement) {
    this.ctx = canvas.getContext('2d', { alpha: false });
  }

  draw(f: Frame): void {
    const ctx = this.ctx;
    if (!ctx) return;
    if (!this.image || this.image.width !== f.width || this.image.height !== f.height) {
      this.canvas.width = f.width;
      this.canvas.height = f.height;
      this.image = ctx.createImageData(f.width, f.height);
    }
    i420ToRgba(f.y, f.u, f.v, f.width, f.height, this.image.data);
    ctx.putImageData(this.image, 0, 0);
  }

  sampleHash(): number | null {
    const ctx = this.ctx;
    if (!ctx || !this.image) return null;
    samplePoints(this.image.width, this.image.height).forEach(([x, y], i) => {
      this.pixel.set(ctx.getImageData(x, y, 1, 1).data, i * 4);
    });
    return fnv1a(this.pixel);
  }

  dispose(): void {
    this.image = null;
    // A zero-size canvas releases its backing store at once.
    this.canvas.width = 0;
    this.canvas.height = 0;
  }
}
