// Splits chat text into plain text and http(s) links, so links can be rendered as <a> elements
// and everything else as text nodes. No HTML is ever parsed: the caller builds DOM nodes.

export type Segment = { kind: 'text'; text: string } | { kind: 'link'; text: string; href: string };

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
// Punctuation that usually ends a sentence rather than the URL.
const TRAILING = '.,;:!?\'"»]}';

export function linkify(text: string): Segment[] {
  const out: Segment[] = [];
  let last = 0;
  URL_RE.lastIndex = 0;
  for (let m = URL_RE.exec(text); m !== null; m = URL_RE.exec(text)) {
    const candidate = trimTrailing(m[0]);
    const href = safeHref(candidate);
    if (href === null) continue;
    if (m.index > last) out.push({ kind: 'text', text: text.slice(last, m.index) });
    out.push({ kind: 'link', text: candidate, href });
    last = m.index + candidate.length;
    URL_RE.lastIndex = last;
  }
  if (last < text.length) out.push({ kind: 'text', text: text.slice(last) });
  return out;
}

/** The URL without the sentence punctuation after it; a closing parenthesis stays when it
 * balances one inside the URL (Wikipedia-style links). */
function trimTrailing(url: string): string {
  let end = url.length;
  while (end > 0) {
    const c = url[end - 1];
    if (c === ')') {
      const body = url.slice(0, end);
      const opens = body.split('(').length - 1;
      const closes = body.split(')').length - 1;
      if (closes <= opens) break;
    } else if (!TRAILING.includes(c)) {
      break;
    }
    end--;
  }
  return url.slice(0, end);
}

/** The normalized URL when it is a well-formed http(s) URL with a host, else null. */
export function safeHref(raw: string): string | null {
  try {
    const url = new URL(raw);
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') return null;
    return url.href;
  } catch {
    return null;
  }
}
