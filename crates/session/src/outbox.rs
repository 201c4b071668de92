//! What a client has sent and the server has not yet confirmed, so that nothing is lost across
//! a resume (protocol: "Client sequence numbers").
//!
//! Every numbered message (all but `join` and `ping`) gets the session's next `cseq` and is kept
//! until the server confirms it: `pong.last_cseq` forgets what it covers; after a resume,
//! `welcome.last_cseq` says where the server stopped and [`Outbox::resend_after`] gives back
//! exactly the rest, in order. A socket that died unnoticed therefore loses nothing, and nothing
//! is sent twice to the room (the server drops a `cseq` it already has).

use hearth_proto::{ClientFrame, ClientMessage};
use std::collections::VecDeque;

/// Messages kept at most; past it the oldest is forgotten (and counted).
pub const OUTBOX_LIMIT: usize = 1024;

/// See the module docs.
#[derive(Debug)]
pub struct Outbox {
    next: u64,
    kept: VecDeque<(u64, ClientMessage)>,
    limit: usize,
    forgotten: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new(OUTBOX_LIMIT)
    }
}

impl Outbox {
    pub fn new(limit: usize) -> Outbox {
        Outbox { next: 1, kept: VecDeque::new(), limit: limit.max(1), forgotten: 0 }
    }

    /// Number `msg` if it is numbered and keep it; the frame to put on the wire.
    pub fn push(&mut self, msg: ClientMessage) -> ClientFrame {
        if !msg.is_numbered() {
            return ClientFrame::from(msg);
        }
        let cseq = self.next;
        self.next += 1;
        if self.kept.len() >= self.limit {
            self.kept.pop_front();
            self.forgotten += 1;
        }
        self.kept.push_back((cseq, msg.clone()));
        ClientFrame::numbered(msg, cseq)
    }

    /// The server has everything up to `last_cseq`.
    pub fn confirmed(&mut self, last_cseq: u64) {
        while self.kept.front().is_some_and(|(c, _)| *c <= last_cseq) {
            self.kept.pop_front();
        }
    }

    /// After a (resumed) welcome: forget what the server has, and return the rest to send again,
    /// in order.
    pub fn resend_after(&mut self, last_cseq: u64) -> Vec<ClientFrame> {
        self.confirmed(last_cseq);
        self.kept.iter().map(|(c, m)| ClientFrame::numbered(m.clone(), *c)).collect()
    }

    /// A new session (the old one could not be resumed). What the person said (chat, a raised
    /// hand) still goes to the room, renumbered for the new session; what addressed the old
    /// session's links (offers, answers, candidates, reports) and stale reactions are dropped.
    pub fn reset(&mut self) {
        let keep: Vec<ClientMessage> = self
            .kept
            .drain(..)
            .map(|(_, m)| m)
            .filter(|m| matches!(m, ClientMessage::Chat { .. } | ClientMessage::RaiseHand { .. }))
            .collect();
        self.next = 1;
        for m in keep {
            self.push(m);
        }
    }

    /// Messages kept, waiting for confirmation.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Messages forgotten because more than the limit were waiting.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chat(n: u32) -> ClientMessage {
        ClientMessage::Chat { text: format!("m{n}"), to: None }
    }

    #[test]
    fn numbered_messages_are_kept_until_confirmed_and_resent_exactly_after_the_server_position() {
        let mut o = Outbox::default();
        assert_eq!(o.push(ClientMessage::Ping { nonce: 1 }).cseq, None);
        let frames: Vec<ClientFrame> = (1..=5).map(|n| o.push(chat(n))).collect();
        assert_eq!(frames.iter().map(|f| f.cseq).collect::<Vec<_>>(), [1, 2, 3, 4, 5].map(Some));
        assert_eq!(o.len(), 5);
        o.confirmed(2);
        assert_eq!(o.len(), 3);
        // The socket died after the server took 3: 4 and 5 go again, with their numbers.
        let again = o.resend_after(3);
        assert_eq!(again, vec![ClientFrame::numbered(chat(4), 4), ClientFrame::numbered(chat(5), 5)]);
        // Numbering goes on across the resume.
        assert_eq!(o.push(chat(6)).cseq, Some(6));
        o.confirmed(6);
        assert!(o.is_empty());
    }

    #[test]
    fn a_new_session_renumbers_what_the_person_said_and_drops_the_old_links_signals() {
        let mut o = Outbox::default();
        o.push(chat(1));
        o.push(ClientMessage::Offer { to: "pold".into(), sdp: "v=0".into() });
        o.push(ClientMessage::RaiseHand { raised: true });
        o.push(ClientMessage::Reaction { emoji: "👍".into() });
        o.confirmed(1);
        o.reset();
        assert_eq!(
            o.resend_after(0),
            vec![ClientFrame::numbered(ClientMessage::RaiseHand { raised: true }, 1)]
        );
        assert_eq!(o.push(chat(3)).cseq, Some(2));
    }

    #[test]
    fn the_outbox_is_bounded() {
        let mut o = Outbox::new(3);
        for n in 1..=5 {
            o.push(chat(n));
        }
        assert_eq!(o.len(), 3);
        assert_eq!(o.forgotten(), 2);
        assert_eq!(o.resend_after(0).first().and_then(|f| f.cseq), Some(3));
    }
}
