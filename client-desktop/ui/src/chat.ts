// The chat as the page keeps it: the history from `get_chat` merged with `chat` events (by id,
// since an event can arrive before or after the history that contains it), grouped in threads.

import type { ChatEntry, PeerView } from './bindings';

/** "room" or the peer id of the other person of a private thread. */
export type ThreadKey = string;
export const ROOM: ThreadKey = 'room';

export function threadOf(entry: ChatEntry): ThreadKey {
  if (entry.to === null) return ROOM;
  return entry.thread ?? (entry.mine ? entry.to : entry.from);
}

/** `current` followed by the entries of `incoming` it does not have yet, in order. */
export function mergeChat(current: ChatEntry[], incoming: ChatEntry[]): ChatEntry[] {
  const seen = new Set(current.map((e) => e.id));
  const added = incoming.filter((e) => {
    if (seen.has(e.id)) return false;
    seen.add(e.id);
    return true;
  });
  return added.length === 0 ? current : current.concat(added);
}

export interface ThreadInfo {
  key: ThreadKey;
  /** "Everyone" or the other person's name. */
  name: string;
  /** The person is in the call now (a private message can reach them). */
  present: boolean;
}

/** The room, every person in the call, and every past private thread (people who left keep
 * their thread so its messages stay readable). */
export function listThreads(peers: PeerView[], chat: ChatEntry[]): ThreadInfo[] {
  const threads: ThreadInfo[] = [{ key: ROOM, name: 'Everyone', present: true }];
  const known = new Set<string>([ROOM]);
  for (const p of peers) {
    known.add(p.peer_id);
    threads.push({ key: p.peer_id, name: p.name, present: true });
  }
  for (const e of chat) {
    const key = threadOf(e);
    if (known.has(key)) continue;
    known.add(key);
    const name = (e.mine ? e.to_name : e.from_name) ?? key;
    threads.push({ key, name, present: false });
  }
  return threads;
}
