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

/// Keeps what a client sends within the server's announced rate limit (`welcome.limits`), so
/// nothing is dropped as `rate_limited` (which the server does not say which message it was):
/// frames beyond the budget wait here, in order, and go out as the budget refills. Sans-IO: the
/// driver pushes frames, then takes what [`SendPacer::poll`] allows, and wakes at
/// [`SendPacer::next_ready`].
#[derive(Debug)]
pub struct SendPacer {
    /// Messages per second and burst we allow ourselves (a margin under the server's).
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<std::time::Instant>,
    queue: VecDeque<ClientFrame>,
}

impl SendPacer {
    /// A pacer for a server that allows `rate_per_sec` messages per second with `burst`. We
    /// keep 10% of the rate and half the burst in reserve (pings and clock skew).
    pub fn new(rate_per_sec: u32, burst: u32) -> SendPacer {
        let rate = (f64::from(rate_per_sec) * 0.9).max(1.0);
        let burst = (f64::from(burst) / 2.0).max(1.0);
        SendPacer { rate, burst, tokens: burst, last: None, queue: VecDeque::new() }
    }

    fn refill(&mut self, now: std::time::Instant) {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(now);
    }

    /// Queue a frame behind any that are waiting.
    pub fn push(&mut self, frame: ClientFrame) {
        self.queue.push_back(frame);
    }

    /// The next frame allowed out now, if any.
    pub fn poll(&mut self, now: std::time::Instant) -> Option<ClientFrame> {
        if self.queue.is_empty() {
            return None;
        }
        self.refill(now);
        // A hair of slack: waking at `next_ready` must be enough despite rounding.
        if self.tokens < 1.0 - 1e-6 {
            return None;
        }
        self.tokens = (self.tokens - 1.0).max(0.0);
        self.queue.pop_front()
    }

    /// When the next waiting frame may go, if any waits. Asking again later gives the same time
    /// (the tokens earned since the last poll count), so a caller woken for other reasons does
    /// not push the deadline away.
    pub fn next_ready(&self, now: std::time::Instant) -> Option<std::time::Instant> {
        if self.queue.is_empty() {
            return None;
        }
        let tokens = match self.last {
            Some(last) => {
                (self.tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate).min(self.burst)
            }
            None => self.tokens,
        };
        let missing = (1.0 - tokens).max(0.0);
        // Rounded up to the next microsecond, so waking then finds the token.
        let wait_us = (missing / self.rate * 1e6).ceil() as u64 + 1;
        Some(now + std::time::Duration::from_micros(wait_us))
    }

    /// Forget what waits (the connection it was for is gone; the [`Outbox`] still has it).
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// Frames waiting.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod pacer_tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn chat(n: u32) -> ClientFrame {
        ClientFrame::numbered(ClientMessage::Chat { text: format!("m{n}"), to: None }, u64::from(n))
    }

    #[test]
    fn asking_when_again_later_does_not_postpone() {
        // Regression: the engine's loop wakes every 100 ms for other work and asks again; the
        // answer counted from "now" without the tokens earned since, so at 9/s it moved 111 ms
        // ahead on every wake and nothing ever left.
        let mut p = SendPacer::new(10, 10);
        let t = Instant::now();
        for n in 1..=8 {
            p.push(chat(n));
        }
        while p.poll(t).is_some() {}
        let wake = p.next_ready(t).unwrap();
        for later_ms in [10, 50, 100] {
            let again = p.next_ready(t + Duration::from_millis(later_ms)).unwrap();
            assert!(again.max(wake) - again.min(wake) <= Duration::from_micros(2), "{:?}", again - t);
        }
        // Past the wake time: at once.
        let late = t + Duration::from_millis(500);
        assert!(p.next_ready(late).unwrap() <= late + Duration::from_micros(2));
        assert!(p.poll(wake).is_some());
    }

    #[test]
    fn a_burst_goes_at_once_and_the_rest_at_the_rate_in_order() {
        // The server allows 10/s with a burst of 10: we allow ourselves 9/s and 5.
        let mut p = SendPacer::new(10, 10);
        let t = Instant::now();
        for n in 1..=20 {
            p.push(chat(n));
        }
        let first: Vec<u64> = std::iter::from_fn(|| p.poll(t)).filter_map(|f| f.cseq).collect();
        assert_eq!(first, [1, 2, 3, 4, 5]);
        let wake = p.next_ready(t).unwrap();
        assert!(wake > t && wake <= t + Duration::from_millis(112), "{:?}", wake - t);
        // Over the next two seconds the rest leave in order, never faster than 9/s.
        let mut sent = first;
        let mut at = t;
        for _ in 0..1000 {
            let Some(next) = p.next_ready(at) else { break };
            at = next;
            while let Some(f) = p.poll(at) {
                sent.push(f.cseq.unwrap());
            }
        }
        assert_eq!(sent, (1..=20).collect::<Vec<u64>>());
        let took = at - t;
        assert!(took >= Duration::from_millis(1600) && took <= Duration::from_millis(1700), "{took:?}");
    }

    #[test]
    fn nothing_waits_when_under_the_limit() {
        let mut p = SendPacer::new(50, 200);
        let t = Instant::now();
        for n in 1..=3 {
            p.push(chat(n));
            assert_eq!(
                p.poll(t + Duration::from_millis(u64::from(n) * 100)).and_then(|f| f.cseq),
                Some(u64::from(n))
            );
        }
        assert_eq!(p.next_ready(t), None);
        p.push(chat(4));
        p.clear();
        assert_eq!(p.waiting(), 0);
    }
}
