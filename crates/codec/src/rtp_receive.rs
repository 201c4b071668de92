//! The sans-IO receive path of one H.264 RTP stream: packets in any order in, access units and
//! keyframe requests out. A [`ReorderBuffer`] (no delay while packets arrive in order) in front
//! of an [`H264Assembler`].
//!
//! The stream's first packets wait until the first one of an access unit is among them (see
//! [`H264Receiver::push`]): the reorder buffer takes its first packet as the start of the
//! numbering, so a keyframe whose first packet came late (a copy or a retransmission a few
//! milliseconds behind the rest) would otherwise be thrown away as broken, and the call's first
//! frame would wait a keyframe round trip.
//!
//! # Driving it
//! ```
//! use hearth_codec::rtp_receive::{H264Receiver, Received};
//! use std::time::{Duration, Instant};
//! let mut rx = H264Receiver::new(Duration::from_millis(80), 512);
//! // On each packet: rx.push(packet, Instant::now()); then drain.
//! // When nothing arrives: wake at rx.deadline() and drain.
//! while let Some(ev) = rx.poll(Instant::now()) {
//!     match ev {
//!         Received::Frame(au) => { /* decode au.data */ }
//!         Received::NeedKeyframe => { /* send PLI (rate-limited) */ }
//!         Received::Lost(_count) => { /* count it */ }
//!     }
//! }
//! ```

use crate::rtp_h264::{AccessUnit, Assembled, AssemblerStats, H264Assembler, RtpPacket, starts_access_unit};
use hearth_media::{Released, ReorderBuffer, ReorderStats};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the receive path produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A complete access unit, in order.
    Frame(AccessUnit),
    /// The stream is broken until a keyframe: ask the sender for one.
    NeedKeyframe,
    /// This many packets were given up as lost.
    Lost(u64),
}

/// How long the stream's first packets wait for the first packet of an access unit: the
/// sender's copy of a stream's first frame goes 10 ms after the original
/// (`hearth_engine::handshake_copy`), plus jitter.
pub const START_WAIT: Duration = Duration::from_millis(50);

/// One H.264 stream's reordering and frame assembly.
#[derive(Debug)]
pub struct H264Receiver {
    reorder: ReorderBuffer<RtpPacket>,
    asm: H264Assembler,
    out: VecDeque<Received>,
    max_held: usize,
    /// Until the stream's start is known: its packets so far (in arrival order) with their
    /// arrival times. `None` once they went to the reorder buffer.
    start: Option<Vec<(RtpPacket, Instant)>>,
}

impl H264Receiver {
    /// Gaps are waited for at most `max_wait`, or until `max_held` packets are held.
    pub fn new(max_wait: Duration, max_held: usize) -> H264Receiver {
        Self::with_assembler(max_wait, max_held, H264Assembler::default())
    }

    pub fn with_assembler(max_wait: Duration, max_held: usize, asm: H264Assembler) -> H264Receiver {
        H264Receiver {
            reorder: ReorderBuffer::new(max_wait, max_held),
            asm,
            out: VecDeque::new(),
            max_held: max_held.max(1),
            start: Some(Vec::new()),
        }
    }

    /// A packet arrived at `now`.
    ///
    /// The stream's first packets are held until the earliest of them (by sequence number)
    /// starts an access unit ([`starts_access_unit`]), for at most [`START_WAIT`] (or
    /// `max_held` packets): when it arrives first, as it usually does, nothing waits.
    pub fn push(&mut self, p: RtpPacket, now: Instant) {
        if let Some(held) = &mut self.start {
            if held.first().is_some_and(|(q, _)| q.ssrc != p.ssrc) {
                held.clear();
            }
            if held.iter().any(|(q, _)| q.seq == p.seq) {
                return;
            }
            held.push((p, now));
            // Oldest first, by sequence number (wrapping, around the first packet's).
            let anchor = held[0].0.seq;
            held.sort_by_key(|(q, _)| q.seq.wrapping_sub(anchor) as i16);
            if starts_access_unit(&held[0].0.payload) || held.len() > self.max_held {
                self.release_start();
            }
            return;
        }
        self.push_ordered(p, now);
    }

    fn push_ordered(&mut self, p: RtpPacket, now: Instant) {
        // A restarted stream (new SSRC, or numbering that jumped by thousands) leaves nothing
        // of the old one behind and waits for a keyframe.
        if self.reorder.push_from(p.ssrc, p.seq, p, now) {
            self.asm.restart();
        }
    }

    /// The held first packets go to the reorder buffer, oldest first.
    fn release_start(&mut self) {
        for (p, at) in self.start.take().unwrap_or_default() {
            self.push_ordered(p, at);
        }
    }

    /// The next output ready at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Received> {
        if self.start.is_some() {
            match self.start_due() {
                Some(due) if now >= due => self.release_start(),
                _ => return None,
            }
        }
        loop {
            if let Some(ev) = self.out.pop_front() {
                return Some(ev);
            }
            let assembled = match self.reorder.pop(now)? {
                Released::Lost { count, .. } => {
                    self.out.push_back(Received::Lost(count));
                    self.asm.lost()
                }
                Released::Item { item, .. } => self.asm.push(&item),
            };
            match assembled {
                Assembled::Nothing => {}
                Assembled::Frame(au) => self.out.push_back(Received::Frame(au)),
                Assembled::NeedKeyframe => self.out.push_back(Received::NeedKeyframe),
            }
        }
    }

    /// Change how long a missing packet is waited for (see [`ReorderBuffer::set_max_wait`]).
    pub fn set_max_wait(&mut self, max_wait: Duration) {
        self.reorder.set_max_wait(max_wait);
    }

    /// RTP sequence numbers still waited for (gaps before the newest packet), oldest first; the
    /// extended numbers, as [`hearth_media::NackScheduler`] takes them.
    pub fn missing(&self, limit: usize) -> Vec<u64> {
        self.reorder.missing(limit)
    }

    /// When to call [`H264Receiver::poll`] again if no packet arrives.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.start {
            Some(_) => self.start_due(),
            None => self.reorder.deadline(),
        }
    }

    /// When the held first packets go to the reorder buffer whatever they are: [`START_WAIT`]
    /// after the first of them arrived (`None`: nothing held).
    fn start_due(&self) -> Option<Instant> {
        self.start.as_ref()?.iter().map(|(_, at)| *at + START_WAIT).min()
    }

    /// Drop frames until the next complete keyframe (e.g. the decoder fell behind).
    pub fn wait_for_keyframe(&mut self) {
        self.asm.wait_for_keyframe();
    }

    pub fn waiting_for_keyframe(&self) -> bool {
        self.asm.waiting_for_keyframe()
    }

    pub fn reorder_stats(&self) -> ReorderStats {
        self.reorder.stats()
    }

    pub fn assembler_stats(&self) -> AssemblerStats {
        self.asm.stats()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pkt(ssrc: u32, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> RtpPacket {
        RtpPacket { ssrc, seq, timestamp, marker, payload: Bytes::copy_from_slice(payload) }
    }

    const KEY: [&[u8]; 2] = [&[0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce], &[0x65, 0x88, 7]];

    fn drain(rx: &mut H264Receiver, now: Instant) -> Vec<Received> {
        std::iter::from_fn(|| rx.poll(now)).collect()
    }

    fn frames(evs: &[Received]) -> usize {
        evs.iter().filter(|e| matches!(e, Received::Frame(_))).count()
    }

    #[test]
    fn reordered_packets_make_a_frame_and_a_lost_one_asks_for_a_keyframe() {
        let t = Instant::now();
        let mut rx = H264Receiver::new(Duration::from_millis(80), 64);
        // SPS+PPS, then an IDR in two FU-A fragments whose halves arrive swapped.
        rx.push(pkt(1, 10, 0, false, KEY[0]), t);
        rx.push(pkt(1, 12, 0, true, &[0x7c, 0x45, 7, 8]), t);
        assert!(drain(&mut rx, t).is_empty());
        rx.push(pkt(1, 11, 0, false, &[0x7c, 0x85, 0x88]), t);
        let evs = drain(&mut rx, t);
        let [Received::Frame(au)] = &evs[..] else { panic!("{evs:?}") };
        assert!(au.keyframe);
        assert!(au.data.ends_with(&[0, 0, 0, 1, 0x65, 0x88, 7, 8]));
        // 13 never comes.
        rx.push(pkt(1, 14, 3000, true, &[0x41, 0x9a, 1]), t);
        assert!(drain(&mut rx, t).is_empty());
        assert_eq!(rx.deadline(), Some(t + Duration::from_millis(80)));
        let evs = drain(&mut rx, t + Duration::from_millis(80));
        assert_eq!(evs[0], Received::Lost(1));
        assert!(evs.contains(&Received::NeedKeyframe));
        assert_eq!(frames(&evs), 0);
        assert!(rx.waiting_for_keyframe());
    }

    /// The copy of a keyframe's first packet (SPS+PPS) arrives after the rest of the frame:
    /// the frame is whole, no keyframe is asked for.
    #[test]
    fn a_first_keyframe_whose_first_packet_comes_last_is_not_thrown_away() {
        let t = Instant::now();
        let mut rx = H264Receiver::new(Duration::from_millis(400), 64);
        rx.push(pkt(1, 101, 0, false, &[0x7c, 0x85, 0x88]), t);
        rx.push(pkt(1, 102, 0, true, &[0x7c, 0x45, 7, 8]), t);
        assert!(drain(&mut rx, t).is_empty(), "held: no access unit starts there");
        assert_eq!(rx.deadline(), Some(t + START_WAIT));
        assert!(rx.missing(8).is_empty());
        let later = t + Duration::from_millis(10);
        rx.push(pkt(1, 100, 0, false, KEY[0]), later);
        let evs = drain(&mut rx, later);
        let [Received::Frame(au)] = &evs[..] else { panic!("{evs:?}") };
        assert!(au.keyframe);
        // Then the stream goes on as usual, and a late duplicate is dropped.
        rx.push(pkt(1, 100, 0, false, KEY[0]), later);
        rx.push(pkt(1, 103, 3000, true, &[0x41, 0x9a, 1]), later);
        assert_eq!(frames(&drain(&mut rx, later)), 1);
        assert_eq!(rx.reorder_stats().late, 1);
    }

    /// A first packet that starts an access unit goes through at once; packets whose start
    /// never comes wait [`START_WAIT`], then the stream asks for a keyframe.
    #[test]
    fn the_start_is_waited_for_only_when_it_is_missing() {
        let t = Instant::now();
        let mut rx = H264Receiver::new(Duration::from_millis(400), 64);
        rx.push(pkt(1, 7, 0, false, KEY[0]), t);
        assert!(drain(&mut rx, t).is_empty());
        rx.push(pkt(1, 8, 0, true, KEY[1]), t);
        assert_eq!(frames(&drain(&mut rx, t)), 1);

        let mut rx = H264Receiver::new(Duration::from_millis(400), 64);
        rx.push(pkt(1, 9, 0, true, &[0x7c, 0x45, 7, 8]), t);
        assert!(drain(&mut rx, t + START_WAIT - Duration::from_millis(1)).is_empty());
        assert_eq!(drain(&mut rx, t + START_WAIT), [Received::NeedKeyframe]);
        rx.push(pkt(1, 10, 3000, false, KEY[0]), t + START_WAIT);
        rx.push(pkt(1, 11, 3000, true, KEY[1]), t + START_WAIT);
        assert_eq!(frames(&drain(&mut rx, t + START_WAIT)), 1);
    }

    /// A restarted stream (a second screen share: new SSRC, unrelated numbering) waits for a
    /// keyframe and does not take the old stream's parameter sets for its own.
    #[test]
    fn a_restarted_stream_waits_for_a_keyframe() {
        let t = Instant::now();
        let mut rx = H264Receiver::new(Duration::from_millis(80), 64);
        rx.push(pkt(1, 10, 0, false, KEY[0]), t);
        rx.push(pkt(1, 11, 0, true, KEY[1]), t);
        assert_eq!(frames(&drain(&mut rx, t)), 1);
        rx.push(pkt(1, 12, 3000, true, &[0x41, 0x9a, 1]), t);
        assert_eq!(frames(&drain(&mut rx, t)), 1);
        // Same numbering continued but a new SSRC; then a sequence jump on the same SSRC.
        for (ssrc, seq) in [(2u32, 13u16), (2, 40_000)] {
            rx.push(pkt(ssrc, seq, 9000, true, &[0x41, 0x9a, 1]), t);
            assert_eq!(drain(&mut rx, t), [Received::NeedKeyframe]);
            rx.push(pkt(ssrc, seq + 1, 12000, true, &[0x65, 0x88, 7]), t);
            assert_eq!(drain(&mut rx, t), [Received::NeedKeyframe], "bare IDR on a new stream");
            rx.push(pkt(ssrc, seq + 2, 15000, false, KEY[0]), t);
            rx.push(pkt(ssrc, seq + 3, 15000, true, KEY[1]), t);
            assert_eq!(frames(&drain(&mut rx, t)), 1);
        }
        assert_eq!(rx.reorder_stats().resets, 2);
    }
}
