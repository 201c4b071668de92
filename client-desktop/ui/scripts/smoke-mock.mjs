// Drives the page in WebKitGTK's MiniBrowser (via WebKitWebDriver on :4444) against the Vite
// dev server (:1420) and its mock backend: every screen and state, checked and screenshotted
// into test-artifacts/. A development aid for the page; the real tests drive the real app.
//
//   Xvfb :99 & DISPLAY=:99 WebKitWebDriver --port=4444 & npm run dev & node scripts/smoke-mock.mjs

import { mkdirSync } from 'node:fs';
import { Driver, KEY, sleep, waitFor } from './wd.mjs';

const URL = process.env.HEARTH_UI_URL ?? 'http://localhost:1420/';
const OUT = new globalThis.URL('../test-artifacts/', import.meta.url).pathname;
mkdirSync(OUT, { recursive: true });

const checks = [];
function check(ok, what) {
  checks.push([ok, what]);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
}

const d = await Driver.start();
const q = (css) => d.exec(`return document.querySelector(${JSON.stringify(css)}) !== null`);
const attr = (css, name) => d.exec(`const e = document.querySelector(${JSON.stringify(css)}); return e ? e.getAttribute(${JSON.stringify(name)}) : null`);
const prop = (css, name) => d.exec(`const e = document.querySelector(${JSON.stringify(css)}); return e ? e[${JSON.stringify(name)}] : null`);
const count = (css) => d.exec(`return document.querySelectorAll(${JSON.stringify(css)}).length`);
const mock = (js) => d.exec(`return window.__mock.${js}`);
// A short pause first: the screenshot shows the last composited frame.
const shot = (name) => sleep(400).then(() => d.screenshot(`${OUT}${name}.png`));

/** Every element matching css lies inside the viewport. */
async function allOnScreen(css) {
  return d.exec(`
    const w = innerWidth, h = innerHeight;
    return Array.from(document.querySelectorAll(${JSON.stringify(css)})).map(e => {
      const r = e.getBoundingClientRect();
      return { id: e.getAttribute('data-testid'), ok: r.left >= 0 && r.top >= 0 && r.right <= w + 0.5 && r.bottom <= h + 0.5 && r.width > 0 };
    });`);
}

try {
  for (const [w, h] of [
    [1280, 800],
    [480, 800],
  ]) {
    const tag = `${w}x${h}`;
    await d.setWindow(w, h);
    await d.go(URL);
    await waitFor(() => q('[data-testid="prejoin"] [data-testid="name"]'), 'pre-join');
    check((await attr('html', 'data-phase')) === 'idle', `${tag}: root data-phase=idle`);
    await waitFor(() => d.exec('return window.__mockReady === true'), 'ui_ready');
    check(true, `${tag}: ui_ready sent`);
    check((await attr('[data-testid="join"]', 'disabled')) !== null, `${tag}: join disabled without a name`);
    await waitFor(() => d.exec('return (window.__hearthPaint() || []).some(t => t.tile === "preview" && t.frames > 3)'), 'preview frames');
    check(true, `${tag}: preview paints`);
    await shot(`prejoin-${tag}`);

    // Wrong password, then room full: each shows its error with data-kind.
    const name = await d.find('name');
    await d.clear(name);
    await d.type(name, '<img src=x onerror=alert(1)>');
    const pw = await d.find('password');
    await d.type(pw, 'wrong');
    await d.click(await d.find('join'));
    await waitFor(() => q('[data-testid="progress"]'), 'progress');
    check(true, `${tag}: progress shown (${await attr('[data-testid="progress"]', 'data-phase')})`);
    await shot(`progress-${tag}`);
    await waitFor(() => q('[data-testid="error"][data-kind="wrong_password"]'), 'wrong password error');
    check(true, `${tag}: wrong_password error shown`);
    await shot(`error-wrong-password-${tag}`);
    await d.clear(pw);

    // Join for real.
    await d.click(await d.find('join'));
    await waitFor(() => q('[data-testid="call"]'), 'call');
    check((await attr('html', 'data-phase')) === 'in_call', `${tag}: data-phase=in_call`);
    check((await d.exec('return document.title')).includes('standup'), `${tag}: title has the room`);
    await d.click(await d.find('btn-more'));
    await d.click(await d.find('add-test-participant'));
    await waitFor(() => count('[data-testid="tile"]').then((n) => n === 2), 'two tiles');
    await waitFor(() => attr('[data-peer-id="p1"][data-testid="tile"]', 'data-link').then((l) => l === 'connected'), 'test peer connected');
    await waitFor(() => d.exec('return window.__hearthPaint().filter(t => t.frames > 5 && t.distinct_pixel_hashes > 1).length >= 2'), 'two tiles painting');
    check(true, `${tag}: both tiles paint moving frames`);
    const tname = await d.exec('return Array.from(document.querySelectorAll("[data-testid=tile-name]")).map(e => e.textContent)');
    check(tname.some((t) => t.includes('<img src=x onerror=alert(1)>')), `${tag}: hostile name rendered as text`);
    check((await count('img')) === 0, `${tag}: no <img> injected`);
    for (const r of await allOnScreen('.controls button')) check(r.ok, `${tag}: control ${r.id} on screen`);
    await shot(`call-${tag}`);

    // Shortcuts.
    await d.exec('document.activeElement && document.activeElement.blur()');
    await d.chord([KEY.ctrl, 'd']);
    await waitFor(() => attr('[data-tile="self/camera"]', 'data-muted').then((m) => m === 'true'), 'muted by Ctrl+D');
    check(true, `${tag}: Ctrl+D mutes`);
    await d.chord([KEY.ctrl, KEY.alt, 'h']);
    await waitFor(() => attr('[data-tile="self/camera"]', 'data-hand').then((m) => m === 'true'), 'hand by Ctrl+Alt+H');
    check(true, `${tag}: Ctrl+Alt+H raises the hand`);

    // Chat: hostile text, a link, unread count from the test participant's echo.
    await d.chord([KEY.ctrl, KEY.alt, 'c']);
    await waitFor(() => q('[data-testid="chat-panel"]'), 'chat panel');
    const input = await d.find('chat-input');
    await d.type(input, '<b>bold?</b> see https://example.com/a_very_long_path_without_spaces_' + 'x'.repeat(80) + KEY.enter);
    await waitFor(() => count('[data-testid="chat-message"][data-mine="true"]').then((n) => n >= 1), 'my message');
    check((await count('.message-text b')) === 0, `${tag}: chat HTML rendered as text`);
    check((await count('.message-text a[href^="https://example.com/"]')) === 1, `${tag}: link present`);
    await d.click((await d.findAll('.message-text a[href^="https://example.com/"]'))[0]);
    await waitFor(() => d.exec('return (window.__mockOpened || []).some(u => u.startsWith("https://example.com/"))'), 'open_link');
    check(true, `${tag}: a link click asks Rust to open it`);
    check((await count('[data-testid="chat-message"]')) >= 2, `${tag}: history shown`);
    await shot(`chat-${tag}`);
    await d.click(await d.find('chat-close'));
    await sleep(800); // the test participant's echo of our message, read while the panel was open
    check(!(await q('[data-testid="chat-unread"]')), `${tag}: no unread badge for messages read`);
    await mock('say("p1", "a room message while the chat is closed")');
    await waitFor(() => q('[data-testid="chat-unread"]'), 'unread badge');
    check(true, `${tag}: unread badge for a message while the chat is closed`);
    // Private message from the test participant, read via the people panel.
    await mock('say("p1", "psst, just you", "me1")');
    await d.chord([KEY.ctrl, KEY.alt, 'p']);
    await waitFor(() => q('[data-testid="people-panel"]'), 'people panel');
    await shot(`people-${tag}`);
    await d.click(await d.find('message-privately'));
    await waitFor(() => prop('[data-testid="chat-thread"]', 'value').then((v) => v === 'p1'), 'private thread');
    check((await count('[data-testid="chat-message"][data-private="true"]')) === 1, `${tag}: private thread shows the private message`);
    await d.chord([KEY.escape]);

    // Reactions, quality details, presenter, reconnect, notices.
    await d.click(await d.find('btn-react'));
    await d.click((await d.findAll('[data-testid="reaction-option"]'))[4]);
    await waitFor(() => q('[data-testid="reaction"]'), 'floating reaction');
    check(true, `${tag}: reaction floats`);
    await d.exec(`window.__ev = []; ['mouseenter','mouseleave','mousedown','click'].forEach(t => document.querySelector('.quality').addEventListener(t, e => window.__ev.push(t + ':' + e.target.tagName)));`);
    await d.click(await d.find('tile-quality'));
    await waitFor(() => q('[data-testid="safety-code"]'), 'safety code').catch(async (e) => {
      console.log('quality events:', await d.exec('return window.__ev.join(" ")'), await d.exec('return document.querySelector(".quality").outerHTML.slice(0, 300)'));
      throw e;
    });
    check(true, `${tag}: quality details with safety code`);
    await shot(`quality-${tag}`);
    await d.click(await d.find('tile-quality'));
    await mock('share("p1")');
    await waitFor(() => attr('[data-testid="call"]', 'data-layout').then((l) => l === 'presenter'), 'presenter layout');
    await waitFor(() => d.exec('return window.__hearthPaint().some(t => t.tile === "p1/screen" && t.frames > 3)'), 'screen paints');
    check(true, `${tag}: presenter layout paints the screen`);
    await shot(`presenter-${tag}`);
    await mock('unshare("p1")');
    await waitFor(() => attr('[data-testid="call"]', 'data-layout').then((l) => l === 'grid'), 'grid again');
    await mock('dropServer(4, 2)');
    await waitFor(() => q('[data-testid="reconnect-banner"]'), 'reconnect banner');
    check((await attr('html', 'data-phase')) === 'reconnecting', `${tag}: reconnecting phase`);
    await mock('notice("camera_lost", "Your camera stopped", "Check its cable, then turn the camera on again.")');
    await waitFor(() => q('[data-testid="notice"][data-kind="camera_lost"]'), 'notice');
    await shot(`reconnecting-${tag}`);
    await mock('serverBack()');
    await d.click(await d.find('notice').then(async () => (await d.findAll('[data-testid="notice"] .dismiss'))[0]));
    await waitFor(() => q('[data-testid="notice"]').then((x) => !x), 'notice dismissed');
    check(true, `${tag}: notice dismissed`);

    // Eight peers in the grid stay on screen.
    for (let i = 0; i < 6; i++) await mock(`addPeer("Person ${i + 2} with a rather long display name")`);
    await sleep(1500);
    for (const r of await allOnScreen('[data-testid="tile"]')) check(r.ok, `${tag}: tile on screen with 8 peers`);
    await shot(`grid8-${tag}`);

    // Crash screen and recovery.
    await mock('crash()');
    await waitFor(() => q('[data-testid="error-boundary"]'), 'error boundary');
    await shot(`crash-${tag}`);
    await d.click(await d.find('error-boundary-reload'));
    await waitFor(() => q('[data-testid="call"]'), 'call after reload');
    check(true, `${tag}: reload restores the call`);

    await d.click(await d.find('btn-leave'));
    await waitFor(() => q('[data-testid="prejoin"]'), 'back to pre-join');
    check(true, `${tag}: leave returns to pre-join`);
  }
} catch (e) {
  check(false, String(e));
  await shot('failure').catch(() => undefined);
} finally {
  await d.quit();
}
const failed = checks.filter(([ok]) => !ok).length;
console.log(`${checks.length - failed} passed, ${failed} failed; screenshots in ${OUT}`);
process.exit(failed === 0 ? 0 : 1);
