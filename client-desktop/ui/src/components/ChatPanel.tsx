// The chat: the room thread and private 1-on-1 threads, unread counts, HH:MM times, links.
// Names and messages are hostile input: everything is rendered as text nodes (links as <a>
// elements built here), never parsed as HTML.

import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, asUiError } from '../api';
import type { ChatEntry, PeerView, UiError } from '../bindings';
import { ROOM, listThreads, threadOf } from '../chat';
import type { ThreadKey } from '../chat';
import { hhmm } from '../format';
import { linkify } from '../linkify';
import { ErrorCard } from './ErrorCard';
import { CloseIcon, SendIcon } from './icons';

/** Message text as text nodes, with http(s) links as <a> elements that open in the system
 * browser (through Rust: the webview itself never navigates). */
export function MessageText({ text, onError }: { text: string; onError: (e: unknown) => void }) {
  return (
    <>
      {linkify(text).map((s, i) =>
        s.kind === 'link' ? (
          <a
            key={i}
            href={s.href}
            target="_blank"
            rel="noopener noreferrer"
            title={s.href}
            onClick={(e) => {
              e.preventDefault();
              api.openLink(s.href).catch(onError);
            }}
          >
            {s.text}
          </a>
        ) : (
          s.text
        ),
      )}
    </>
  );
}

export function ChatPanel({
  chat,
  peers,
  thread,
  unread,
  onThread,
  onClose,
}: {
  chat: ChatEntry[];
  peers: PeerView[];
  thread: ThreadKey;
  unread: Record<ThreadKey, number>;
  onThread: (t: ThreadKey) => void;
  onClose: () => void;
}) {
  const [text, setText] = useState('');
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<UiError | null>(null);
  const list = useRef<HTMLDivElement>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const stick = useRef(true);

  const threads = listThreads(peers, chat);
  const current = threads.find((t) => t.key === thread) ?? threads[0];
  const messages = chat.filter((e) => threadOf(e) === current.key);
  const otherUnread = threads.filter((t) => t.key !== current.key && (unread[t.key] ?? 0) > 0);

  useEffect(() => {
    input.current?.focus();
  }, [current.key]);

  // Follow new messages unless the reader scrolled up to read older ones.
  useLayoutEffect(() => {
    const el = list.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [messages.length, current.key]);

  async function send() {
    const body = text.trim();
    if (body === '' || sending) return;
    if (!current.present) {
      setError({
        kind: 'invalid_input',
        title: `${current.name} has left`,
        message: 'Private messages reach people who are in the call. Pick Everyone or someone who is here.',
        detail: '',
      });
      return;
    }
    setSending(true);
    setError(null);
    setText('');
    try {
      await api.sendChat(body, current.key === ROOM ? null : current.key);
      stick.current = true;
    } catch (e) {
      setText(body);
      setError(asUiError(e));
    } finally {
      setSending(false);
      input.current?.focus();
    }
  }

  return (
    <aside class="side-panel chat-panel" data-testid="chat-panel" aria-label="Chat">
      <header class="panel-header">
        <h2>Chat</h2>
        <button type="button" class="icon-button" aria-label="Close chat" title="Close chat" data-testid="chat-close" onClick={onClose}>
          <CloseIcon />
        </button>
      </header>

      <div class="thread-picker">
        <label>
          <span class="visually-hidden">Conversation</span>
          <select data-testid="chat-thread" value={current.key} onChange={(e) => onThread(e.currentTarget.value)}>
            {threads.map((t) => {
              const n = unread[t.key] ?? 0;
              const label = t.key === ROOM ? 'Everyone' : `${t.name} (private)${t.present ? '' : ' — left'}`;
              return (
                <option key={t.key} value={t.key}>
                  {n > 0 ? `${label} · ${n} new` : label}
                </option>
              );
            })}
          </select>
        </label>
        {otherUnread.length > 0 ? (
          <div class="thread-chips">
            {otherUnread.map((t) => (
              <button type="button" key={t.key} class="chip" data-testid="thread-unread" data-thread={t.key} onClick={() => onThread(t.key)}>
                {t.key === ROOM ? 'Everyone' : t.name}
                <span class="count-badge">{unread[t.key]}</span>
              </button>
            ))}
          </div>
        ) : null}
      </div>

      <div
        class="messages"
        ref={list}
        role="log"
        aria-live="polite"
        aria-label={current.key === ROOM ? 'Messages to everyone' : `Private messages with ${current.name}`}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
        }}
      >
        {messages.length === 0 ? (
          <p class="empty">
            {current.key === ROOM ? 'No messages yet. Say hello!' : `Only you and ${current.name} see messages here.`}
          </p>
        ) : null}
        {messages.map((m) => (
          <div
            key={m.id}
            class={'message' + (m.mine ? ' mine' : '') + (m.to !== null ? ' private' : '')}
            data-testid="chat-message"
            data-from={m.from}
            data-private={m.to !== null ? 'true' : 'false'}
            data-mine={m.mine ? 'true' : 'false'}
          >
            <div class="message-meta">
              <span class="message-from">{m.mine ? 'You' : m.from_name}</span>
              {m.to !== null ? (
                <span class="message-private">{m.mine ? `to ${m.to_name ?? current.name}, privately` : 'privately'}</span>
              ) : null}
              <time class="message-time" dateTime={new Date(m.ts_ms).toISOString()}>
                {hhmm(m.ts_ms)}
              </time>
            </div>
            <div class="message-text">
              <MessageText text={m.text} onError={(e) => setError(asUiError(e))} />
            </div>
          </div>
        ))}
      </div>

      {error ? <ErrorCard error={error} compact onDismiss={() => setError(null)} /> : null}

      <form
        class="composer"
        onSubmit={(e) => {
          e.preventDefault();
          void send();
        }}
      >
        <textarea
          ref={input}
          data-testid="chat-input"
          rows={2}
          maxLength={4000}
          value={text}
          placeholder={current.key === ROOM ? 'Message everyone' : `Message ${current.name} privately`}
          aria-label={current.key === ROOM ? 'Message everyone' : `Message ${current.name} privately`}
          onInput={(e) => setText(e.currentTarget.value)}
          onChange={(e) => setText(e.currentTarget.value)}
          onKeyDown={(e) => {
            // Enter sends, Shift+Enter is a new line; never while an input method composes.
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              void send();
            }
          }}
        />
        <button
          type="submit"
          class="icon-button send"
          data-testid="chat-send"
          aria-label="Send"
          title="Send (Enter)"
          disabled={sending || text.trim() === ''}
        >
          <SendIcon />
        </button>
      </form>
    </aside>
  );
}
