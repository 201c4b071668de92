//! Opus (libopus 1.6 bundled by the `opus` crate): 48 kHz mono, 20 ms frames, in-band FEC.

use crate::CodecError;
use hearth_media::{AudioFrame, FRAME_SAMPLES, SAMPLE_RATE};

/// Decoded Opus audio lags the encoder's input by the encoder's lookahead: 312 samples
/// (6.5 ms) at 48 kHz for the VOIP and AUDIO applications (2.5 ms for RESTRICTED_LOWDELAY,
/// which WebRTC senders do not use). The sound at a decoded packet's start was captured this
/// long before its RTP timestamp says; lip sync must count it.
pub const DECODE_DELAY_US: u64 = 6_500;

/// Opus encoder for speech.
pub struct OpusEncoder {
    enc: opus::Encoder,
    out: Vec<u8>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusEncoder")
    }
}

fn init(e: opus::Error) -> CodecError {
    CodecError::Init(format!("Opus: {e}"))
}

impl OpusEncoder {
    pub fn new(bitrate_bps: i32) -> Result<OpusEncoder, CodecError> {
        let mut enc =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip).map_err(init)?;
        enc.set_bitrate(opus::Bitrate::Bits(bitrate_bps)).map_err(init)?;
        // In-band FEC lets a receiver rebuild one lost packet from the next one.
        enc.set_inband_fec(true).map_err(init)?;
        enc.set_packet_loss_perc(Self::DEFAULT_LOSS_PERC).map_err(init)?;
        // Discontinuous transmission: in silence the encoder emits 1-2 byte packets (see
        // [`DtxGate`] for which of them are sent).
        enc.set_dtx(true).map_err(init)?;
        Ok(OpusEncoder { enc, out: vec![0; 1500] })
    }

    /// The loss the encoder plans FEC for before any receiver has reported.
    pub const DEFAULT_LOSS_PERC: i32 = 2;

    /// Tell the encoder how much loss to expect (percent, from receiver reports): in-band FEC
    /// gets that much of the bitrate.
    pub fn set_loss_perc(&mut self, perc: i32) -> Result<(), CodecError> {
        self.enc.set_packet_loss_perc(perc.clamp(0, 100)).map_err(init)
    }

    /// Encode one 20 ms frame; the packet borrows the encoder's buffer.
    pub fn encode(&mut self, frame: &AudioFrame) -> Result<&[u8], CodecError> {
        if frame.samples.len() != FRAME_SAMPLES {
            return Err(CodecError::BadInput(format!(
                "audio frames must have {FRAME_SAMPLES} samples, got {}",
                frame.samples.len()
            )));
        }
        let n =
            self.enc.encode(&frame.samples, &mut self.out).map_err(|e| CodecError::Encode(e.to_string()))?;
        Ok(&self.out[..n])
    }
}

/// Which packets of a DTX encoder are sent. In silence libopus emits packets of at most 2
/// bytes (no audio, only "still silent") and, every 400 ms, one real frame that refreshes the
/// receiver's comfort noise (and keeps NAT bindings and the bandwidth estimate alive). Of the
/// tiny ones only the first after a real frame is sent (what WebRTC senders do): it tells the
/// receiver that the silence that follows is DTX, to be filled with comfort noise, not a loss;
/// the rest are not sent. The first packet sent after skipped ones carries the RTP marker
/// (RFC 3551: the start of a talkspurt after a silence).
#[derive(Debug, Default, Clone)]
pub struct DtxGate {
    skipped: bool,
    in_dtx: bool,
}

impl DtxGate {
    /// The encoder produced a packet of `len` bytes: `None` to skip it, else whether it gets
    /// the RTP marker.
    pub fn admit(&mut self, len: usize) -> Option<bool> {
        if Self::enters_dtx(len) {
            if std::mem::replace(&mut self.in_dtx, true) {
                self.skipped = true;
                return None;
            }
        } else {
            self.in_dtx = false;
        }
        Some(std::mem::take(&mut self.skipped))
    }

    /// Whether a packet of `len` bytes is the sender entering DTX (see [`DtxGate`]).
    pub fn enters_dtx(len: usize) -> bool {
        len <= 2
    }
}

/// Opus decoder with loss concealment.
pub struct OpusDecoder {
    dec: opus::Decoder,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusDecoder")
    }
}

impl OpusDecoder {
    pub fn new() -> Result<OpusDecoder, CodecError> {
        Ok(OpusDecoder { dec: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).map_err(init)? })
    }

    /// Decode a packet into `out` (resized to one frame).
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        out.resize(FRAME_SAMPLES, 0);
        let n = self.dec.decode(packet, out, false).map_err(|e| CodecError::Decode(e.to_string()))?;
        out.truncate(n);
        Ok(())
    }

    /// A frame for a lost packet: rebuilt from the FEC data in `next` when given, else
    /// concealed (PLC).
    pub fn conceal(&mut self, next: Option<&[u8]>, out: &mut Vec<i16>) -> Result<(), CodecError> {
        out.resize(FRAME_SAMPLES, 0);
        let n = match next {
            Some(p) => self.dec.decode(p, out, true),
            None => self.dec.decode(&[], out, false),
        }
        .map_err(|e| CodecError::Decode(e.to_string()))?;
        out.truncate(n);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hearth_media::marker::{BurstDetector, render_bursts};

    #[test]
    fn the_decode_delay_is_the_encoder_lookahead() {
        let mut enc = OpusEncoder::new(32_000).unwrap();
        let lookahead = enc.enc.get_lookahead().unwrap();
        assert_eq!(u64::try_from(lookahead).unwrap() * 1_000_000 / u64::from(SAMPLE_RATE), DECODE_DELAY_US);
    }

    #[test]
    fn silence_is_sent_as_a_trickle_and_speech_restarts_with_a_marker() {
        let mut enc = OpusEncoder::new(32_000).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut gate = DtxGate::default();
        let mut out = Vec::new();
        let (mut sent, mut markers) = (0, Vec::new());
        let mut tone = AudioFrame::default();
        render_bursts(0, &mut tone.samples);
        for k in 0..150u32 {
            // 1 s of sound, 2 s of silence.
            let f = if k < 50 {
                let mut f = AudioFrame::default();
                for (i, s) in f.samples.iter_mut().enumerate() {
                    let t = (k as usize * FRAME_SAMPLES + i) as f32 / SAMPLE_RATE as f32;
                    *s = ((t * 440.0 * std::f32::consts::TAU).sin() * 8000.0) as i16;
                }
                f
            } else if k < 149 {
                AudioFrame::default()
            } else {
                tone.clone()
            };
            let packet = enc.encode(&f).unwrap().to_vec();
            if let Some(marker) = gate.admit(packet.len()) {
                sent += 1;
                if marker {
                    markers.push(k);
                }
                dec.decode(&packet, &mut out).unwrap();
                assert_eq!(out.len(), FRAME_SAMPLES);
            }
        }
        // 50 frames of sound, the encoder's hangover into the silence, then one refresh per
        // 400 ms, each after skipped packets, as is the sound after the silence; after each
        // real frame in the silence the first tiny packet (the sender entering DTX).
        assert!(sent < 50 + 20 + 12, "sent {sent} of 150");
        assert!(sent >= 50 + 4, "sent {sent} of 150");
        assert!(markers.len() >= 4 && markers.windows(2).all(|w| w[1] - w[0] <= 21), "{markers:?}");
        assert_eq!(markers.last(), Some(&149));
        enc.set_loss_perc(20).unwrap();
        assert_eq!(enc.enc.get_packet_loss_perc().unwrap(), 20);
    }

    #[test]
    fn a_receiver_fills_dtx_silence_with_comfort_noise_at_the_level_of_the_noise() {
        // Speech, then quiet stationary noise (what is left of a fan after noise suppression):
        // the encoder goes into DTX. The receiver decodes what is sent and, after the packet
        // that says the sender entered DTX, conceals every 20 ms nothing arrives in: libopus
        // plays comfort noise shaped like the noise it last received.
        let mut enc = OpusEncoder::new(32_000).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut gate = DtxGate::default();
        let speech = hearth_media::SpeechLike::samples(3, 180.0, 0.5, 50 * FRAME_SAMPLES);
        let mut noise = hearth_media::RoomNoise::new(0.01);
        let rms = |s: &[i16]| (s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / s.len() as f64).sqrt();
        let (mut out, mut in_dtx, mut entries) = (Vec::new(), false, 0);
        let (mut gap_in, mut gap_out) = (Vec::new(), Vec::new());
        for k in 0..250 {
            let mut f = AudioFrame::default();
            for (i, s) in f.samples.iter_mut().enumerate() {
                *s = if k < 50 { speech[k * FRAME_SAMPLES + i] } else { noise.next().unwrap() as i16 };
            }
            let packet = enc.encode(&f).unwrap().to_vec();
            if gate.admit(packet.len()).is_some() {
                in_dtx = DtxGate::enters_dtx(packet.len());
                entries += usize::from(in_dtx);
                dec.decode(&packet, &mut out).unwrap();
            } else {
                assert!(in_dtx, "a packet was skipped without the receiver being told of DTX");
                dec.conceal(None, &mut out).unwrap();
                gap_in.push(rms(&f.samples));
                gap_out.push(rms(&out));
            }
        }
        assert!(
            entries >= 4 && gap_in.len() >= 100,
            "{entries} DTX entries, {} frames skipped",
            gap_in.len()
        );
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let ratio = mean(&gap_out) / mean(&gap_in);
        println!("noise RMS {:.0}, comfort noise RMS {:.0}", mean(&gap_in), mean(&gap_out));
        assert!((0.4..2.0).contains(&ratio), "comfort noise at {ratio:.2} of the noise's RMS");
        assert!(gap_out.iter().all(|&r| r > 0.0), "a silent frame in the comfort noise");
    }

    #[test]
    fn bursts_survive_opus_and_loss_is_concealed() {
        let mut enc = OpusEncoder::new(32_000).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut det = BurstDetector::new();
        let mut out = Vec::new();
        let mut found = Vec::new();
        let start = 5_000 * 200_000;
        for k in 0..60u64 {
            let mut f = AudioFrame::default();
            render_bursts(start + k * 20_000, &mut f.samples);
            let packet = enc.encode(&f).unwrap().to_vec();
            if k == 31 {
                dec.conceal(None, &mut out).unwrap();
            } else {
                dec.decode(&packet, &mut out).unwrap();
            }
            assert_eq!(out.len(), FRAME_SAMPLES);
            found.extend(det.push(&out, start + (k + 1) * 20_000));
        }
        let slots: Vec<u64> = found.iter().map(|b| b.slot - 5_000).collect();
        // The burst at the very first sample is not an onset (no quiet before it); the other
        // five are found. Frame 31 (silence) was lost and concealed without a false burst.
        assert_eq!(slots, [1, 2, 3, 4, 5]);
        assert!(dec.decode(&[0xff, 0xff, 0xff], &mut out).is_err() || out.len() <= FRAME_SAMPLES);
        assert!(enc.encode(&AudioFrame { samples: vec![0; 10], capture_us: 0 }).is_err());
    }
}
