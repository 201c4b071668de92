import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'dev' ? [] : sources(p);
    return /\.tsx?$/.test(name) ? [p] : [];
  });
}

// WebKitGTK's web process keeps memory for every new value of an inline CSS custom property:
// the speaking ring's `--level`, set ten times a second per tile, grew it ~1 MB/s in a 5-party
// call (docs/decisions.md, "No inline style values that change many times a second"). Values
// that follow audio or video go into attributes with a fixed set of values instead.
test('no component sets a CSS custom property inline', () => {
  const offenders: string[] = [];
  for (const file of sources(join(import.meta.dirname, '..', 'src'))) {
    const text = readFileSync(file, 'utf8');
    text.split('\n').forEach((line, i) => {
      if (/style=\{\{[^}]*['"]--/.test(line) || /\.style\.setProperty\(\s*['"`]--/.test(line)) offenders.push(`${file}:${i + 1}`);
    });
  }
  assert.deepEqual(offenders, []);
});

test('the speaking ring has a fixed rule for every voice step', () => {
  const css = readFileSync(join(import.meta.dirname, '..', 'src', 'styles.css'), 'utf8');
  for (const step of [1, 2, 3, 4]) assert.match(css, new RegExp(`\\.tile\\.speaking\\[data-voice='${step}'\\]`));
});
