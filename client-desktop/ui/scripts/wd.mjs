// A minimal W3C WebDriver client (fetch only), for driving the page in WebKitGTK's MiniBrowser
// (WebKitWebDriver) against the Vite dev server and its mock backend. Development aid.

export class Driver {
  constructor(base, id) {
    this.base = base;
    this.id = id;
  }

  static async start(base = 'http://127.0.0.1:4444', extra = {}) {
    const caps = {
      capabilities: {
        alwaysMatch: {
          browserName: 'MiniBrowser',
          'webkitgtk:browserOptions': {
            binary: '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser',
            args: ['--automation'],
          },
          ...extra,
        },
      },
    };
    const r = await fetch(base + '/session', { method: 'POST', body: JSON.stringify(caps), headers: { 'content-type': 'application/json' } });
    const j = await r.json();
    if (!j.value?.sessionId) throw new Error('no session: ' + JSON.stringify(j));
    return new Driver(base, j.value.sessionId);
  }

  async cmd(method, path, body) {
    const r = await fetch(`${this.base}/session/${this.id}${path}`, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
    const j = await r.json();
    if (j.value && j.value.error) throw new Error(`${method} ${path}: ${j.value.error}: ${j.value.message}`);
    return j.value;
  }

  go(url) {
    return this.cmd('POST', '/url', { url });
  }
  exec(script, ...args) {
    return this.cmd('POST', '/execute/sync', { script, args });
  }
  execAsync(script, ...args) {
    return this.cmd('POST', '/execute/async', { script, args });
  }
  async find(testid) {
    const v = await this.cmd('POST', '/element', { using: 'css selector', value: `[data-testid="${testid}"]` });
    return Object.values(v)[0];
  }
  async findAll(css) {
    const v = await this.cmd('POST', '/elements', { using: 'css selector', value: css });
    return v.map((e) => Object.values(e)[0]);
  }
  click(el) {
    return this.cmd('POST', `/element/${el}/click`, {});
  }
  type(el, text) {
    return this.cmd('POST', `/element/${el}/value`, { text });
  }
  clear(el) {
    return this.cmd('POST', `/element/${el}/clear`, {});
  }
  rect(el) {
    return this.cmd('GET', `/element/${el}/rect`);
  }
  text(el) {
    return this.cmd('GET', `/element/${el}/text`);
  }
  attr(el, name) {
    return this.cmd('GET', `/element/${el}/attribute/${name}`);
  }
  setWindow(width, height) {
    return this.cmd('POST', '/window/rect', { width, height });
  }
  /** Key presses via the Actions API; keys: array of W3C key values. */
  async chord(keys) {
    const down = keys.map((k) => ({ type: 'keyDown', value: k }));
    const up = keys
      .slice()
      .reverse()
      .map((k) => ({ type: 'keyUp', value: k }));
    await this.cmd('POST', '/actions', { actions: [{ type: 'key', id: 'kb', actions: down.concat(up) }] });
    await this.cmd('DELETE', '/actions');
  }
  async screenshot(path) {
    const b64 = await this.cmd('GET', '/screenshot');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, Buffer.from(b64, 'base64'));
  }
  quit() {
    return fetch(`${this.base}/session/${this.id}`, { method: 'DELETE' });
  }
}

export const KEY = { ctrl: '\uE009', alt: '\uE00A', shift: '\uE008', enter: '\uE007', escape: '\uE00C', tab: '\uE004' };
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(fn, what, timeoutMs = 8000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}: ${last}`);
}
