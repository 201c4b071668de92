//! Every room's chat log (room and private messages), kept for late joiners' history and for
//! resumes. Bounded by count and bytes per room and by bytes over all rooms: past a bound the
//! oldest messages go first (of the room, or of the whole server for the total).

use hearth_proto::ChatMessage;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Bounds of the chat logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChatLogLimits {
    pub len_per_room: usize,
    pub bytes_per_room: usize,
    pub bytes_total: usize,
}

#[derive(Debug, Default)]
struct RoomLog {
    /// (server-wide order, message), oldest first.
    entries: VecDeque<(u64, ChatMessage)>,
    bytes: usize,
}

#[derive(Debug)]
pub(super) struct ChatLogs {
    limits: ChatLogLimits,
    rooms: HashMap<String, RoomLog>,
    /// Every logged message's server-wide order number and room: the first is the oldest.
    order: BTreeMap<u64, String>,
    next: u64,
    bytes: usize,
}

/// Bytes a logged message holds, approximately: its strings, the struct, and the bookkeeping
/// (the room name in the order index, tree and queue slots).
pub(super) fn chat_bytes(room: &str, m: &ChatMessage) -> usize {
    std::mem::size_of::<ChatMessage>()
        + m.id.len()
        + m.from.0.len()
        + m.from_name.len()
        + m.to.as_ref().map_or(0, |t| t.0.len())
        + m.text.len()
        + room.len()
        + 64
}

impl ChatLogs {
    pub(super) fn new(limits: ChatLogLimits) -> Self {
        ChatLogs { limits, rooms: HashMap::new(), order: BTreeMap::new(), next: 0, bytes: 0 }
    }

    /// Log `m` in `room`, then drop the oldest messages until every bound holds.
    pub(super) fn push(&mut self, room: &str, m: ChatMessage) {
        let n = self.next;
        self.next += 1;
        let bytes = chat_bytes(room, &m);
        let log = self.rooms.entry(room.to_owned()).or_default();
        log.entries.push_back((n, m));
        log.bytes += bytes;
        self.bytes += bytes;
        self.order.insert(n, room.to_owned());
        while log.entries.len() > self.limits.len_per_room.max(1) || log.bytes > self.limits.bytes_per_room {
            let Some((old, msg)) = log.entries.pop_front() else { break };
            let b = chat_bytes(room, &msg);
            log.bytes = log.bytes.saturating_sub(b);
            self.bytes = self.bytes.saturating_sub(b);
            self.order.remove(&old);
        }
        while self.bytes > self.limits.bytes_total {
            let Some((old, old_room)) = self.order.pop_first() else { break };
            let Some(log) = self.rooms.get_mut(&old_room) else { continue };
            // The order index and the room logs hold the same messages, oldest first.
            if log.entries.front().is_some_and(|(n, _)| *n == old)
                && let Some((_, msg)) = log.entries.pop_front()
            {
                let b = chat_bytes(&old_room, &msg);
                log.bytes = log.bytes.saturating_sub(b);
                self.bytes = self.bytes.saturating_sub(b);
            }
        }
    }

    /// `room`'s logged messages, oldest first.
    pub(super) fn messages(&self, room: &str) -> impl DoubleEndedIterator<Item = &ChatMessage> {
        self.rooms.get(room).into_iter().flat_map(|log| log.entries.iter().map(|(_, m)| m))
    }

    /// The room is gone: forget its log.
    pub(super) fn remove_room(&mut self, room: &str) {
        if let Some(log) = self.rooms.remove(room) {
            self.bytes = self.bytes.saturating_sub(log.bytes);
            for (n, _) in log.entries {
                self.order.remove(&n);
            }
        }
    }

    /// Bytes held by all logs.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The totals agree with the messages held (for the property tests).
    #[cfg(test)]
    pub(super) fn check(&self) -> Result<(), String> {
        let mut total = 0;
        for (room, log) in &self.rooms {
            let sum: usize = log.entries.iter().map(|(_, m)| chat_bytes(room, m)).sum();
            if sum != log.bytes {
                return Err(format!("room {room:?} log counts {} bytes, holds {sum}", log.bytes));
            }
            if log.entries.iter().any(|(n, _)| self.order.get(n) != Some(room)) {
                return Err(format!("room {room:?} has messages missing from the order index"));
            }
            total += sum;
        }
        let indexed: usize = self.rooms.values().map(|l| l.entries.len()).sum();
        if total != self.bytes || indexed != self.order.len() {
            return Err(format!("total {} vs {total}; index {} vs {indexed}", self.bytes, self.order.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use hearth_proto::PeerId;

    fn msg(seq: u64, text_len: usize) -> ChatMessage {
        ChatMessage {
            id: format!("m{seq}"),
            seq,
            ts_ms: 0,
            from: PeerId::from("p1"),
            from_name: "A".into(),
            to: None,
            text: "x".repeat(text_len),
        }
    }

    fn seqs(logs: &ChatLogs, room: &str) -> Vec<u64> {
        logs.messages(room).map(|m| m.seq).collect()
    }

    const BIG: ChatLogLimits =
        ChatLogLimits { len_per_room: 1000, bytes_per_room: 1 << 30, bytes_total: 1 << 30 };

    #[test]
    fn count_and_bytes_per_room_drop_the_oldest() {
        let mut logs = ChatLogs::new(ChatLogLimits { len_per_room: 3, ..BIG });
        for s in 1..=5 {
            logs.push("r", msg(s, 10));
        }
        assert_eq!(seqs(&logs, "r"), [3, 4, 5]);

        let one = chat_bytes("r", &msg(1, 1000));
        let mut logs = ChatLogs::new(ChatLogLimits { bytes_per_room: 3 * one, ..BIG });
        for s in 1..=5 {
            logs.push("r", msg(s, 1000));
        }
        assert_eq!(seqs(&logs, "r"), [3, 4, 5]);
        assert_eq!(logs.bytes(), 3 * one);
        // One big message pushes out as many small ones as it takes.
        logs.push("r", msg(6, 1800));
        assert_eq!(seqs(&logs, "r"), [5, 6]);
    }

    #[test]
    fn the_total_drops_the_oldest_of_any_room() {
        let one = chat_bytes("a", &msg(1, 100));
        let mut logs = ChatLogs::new(ChatLogLimits { bytes_total: 4 * one, ..BIG });
        logs.push("a", msg(1, 100));
        logs.push("b", msg(1, 100));
        logs.push("a", msg(2, 100));
        logs.push("b", msg(2, 100));
        logs.push("b", msg(3, 100));
        assert_eq!(seqs(&logs, "a"), [2]);
        assert_eq!(seqs(&logs, "b"), [1, 2, 3]);
        // The oldest now is b's first.
        logs.push("c", msg(1, 100));
        assert_eq!(seqs(&logs, "a"), [2]);
        assert_eq!(seqs(&logs, "b"), [2, 3]);
        assert_eq!(logs.bytes(), 4 * one);
        // A removed room gives back its bytes and leaves no stale index entries.
        logs.remove_room("b");
        assert_eq!(logs.bytes(), 2 * one);
        assert_eq!(logs.order.len(), 2);
        logs.push("c", msg(2, 100));
        logs.push("c", msg(3, 100));
        logs.push("c", msg(4, 100));
        assert_eq!(seqs(&logs, "a"), Vec::<u64>::new(), "a room's log can empty entirely");
        logs.remove_room("c");
        assert_eq!(logs.bytes(), 0);
        assert!(logs.order.is_empty() && logs.rooms.values().all(|l| l.entries.is_empty()));
    }
}
