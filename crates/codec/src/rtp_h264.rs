//! H.264 over RTP, receive side (RFC 6184, packetization mode 1 "non-interleaved"): payloads
//! to NAL units, and RTP packets to whole Annex-B access units. Sans-IO: no sockets, no clock,
//! no WebRTC types; the caller feeds packets in order (see [`crate::rtp_receive`] for the
//! reordering in front of it).
//!
//! # Driving it
//! Feed every packet of one stream, in sequence order, to [`H264Assembler::push`]; tell it
//! about gaps the reordering gave up on with [`H264Assembler::lost`]. Each call answers
//! [`Assembled`]: nothing yet, a complete access unit (released on the RTP marker bit), or
//! "request a keyframe" (send PLI; rate-limit on your side).
//!
//! ```
//! use hearth_codec::rtp_h264::{Assembled, H264Assembler, RtpPacket};
//! let mut asm = H264Assembler::default();
//! // STAP-A with SPS and PPS, then an IDR slice that starts at macroblock 0, marker set.
//! let stap = [0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce];
//! let idr = [0x65, 0x88, 0x84];
//! let p = |seq, marker, payload: &[u8]| RtpPacket {
//!     ssrc: 1, seq, timestamp: 3000, marker, payload: bytes::Bytes::copy_from_slice(payload),
//! };
//! assert!(matches!(asm.push(&p(7, false, &stap)), Assembled::Nothing));
//! let Assembled::Frame(au) = asm.push(&p(8, true, &idr)) else { panic!() };
//! assert!(au.keyframe);
//! assert_eq!(&au.data[..], &[0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88, 0x84]);
//! ```
//!
//! # Invariants
//! - No input panics, and memory per stream is bounded by [`H264Assembler::with_max_frame_bytes`].
//! - A frame is released only if every packet of it arrived: no sequence gap inside it, every
//!   FU-A run begins with a start fragment and ends with an end fragment, and the marker bit
//!   closed it. Anything else is dropped whole and the stream waits for a keyframe.
//! - While waiting for a keyframe (at the start, after a loss, a malformed packet or a stream
//!   restart), only a *complete* keyframe is released: it holds an IDR slice, its first slice
//!   starts at macroblock 0, and its SPS and PPS are in it or came in an earlier released frame
//!   of the same stream. The first frame after a gap is never trusted: its head may have been
//!   lost with the gap.

use bytes::{Bytes, BytesMut};

/// The fields of one RTP packet the receive path needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
}

/// Why an RTP payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    #[error("empty payload")]
    Empty,
    #[error("the NAL header's forbidden bit is set")]
    ForbiddenBit,
    #[error("STAP-A truncated: a length field or a NAL unit runs past the end")]
    TruncatedAggregate,
    #[error("STAP-A with a zero-length NAL unit or none at all")]
    EmptyAggregate,
    #[error("NAL unit type {0} inside a STAP-A")]
    BadAggregatedType(u8),
    #[error("FU-A shorter than its two header bytes")]
    ShortFragment,
    #[error("FU-A with both start and end bits set")]
    StartAndEnd,
    #[error("FU-A carrying NAL unit type {0}")]
    BadFragmentedType(u8),
    /// STAP-B, MTAP16, MTAP24, FU-B: interleaved mode only, which we never negotiate.
    #[error("NAL unit type {0} is not allowed in non-interleaved mode")]
    Unsupported(u8),
}

/// NAL unit types (H.264 table 7-1, RFC 6184 table 1).
pub mod nal_type {
    pub const SLICE: u8 = 1;
    pub const SLICE_PARTITION_A: u8 = 2;
    pub const IDR: u8 = 5;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const STAP_A: u8 = 24;
    pub const STAP_B: u8 = 25;
    pub const MTAP16: u8 = 26;
    pub const MTAP24: u8 = 27;
    pub const FU_A: u8 = 28;
    pub const FU_B: u8 = 29;
}

/// One RTP payload, parsed and validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// A single NAL unit (types 1-23), header included.
    Single(&'a [u8]),
    /// A STAP-A whose every length was checked; iterate with [`StapA::units`].
    Aggregate(StapA<'a>),
    /// One FU-A fragment: the fragmented NAL unit's header (rebuilt from the FU indicator and
    /// FU header) and this fragment's bytes.
    Fragment { nal_header: u8, start: bool, end: bool, data: &'a [u8] },
    /// Reserved types 0, 30 and 31: RFC 6184 says to ignore them.
    Ignored,
}

/// A validated STAP-A payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StapA<'a>(&'a [u8]);

impl<'a> StapA<'a> {
    /// The aggregated NAL units (each at least one byte, types 1-23).
    pub fn units(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let data = self.0;
        let mut at = 1;
        std::iter::from_fn(move || {
            let len = usize::from(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]));
            let unit = data.get(at + 2..at + 2 + len)?;
            at += 2 + len;
            Some(unit)
        })
    }
}

fn is_single_nal_type(t: u8) -> bool {
    (1..=23).contains(&t)
}

/// Parse one RTP payload. Every length is checked; never panics.
pub fn parse_payload(payload: &[u8]) -> Result<Payload<'_>, PayloadError> {
    let &b0 = payload.first().ok_or(PayloadError::Empty)?;
    if b0 & 0x80 != 0 {
        return Err(PayloadError::ForbiddenBit);
    }
    match b0 & 0x1f {
        t if is_single_nal_type(t) => Ok(Payload::Single(payload)),
        nal_type::STAP_A => {
            let mut at = 1;
            let mut units = 0;
            while at < payload.len() {
                let len_bytes = payload.get(at..at + 2).ok_or(PayloadError::TruncatedAggregate)?;
                let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
                let unit = payload.get(at + 2..at + 2 + len).ok_or(PayloadError::TruncatedAggregate)?;
                let &h = unit.first().ok_or(PayloadError::EmptyAggregate)?;
                if h & 0x80 != 0 {
                    return Err(PayloadError::ForbiddenBit);
                }
                if !is_single_nal_type(h & 0x1f) {
                    return Err(PayloadError::BadAggregatedType(h & 0x1f));
                }
                at += 2 + len;
                units += 1;
            }
            if units == 0 {
                return Err(PayloadError::EmptyAggregate);
            }
            Ok(Payload::Aggregate(StapA(payload)))
        }
        nal_type::FU_A => {
            let &fu = payload.get(1).ok_or(PayloadError::ShortFragment)?;
            let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
            // The R bit (0x20) must be ignored by receivers.
            let t = fu & 0x1f;
            if !is_single_nal_type(t) {
                return Err(PayloadError::BadFragmentedType(t));
            }
            if start && end {
                return Err(PayloadError::StartAndEnd);
            }
            Ok(Payload::Fragment { nal_header: (b0 & 0x60) | t, start, end, data: &payload[2..] })
        }
        t @ (nal_type::STAP_B | nal_type::MTAP16 | nal_type::MTAP24 | nal_type::FU_B) => {
            Err(PayloadError::Unsupported(t))
        }
        _ => Ok(Payload::Ignored),
    }
}

/// Whether `payload` can be the first packet of an access unit: it opens with an access unit
/// delimiter or a sequence parameter set (what a keyframe starts with), or with a slice whose
/// `first_mb_in_slice` is 0 (the first slice of a picture: that ue(v) field is the slice
/// header's first bit, 1 for the value 0). An IDR slice without the parameter sets before it
/// does not count: the keyframe's first packet is still missing. Never panics.
pub fn starts_access_unit(payload: &[u8]) -> bool {
    let (nal_type, first_byte) = match parse_payload(payload) {
        Ok(Payload::Single(nal)) => (nal[0] & 0x1f, nal.get(1).copied()),
        Ok(Payload::Aggregate(stap)) => match stap.units().next() {
            Some(nal) => (nal[0] & 0x1f, nal.get(1).copied()),
            None => return false,
        },
        Ok(Payload::Fragment { nal_header, start: true, data, .. }) => {
            (nal_header & 0x1f, data.first().copied())
        }
        _ => return false,
    };
    match nal_type {
        nal_type::SPS | AUD => true,
        nal_type::SLICE => first_byte.is_some_and(|b| b & 0x80 != 0),
        _ => false,
    }
}

/// Access unit delimiter (H.264 table 7-1).
const AUD: u8 = 9;

/// A complete access unit out of the assembler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The RTP timestamp (90 kHz) shared by the frame's packets.
    pub timestamp: u32,
    /// Annex-B: each NAL unit after a 4-byte start code.
    pub data: Bytes,
    /// A complete keyframe (see the module docs): decoding can start here.
    pub keyframe: bool,
}

/// What one input to the assembler produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    Nothing,
    Frame(AccessUnit),
    /// The stream is broken until a keyframe: ask the sender for one.
    NeedKeyframe,
}

/// Counters since creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    pub frames: u64,
    pub keyframes: u64,
    /// Frames given up: incomplete, malformed, too big, or not a keyframe while one was needed.
    pub frames_dropped: u64,
    /// Payloads refused by [`parse_payload`] or out of place (an FU-A run broken off).
    pub malformed: u64,
}

/// Access units of at most this many bytes by default (a 4K keyframe is ~1-2 MB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 << 20;

/// RTP packets in, access units out; see the module docs.
#[derive(Debug)]
pub struct H264Assembler {
    max_frame_bytes: usize,
    ssrc: Option<u32>,
    last_seq: Option<u16>,
    frame: Option<Frame>,
    /// A gap was seen: the next frame started may lack its head.
    after_gap: bool,
    wait_keyframe: bool,
    /// SPS and PPS seen in a released frame of this stream.
    have_sps: bool,
    have_pps: bool,
    stats: AssemblerStats,
}

impl Default for H264Assembler {
    fn default() -> Self {
        Self::with_max_frame_bytes(DEFAULT_MAX_FRAME_BYTES)
    }
}

/// The frame being put together.
#[derive(Debug)]
struct Frame {
    timestamp: u32,
    /// Something of it is missing or malformed: it will be dropped (its bytes are not kept).
    broken: bool,
    data: BytesMut,
    /// An FU-A run in progress: where its NAL unit starts in `data`, and its header.
    fu: Option<(usize, u8)>,
    /// Whether a slice was seen, and whether the first one starts at macroblock 0.
    first_slice: Option<bool>,
    has_idr: bool,
    has_sps: bool,
    has_pps: bool,
}

impl Frame {
    fn new(timestamp: u32, broken: bool) -> Frame {
        Frame {
            timestamp,
            broken,
            data: BytesMut::new(),
            fu: None,
            first_slice: None,
            has_idr: false,
            has_sps: false,
            has_pps: false,
        }
    }

    fn r#break(&mut self) {
        self.broken = true;
        self.data = BytesMut::new();
        self.fu = None;
    }

    /// Append `parts` (start code, then bytes) if the frame stays within `max`.
    fn append(&mut self, parts: &[&[u8]], max: usize) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.data.len() + len > max {
            self.r#break();
            return false;
        }
        for p in parts {
            self.data.extend_from_slice(p);
        }
        true
    }

    /// Record what a complete NAL unit tells about the frame.
    fn note_nal(&mut self, nal: &[u8]) {
        let Some(&h) = nal.first() else { return };
        match h & 0x1f {
            nal_type::SPS => self.has_sps = true,
            nal_type::PPS => self.has_pps = true,
            t @ 1..=5 => {
                if t == nal_type::IDR {
                    self.has_idr = true;
                }
                // first_mb_in_slice is ue(v) first in the slice header: a leading 1 bit is 0.
                // Partitions B and C (3, 4) carry no slice header: they cannot come first.
                self.first_slice.get_or_insert(
                    matches!(t, nal_type::SLICE | nal_type::SLICE_PARTITION_A | nal_type::IDR)
                        && nal.get(1).is_some_and(|b| b & 0x80 != 0),
                );
            }
            _ => {}
        }
    }

    /// Add one payload; returns false if it was malformed or out of place.
    fn add(&mut self, payload: &[u8], max: usize) -> bool {
        if self.broken {
            return true;
        }
        const START: &[u8] = &[0, 0, 0, 1];
        let ok = match parse_payload(payload) {
            Err(_) => false,
            Ok(Payload::Ignored) => true,
            // A single NAL unit or an aggregate inside an FU-A run: the run was broken off.
            Ok(Payload::Single(_) | Payload::Aggregate(_)) if self.fu.is_some() => false,
            Ok(Payload::Single(nal)) => {
                if self.append(&[START, nal], max) {
                    self.note_nal(nal);
                }
                true
            }
            Ok(Payload::Aggregate(stap)) => {
                for nal in stap.units() {
                    if !self.append(&[START, nal], max) {
                        break;
                    }
                    self.note_nal(nal);
                }
                true
            }
            Ok(Payload::Fragment { nal_header, start, end, data }) => match (self.fu, start) {
                // A new run while one is open, or a middle/end without its start.
                (Some(_), true) | (None, false) => false,
                (Some((_, header)), false) if header != nal_header => false,
                (open, _) => {
                    let nal_start = match open {
                        Some((at, _)) => Some(at),
                        None if self.append(&[START, &[nal_header]], max) => Some(self.data.len() - 1),
                        None => None,
                    };
                    if let Some(at) = nal_start
                        && self.append(&[data], max)
                    {
                        self.fu = Some((at, nal_header));
                        if end {
                            self.fu = None;
                            // What note_nal reads: the header and the next byte.
                            let n = (self.data.len() - at).min(2);
                            let mut head = [0u8; 2];
                            head[..n].copy_from_slice(&self.data[at..at + n]);
                            self.note_nal(&head[..n]);
                        }
                    }
                    true
                }
            },
        };
        if !ok {
            self.r#break();
        }
        ok
    }
}

impl H264Assembler {
    /// An assembler that gives up frames larger than `max_frame_bytes` (Annex-B bytes).
    pub fn with_max_frame_bytes(max_frame_bytes: usize) -> H264Assembler {
        H264Assembler {
            max_frame_bytes,
            ssrc: None,
            last_seq: None,
            frame: None,
            after_gap: false,
            wait_keyframe: true,
            have_sps: false,
            have_pps: false,
            stats: AssemblerStats::default(),
        }
    }

    pub fn stats(&self) -> AssemblerStats {
        self.stats
    }

    /// True while frames are dropped until a complete keyframe arrives.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.wait_keyframe
    }

    /// Drop frames until the next complete keyframe (e.g. the decoder fell behind).
    pub fn wait_for_keyframe(&mut self) {
        self.wait_keyframe = true;
    }

    /// The sender restarted its stream (new SSRC, or a sequence jump the reordering took for
    /// one): forget everything about the old one and wait for a keyframe.
    pub fn restart(&mut self) {
        *self =
            H264Assembler { stats: self.stats, ..H264Assembler::with_max_frame_bytes(self.max_frame_bytes) };
    }

    /// Packets were lost (the reordering gave up on a gap): drop the frame in progress and wait
    /// for a keyframe.
    pub fn lost(&mut self) -> Assembled {
        if self.frame.take().is_some() {
            self.stats.frames_dropped += 1;
        }
        self.after_gap = true;
        self.wait_keyframe = true;
        Assembled::NeedKeyframe
    }

    /// Feed the next packet of the stream (in sequence order).
    pub fn push(&mut self, p: &RtpPacket) -> Assembled {
        if self.ssrc.is_some_and(|s| s != p.ssrc) {
            self.restart();
        }
        self.ssrc = Some(p.ssrc);
        let mut need_keyframe = false;
        if self.last_seq.is_some_and(|last| p.seq != last.wrapping_add(1)) {
            self.lost();
            need_keyframe = true;
        }
        self.last_seq = Some(p.seq);
        if self.frame.as_ref().is_some_and(|f| f.timestamp != p.timestamp) {
            // The previous frame never saw its marker bit: incomplete.
            self.frame = None;
            self.drop_frame();
            need_keyframe = true;
        }
        let after_gap = std::mem::take(&mut self.after_gap);
        let frame = self.frame.get_or_insert_with(|| Frame::new(p.timestamp, after_gap));
        if !frame.add(&p.payload, self.max_frame_bytes) {
            self.stats.malformed += 1;
        }
        if p.marker
            && let Some(frame) = self.frame.take()
        {
            return self.finish(frame);
        }
        if need_keyframe { Assembled::NeedKeyframe } else { Assembled::Nothing }
    }

    fn drop_frame(&mut self) -> Assembled {
        self.stats.frames_dropped += 1;
        self.wait_keyframe = true;
        Assembled::NeedKeyframe
    }

    fn finish(&mut self, f: Frame) -> Assembled {
        if f.broken || f.fu.is_some() {
            return self.drop_frame();
        }
        if f.data.is_empty() {
            // Only ignored payloads: nothing to decode.
            return if self.wait_keyframe { Assembled::NeedKeyframe } else { Assembled::Nothing };
        }
        let params = (f.has_sps || self.have_sps) && (f.has_pps || self.have_pps);
        let keyframe = f.has_idr && f.first_slice == Some(true) && params;
        if self.wait_keyframe && !keyframe {
            return self.drop_frame();
        }
        self.wait_keyframe = false;
        self.have_sps |= f.has_sps;
        self.have_pps |= f.has_pps;
        self.stats.frames += 1;
        self.stats.keyframes += u64::from(keyframe);
        Assembled::Frame(AccessUnit { timestamp: f.timestamp, data: f.data.freeze(), keyframe })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::annexb;
    use proptest::prelude::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn pkt(seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> RtpPacket {
        RtpPacket { ssrc: 9, seq, timestamp, marker, payload: Bytes::copy_from_slice(payload) }
    }

    fn stap(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0x78];
        for n in nals {
            out.extend_from_slice(&(n.len() as u16).to_be_bytes());
            out.extend_from_slice(n);
        }
        out
    }

    /// FU-A fragments of `nal`, `chunk` bytes of it each.
    fn fu_a(nal: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let body = &nal[1..];
        let n = body.len().div_ceil(chunk);
        (0..n)
            .map(|i| {
                let mut fu = nal[0] & 0x1f;
                if i == 0 {
                    fu |= 0x80;
                }
                if i + 1 == n {
                    fu |= 0x40;
                }
                let mut p = vec![(nal[0] & 0x60) | 28, fu];
                p.extend_from_slice(&body[i * chunk..((i + 1) * chunk).min(body.len())]);
                p
            })
            .collect()
    }

    fn idr(len: usize) -> Vec<u8> {
        let mut v = vec![0x65, 0x88];
        v.extend((0..len).map(|i| (i % 200) as u8 + 2));
        v
    }

    fn p_slice(len: usize) -> Vec<u8> {
        let mut v = vec![0x41, 0x9a];
        v.extend((0..len).map(|i| (i % 200) as u8 + 2));
        v
    }

    /// Payloads of a keyframe: STAP-A(SPS, PPS), then the IDR in FU-A fragments.
    fn keyframe_payloads() -> Vec<Vec<u8>> {
        let mut out = vec![stap(&[SPS, PPS])];
        out.extend(fu_a(&idr(3000), 1000));
        out
    }

    fn feed(asm: &mut H264Assembler, seq: &mut u16, ts: u32, payloads: &[Vec<u8>]) -> Vec<Assembled> {
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            out.push(asm.push(&pkt(*seq, ts, i + 1 == payloads.len(), p)));
            *seq = seq.wrapping_add(1);
        }
        out
    }

    fn frame(out: &[Assembled]) -> Option<&AccessUnit> {
        out.iter().find_map(|a| match a {
            Assembled::Frame(au) => Some(au),
            _ => None,
        })
    }

    fn annexb_of(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            annexb::push_nal(&mut v, n);
        }
        v
    }

    #[test]
    fn what_starts_an_access_unit() {
        let key = keyframe_payloads();
        assert!(starts_access_unit(&key[0]), "STAP-A(SPS, PPS)");
        assert!(!starts_access_unit(&key[1]), "the IDR's first fragment: the parameter sets come before it");
        assert!(!starts_access_unit(&key[2]), "a middle fragment");
        assert!(starts_access_unit(SPS));
        assert!(starts_access_unit(&[0x09, 0xf0]), "an access unit delimiter");
        assert!(!starts_access_unit(PPS));
        let p = p_slice(3000);
        assert!(starts_access_unit(&p), "a P slice with first_mb_in_slice 0");
        assert!(starts_access_unit(&fu_a(&p, 1000)[0]));
        assert!(!starts_access_unit(&fu_a(&p, 1000)[1]));
        assert!(!starts_access_unit(&[0x41, 0x40, 1]), "a later slice of a picture");
        assert!(!starts_access_unit(&[0x41]), "a slice header cut off");
        assert!(!starts_access_unit(&[]));
        assert!(!starts_access_unit(&[0x78, 0, 9]), "a truncated STAP-A");
    }

    /// rtc-rtp 0.21.1's depacketizer indexed past the end of this STAP-A (its last length
    /// field is cut short) and panicked: any room member could crash a receiver with it.
    #[test]
    fn regression_truncated_stap_a_length_field_is_refused() {
        let payload = [0x78, 0x00, 0x01, 0x41, 0x00];
        assert_eq!(parse_payload(&payload), Err(PayloadError::TruncatedAggregate));
        let mut asm = H264Assembler::default();
        assert_eq!(asm.push(&pkt(1, 0, true, &payload)), Assembled::NeedKeyframe);
        assert_eq!(asm.stats().malformed, 1);
    }

    #[test]
    fn payload_parsing_checks_every_length() {
        assert_eq!(parse_payload(&[]), Err(PayloadError::Empty));
        assert_eq!(parse_payload(&[0x80 | 0x41]), Err(PayloadError::ForbiddenBit));
        assert_eq!(parse_payload(&[0x41]), Ok(Payload::Single(&[0x41])));
        // STAP-A: a unit longer than what is left, a zero-length unit, no unit, a bad inner type.
        assert_eq!(parse_payload(&[0x78, 0, 5, 0x41, 1]), Err(PayloadError::TruncatedAggregate));
        assert_eq!(parse_payload(&[0x78, 0xff, 0xff]), Err(PayloadError::TruncatedAggregate));
        assert_eq!(parse_payload(&[0x78, 0, 0]), Err(PayloadError::EmptyAggregate));
        assert_eq!(parse_payload(&[0x78]), Err(PayloadError::EmptyAggregate));
        assert_eq!(parse_payload(&[0x78, 0, 1, 0x78]), Err(PayloadError::BadAggregatedType(24)));
        let s = stap(&[SPS, PPS]);
        let Ok(Payload::Aggregate(a)) = parse_payload(&s) else { panic!() };
        assert_eq!(a.units().collect::<Vec<_>>(), vec![SPS, PPS]);
        // FU-A.
        assert_eq!(parse_payload(&[0x7c]), Err(PayloadError::ShortFragment));
        assert_eq!(parse_payload(&[0x7c, 0xc5, 1]), Err(PayloadError::StartAndEnd));
        assert_eq!(parse_payload(&[0x7c, 0x98, 1]), Err(PayloadError::BadFragmentedType(24)));
        assert_eq!(parse_payload(&[0x7c, 0x80, 1]), Err(PayloadError::BadFragmentedType(0)));
        assert_eq!(
            parse_payload(&[0x7c, 0x85]),
            Ok(Payload::Fragment { nal_header: 0x65, start: true, end: false, data: &[] })
        );
        // Interleaved-mode types are refused, reserved ones ignored.
        for t in [25u8, 26, 27, 29] {
            assert_eq!(parse_payload(&[t, 0x85, 1, 2, 3]), Err(PayloadError::Unsupported(t)));
        }
        for t in [0u8, 30, 31] {
            assert_eq!(parse_payload(&[t, 1, 2]), Ok(Payload::Ignored));
        }
    }

    #[test]
    fn keyframe_then_p_frames_come_out_whole() {
        let mut asm = H264Assembler::default();
        let mut seq = 65530;
        let out = feed(&mut asm, &mut seq, 1000, &keyframe_payloads());
        let au = frame(&out).unwrap();
        assert!(au.keyframe);
        assert_eq!(au.data, annexb_of(&[SPS, PPS, &idr(3000)]));
        // Across the sequence wrap.
        for n in 1..4u32 {
            let out = feed(&mut asm, &mut seq, 1000 + n * 3000, &[p_slice(10)]);
            let au = frame(&out).unwrap();
            assert!(!au.keyframe);
            assert_eq!(au.data, annexb_of(&[&p_slice(10)]));
        }
        assert_eq!(asm.stats(), AssemblerStats { frames: 4, keyframes: 1, frames_dropped: 0, malformed: 0 });
    }

    #[test]
    fn a_loss_drops_frames_until_a_complete_keyframe() {
        let mut asm = H264Assembler::default();
        let mut seq = 100;
        assert!(frame(&feed(&mut asm, &mut seq, 0, &keyframe_payloads())).is_some());
        seq += 1; // lost
        let out = feed(&mut asm, &mut seq, 3000, &[p_slice(10)]);
        assert_eq!(out, [Assembled::NeedKeyframe]);
        assert_eq!(feed(&mut asm, &mut seq, 6000, &[p_slice(10)]), [Assembled::NeedKeyframe]);
        let out = feed(&mut asm, &mut seq, 9000, &keyframe_payloads());
        assert!(frame(&out).unwrap().keyframe);
        assert!(frame(&feed(&mut asm, &mut seq, 12000, &[p_slice(10)])).is_some());
    }

    /// Item: after a loss the "keyframe" that follows can be the tail of a fragmented IDR. It
    /// must not end the wait for a keyframe.
    #[test]
    fn the_tail_of_a_fragmented_idr_is_not_a_keyframe() {
        let mut asm = H264Assembler::default();
        let mut seq = 0;
        assert!(frame(&feed(&mut asm, &mut seq, 0, &keyframe_payloads())).is_some());
        // The next keyframe loses its STAP-A and first fragment.
        let kf = keyframe_payloads();
        seq += 2;
        let out = feed(&mut asm, &mut seq, 3000, &kf[2..]);
        assert!(frame(&out).is_none(), "{out:?}");
        assert_eq!(out.last(), Some(&Assembled::NeedKeyframe));
        assert!(asm.waiting_for_keyframe());
        // The same tail reported lost by the reordering rather than seen as a gap.
        let mut asm2 = H264Assembler::default();
        let mut seq2 = 0;
        feed(&mut asm2, &mut seq2, 0, &keyframe_payloads());
        assert_eq!(asm2.lost(), Assembled::NeedKeyframe);
        let mut s = seq2 + 2;
        let out = feed(&mut asm2, &mut s, 3000, &kf[2..]);
        assert!(frame(&out).is_none());
        // A complete one does end the wait.
        assert!(frame(&feed(&mut asm, &mut seq, 6000, &keyframe_payloads())).unwrap().keyframe);
    }

    #[test]
    fn a_fragment_run_must_start_and_end_inside_the_frame() {
        let frags = fu_a(&idr(3000), 1000);
        let head = [stap(&[SPS, PPS])];
        // No start fragment (no sequence gap: the sender left it out).
        for (name, payloads) in [
            ("no start", [&head[..], &frags[1..]].concat()),
            ("no end", [&head[..], &frags[..2]].concat()),
            ("two starts", [&head[..], &frags[..1], &frags[..]].concat()),
            ("single NAL inside a run", [&head[..], &frags[..1], &[p_slice(3)], &frags[1..]].concat()),
        ] {
            let mut asm = H264Assembler::default();
            let mut seq = 0;
            let out = feed(&mut asm, &mut seq, 0, &payloads);
            assert!(frame(&out).is_none(), "{name}: {out:?}");
            assert_eq!(out.last(), Some(&Assembled::NeedKeyframe), "{name}");
        }
        // A fragment of another NAL type in the middle of a run.
        let mut asm = H264Assembler::default();
        let mut seq = 0;
        let mut bad = frags.clone();
        bad[1][1] = (bad[1][1] & !0x1f) | 1;
        let out = feed(&mut asm, &mut seq, 0, &[&head[..], &bad[..]].concat());
        assert!(frame(&out).is_none());
    }

    #[test]
    fn a_keyframe_needs_its_parameter_sets_and_its_first_slice() {
        // IDR alone at the start: no SPS/PPS known.
        let mut asm = H264Assembler::default();
        let mut seq = 0;
        assert_eq!(feed(&mut asm, &mut seq, 0, &[idr(20)]), [Assembled::NeedKeyframe]);
        // An IDR whose first slice does not start at macroblock 0 (a later slice of a frame
        // whose head was lost).
        let mut later = idr(20);
        later[1] = 0x08;
        assert_eq!(
            feed(&mut asm, &mut seq, 3000, &[stap(&[SPS, PPS]), later]).last(),
            Some(&Assembled::NeedKeyframe)
        );
        assert!(frame(&feed(&mut asm, &mut seq, 6000, &[stap(&[SPS, PPS]), idr(20)])).is_some());
        // Once the stream's SPS/PPS are known, a bare IDR is a keyframe.
        asm.wait_for_keyframe();
        assert!(frame(&feed(&mut asm, &mut seq, 9000, &[idr(20)])).unwrap().keyframe);
        // A restarted stream forgets them.
        asm.restart();
        assert_eq!(feed(&mut asm, &mut seq, 12000, &[idr(20)]), [Assembled::NeedKeyframe]);
    }

    #[test]
    fn the_frame_right_after_a_gap_is_never_trusted() {
        let mut asm = H264Assembler::default();
        let mut seq = 0;
        feed(&mut asm, &mut seq, 0, &keyframe_payloads());
        // Lost: the end of a frame and maybe the head of the next; what arrives looks like a
        // whole keyframe, but its head cannot be known to be complete.
        seq += 3;
        let out = feed(&mut asm, &mut seq, 6000, &keyframe_payloads());
        assert!(frame(&out).is_none());
        assert!(frame(&feed(&mut asm, &mut seq, 9000, &keyframe_payloads())).unwrap().keyframe);
    }

    #[test]
    fn a_frame_without_its_marker_is_dropped_and_the_next_one_starts_clean() {
        let mut asm = H264Assembler::default();
        let mut seq = 0;
        feed(&mut asm, &mut seq, 0, &keyframe_payloads());
        // A P frame whose marker bit never comes (no gap: the sender did not set it).
        assert_eq!(asm.push(&pkt(seq, 3000, false, &p_slice(5))), Assembled::Nothing);
        seq += 1;
        // The next frame is a complete keyframe: it is released.
        let out = feed(&mut asm, &mut seq, 6000, &[stap(&[SPS, PPS]), idr(30)]);
        assert_eq!(out[0], Assembled::NeedKeyframe);
        assert!(frame(&out).unwrap().keyframe);
        assert_eq!(asm.stats().frames_dropped, 1);
    }

    #[test]
    fn a_new_ssrc_restarts_the_stream() {
        let mut asm = H264Assembler::default();
        let mut seq = 0;
        feed(&mut asm, &mut seq, 0, &keyframe_payloads());
        let mut other = pkt(5000, 123, true, &p_slice(3));
        other.ssrc = 10;
        assert_eq!(asm.push(&other), Assembled::NeedKeyframe);
        assert!(asm.waiting_for_keyframe());
    }

    #[test]
    fn frames_are_bounded() {
        let mut asm = H264Assembler::with_max_frame_bytes(2500);
        let mut seq = 0;
        let out = feed(&mut asm, &mut seq, 0, &keyframe_payloads());
        assert!(frame(&out).is_none());
        assert_eq!(out.last(), Some(&Assembled::NeedKeyframe));
        // A sender that never sets the marker keeps nothing beyond the bound either.
        for _ in 0..100 {
            asm.push(&pkt(seq, 3000, false, &p_slice(1000)));
            seq += 1;
            assert!(asm.frame.as_ref().is_none_or(|f| f.data.len() <= 2500));
        }
    }

    #[test]
    fn reserved_types_are_ignored_and_interleaved_types_refused() {
        let mut asm = H264Assembler::default();
        let mut seq = 0;
        let out = feed(&mut asm, &mut seq, 0, &[stap(&[SPS, PPS]), vec![30, 1, 2], idr(10)]);
        assert!(frame(&out).unwrap().keyframe);
        let out = feed(&mut asm, &mut seq, 3000, &[vec![29, 0x81, 1], p_slice(4)]);
        assert_eq!(out.last(), Some(&Assembled::NeedKeyframe));
    }

    /// Our sender packetizes with rtc's `H264Payloader` behind `new_packetizer` (MTU 1200):
    /// SPS and PPS go out as one STAP-A (0x78) ahead of the IDR, NAL units up to 1200 bytes go
    /// as they are, larger ones as FU-A, the marker on the frame's last packet. Round-trip real
    /// encoded frames through it.
    #[test]
    fn round_trips_real_frames_through_our_packetizer() {
        use crate::{H264Decoder, H264Encoder, VideoEncoderConfig};
        use hearth_media::{TestPattern, VideoFrame, VideoKind, VideoSource};
        let mut src = TestPattern::new(640, 360, 30.0).unpaced();
        let mut enc =
            H264Encoder::new(VideoEncoderConfig::for_source(640, 360, 30.0, VideoKind::Camera)).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut frame_buf = VideoFrame::new(640, 360);
        let mut pk = testing::packetizer(1200);
        let mut asm = H264Assembler::default();
        let (mut saw_fu, mut saw_stap) = (false, false);
        for n in 0..30u32 {
            if n == 20 {
                enc.request_keyframe();
            }
            src.capture(&mut frame_buf).unwrap();
            let au = enc.encode(&frame_buf).unwrap().unwrap();
            let packets = testing::packetize(&mut pk, &au.data, n * 3000);
            // The packetizer leaves 12 bytes of the MTU for the RTP header.
            assert!(packets.iter().all(|p| p.payload.len() <= 1188));
            assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
            assert!(packets.last().unwrap().marker);
            saw_fu |= packets.iter().any(|p| p.payload[0] & 0x1f == 28);
            saw_stap |= packets.iter().any(|p| p.payload[0] == 0x78);
            let mut out = None;
            for p in &packets {
                if let Assembled::Frame(f) = asm.push(p) {
                    out = Some(f);
                }
            }
            let got = out.unwrap_or_else(|| panic!("frame {n} not released"));
            assert_eq!(got.timestamp, n * 3000);
            assert_eq!(got.keyframe, au.keyframe, "frame {n}");
            // Same NAL units (the encoder may use 3-byte start codes; we always write 4).
            let want: Vec<&[u8]> = annexb::nal_units(&au.data).collect();
            let have: Vec<&[u8]> = annexb::nal_units(&got.data).collect();
            assert_eq!(have, want, "frame {n}");
            let stamp = dec.decode(&got.data, hearth_media::marker::read_stamp).unwrap().unwrap();
            assert_eq!(stamp.unwrap().frame, n);
        }
        assert!(saw_fu && saw_stap);
    }

    proptest! {
        /// Random access units through our packetizer at random MTUs, with random losses:
        /// every frame released is byte-identical to one that was sent, and the first one after
        /// a loss (or at the start) is a keyframe.
        #[test]
        fn round_trip_with_losses(
            frames in proptest::collection::vec(
                (any::<bool>(), proptest::collection::vec(proptest::collection::vec(2u8..=255, 1..3000), 1..4)),
                1..12,
            ),
            mtu in 40usize..1500,
            drops in proptest::collection::vec(any::<u16>(), 0..4),
            start_seq in any::<u16>(),
        ) {
            let mut pk = testing::packetizer_from(mtu, start_seq);
            let mut asm = H264Assembler::default();
            let mut sent = Vec::new();
            let mut all = Vec::new();
            for (i, (key, slices)) in frames.iter().enumerate() {
                let mut au = Vec::new();
                if *key {
                    annexb::push_nal(&mut au, SPS);
                    annexb::push_nal(&mut au, PPS);
                }
                for (j, s) in slices.iter().enumerate() {
                    // Header: IDR or P slice; the first slice starts at macroblock 0.
                    let mut nal = vec![if *key { 0x65 } else { 0x41 }, if j == 0 { 0x80 } else { 0x40 }];
                    nal.extend_from_slice(s);
                    annexb::push_nal(&mut au, &nal);
                }
                let ts = i as u32 * 3000;
                sent.push((ts, au.clone(), *key));
                all.extend(testing::packetize(&mut pk, &au, ts));
            }
            let dropped: Vec<usize> = drops.iter().map(|d| usize::from(*d) % all.len().max(1)).collect();
            let mut waiting = true;
            for (i, p) in all.iter().enumerate() {
                if dropped.contains(&i) {
                    waiting = true;
                    continue;
                }
                if let Assembled::Frame(au) = asm.push(p) {
                    let orig = sent.iter().find(|s| s.0 == au.timestamp).unwrap();
                    prop_assert_eq!(&au.data[..], &orig.1[..]);
                    if waiting {
                        prop_assert!(au.keyframe && orig.2);
                    }
                    waiting = false;
                }
            }
            if dropped.is_empty() {
                prop_assert_eq!(asm.stats().frames_dropped, frames.iter().take_while(|f| !f.0).count() as u64);
            }
        }

        /// Arbitrary packet sequences (payloads biased towards H.264 packet shapes) never panic,
        /// never exceed the frame bound, and only release well-formed Annex-B.
        #[test]
        fn arbitrary_packets_never_panic(
            packets in proptest::collection::vec(
                (any::<u8>(), 0u16..4, any::<bool>(), any::<bool>(), prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..40),
                    (prop_oneof![Just(24u8), Just(28), Just(0x7c), Just(0x78), Just(0x65), Just(0x67)], proptest::collection::vec(any::<u8>(), 0..40))
                        .prop_map(|(h, mut v)| { v.insert(0, h); v }),
                ]),
                0..200,
            ),
        ) {
            let mut asm = H264Assembler::with_max_frame_bytes(600);
            let (mut seq, mut ts, mut ssrc) = (0u16, 0u32, 1u32);
            for (kind, step, marker, new_frame, payload) in packets {
                seq = seq.wrapping_add(step);
                ts = ts.wrapping_add(if new_frame { 3000 } else { 0 });
                if kind == 0 {
                    ssrc += 1;
                }
                let was_waiting = asm.waiting_for_keyframe();
                let out = if kind == 1 { asm.lost() } else { asm.push(&RtpPacket { ssrc, seq, timestamp: ts, marker, payload: payload.into() }) };
                if let Assembled::Frame(au) = out {
                    prop_assert!(au.data.len() <= 600);
                    prop_assert!(au.data.starts_with(&[0, 0, 0, 1]));
                    prop_assert!(au.keyframe || !(was_waiting || kind == 0));
                    prop_assert!(!asm.waiting_for_keyframe());
                }
            }
        }
    }
}

/// Helpers for tests and fuzzing: our sender's packetizer (rtc's `H264Payloader`, as in the
/// engine's send path) producing [`RtpPacket`]s.
#[cfg(test)]
pub(crate) mod testing {
    use super::RtpPacket;
    use bytes::Bytes;
    use rtc::rtp::codec::h264::H264Payloader;
    use rtc::rtp::packetizer::{Packetizer, new_packetizer};
    use rtc::rtp::sequence::new_fixed_sequencer;

    pub fn packetizer(mtu: usize) -> Box<dyn Packetizer> {
        packetizer_from(mtu, 1000)
    }

    pub fn packetizer_from(mtu: usize, seq: u16) -> Box<dyn Packetizer> {
        Box::new(new_packetizer(
            std::time::Instant::now(),
            mtu,
            96,
            9,
            Box::new(H264Payloader::default()),
            Box::new(new_fixed_sequencer(seq)),
            90_000,
        ))
    }

    #[allow(clippy::unwrap_used)]
    pub fn packetize(pk: &mut Box<dyn Packetizer>, au: &[u8], ts: u32) -> Vec<RtpPacket> {
        pk.packetize(std::time::Instant::now(), &Bytes::copy_from_slice(au), 0)
            .unwrap()
            .into_iter()
            .map(|p| RtpPacket {
                ssrc: p.header.ssrc,
                seq: p.header.sequence_number,
                timestamp: ts,
                marker: p.header.marker,
                payload: p.payload,
            })
            .collect()
    }
}
