import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linkify, safeHref } from '../src/linkify';

test('plain text stays one text segment', () => {
  assert.deepEqual(linkify('hello <img src=x onerror=alert(1)>'), [{ kind: 'text', text: 'hello <img src=x onerror=alert(1)>' }]);
});

test('http and https links are found between text', () => {
  const s = linkify('see https://example.com/a?b=1 and http://x.org.');
  assert.deepEqual(s, [
    { kind: 'text', text: 'see ' },
    { kind: 'link', text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' },
    { kind: 'text', text: ' and ' },
    { kind: 'link', text: 'http://x.org', href: 'http://x.org/' },
    { kind: 'text', text: '.' },
  ]);
});

test('other schemes are never links', () => {
  for (const t of ['javascript:alert(1)', 'data:text/html,<b>x</b>', 'file:///etc/passwd', 'hearth://join?room=a']) {
    assert.ok(linkify(t).every((s) => s.kind === 'text'), t);
  }
  assert.equal(safeHref('javascript:alert(1)'), null);
  assert.equal(safeHref('https://'), null);
});

test('a link stops at quotes and angle brackets', () => {
  const s = linkify('<a href="https://evil.example/x">');
  const link = s.find((x) => x.kind === 'link');
  assert.ok(link && link.kind === 'link');
  assert.equal(link.text, 'https://evil.example/x');
});

test('a closing parenthesis that balances one in the URL is kept', () => {
  const s = linkify('(see https://en.wikipedia.org/wiki/Hearth_(disambiguation))');
  const link = s.find((x) => x.kind === 'link');
  assert.ok(link && link.kind === 'link');
  assert.equal(link.text, 'https://en.wikipedia.org/wiki/Hearth_(disambiguation)');
  assert.equal(s[s.length - 1].text, ')');
});

test('segments put back together give the original text', () => {
  const texts = ['a https://b.c/d, e', 'https://x.y', 'no links', 'https://a.b/(c) http://q.r/?s=t!', ''];
  for (const t of texts) assert.equal(linkify(t).map((s) => s.text).join(''), t);
});
