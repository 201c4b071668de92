//! Mixes the decoded audio of several peers into one stream for the speaker.
//!
//! Each peer's decoded PCM is queued as it arrives; the speaker's callback pulls mixed samples at
//! the device's own clock. The queue is the playout buffer: a peer starts playing once one frame
//! is queued, restarts that way after an underrun, and if its queue grows past `max_delay` (a
//! burst after a stall, or clock drift) the oldest audio is dropped back to `target_delay`, so
//! latency never creeps up.

use crate::frame::{FRAME_SAMPLES, SAMPLE_RATE};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Default)]
struct Queue {
    samples: VecDeque<i16>,
    playing: bool,
    underruns: u64,
    dropped: u64,
}

/// Counters for one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MixerStats {
    pub queued_samples: usize,
    pub underruns: u64,
    pub dropped_samples: u64,
}

/// A thread-safe mixer; share it with `Arc`.
#[derive(Debug)]
pub struct Mixer {
    sources: Mutex<HashMap<u64, Queue>>,
    prebuffer: usize,
    target: usize,
    max: usize,
}

impl Default for Mixer {
    fn default() -> Self {
        Mixer::new(FRAME_SAMPLES, ms(40), ms(120))
    }
}

const fn ms(n: usize) -> usize {
    n * SAMPLE_RATE as usize / 1000
}

impl Mixer {
    /// `prebuffer`, `target_delay` and `max_delay` are in samples.
    pub fn new(prebuffer: usize, target_delay: usize, max_delay: usize) -> Mixer {
        Mixer {
            sources: Mutex::new(HashMap::new()),
            prebuffer,
            target: target_delay.max(prebuffer),
            max: max_delay.max(target_delay),
        }
    }

    /// Queue decoded samples from `source`.
    pub fn push(&self, source: u64, samples: &[i16]) {
        let mut sources = self.sources.lock();
        let q = sources.entry(source).or_default();
        q.samples.extend(samples);
        if q.samples.len() > self.max {
            let excess = q.samples.len() - self.target;
            q.samples.drain(..excess);
            q.dropped += excess as u64;
        }
    }

    /// Forget a source (its peer left).
    pub fn remove(&self, source: u64) {
        self.sources.lock().remove(&source);
    }

    /// Mix the next `out.len()` samples of every playing source (f32, -1.0..=1.0).
    pub fn pull(&self, out: &mut [f32]) {
        out.fill(0.0);
        let mut sources = self.sources.lock();
        for q in sources.values_mut() {
            if !q.playing {
                if q.samples.len() < self.prebuffer {
                    continue;
                }
                q.playing = true;
            }
            let n = out.len().min(q.samples.len());
            for (o, s) in out.iter_mut().zip(q.samples.drain(..n)) {
                *o += f32::from(s) / 32768.0;
            }
            if n < out.len() {
                q.playing = false;
                q.underruns += 1;
            }
        }
        for o in out.iter_mut() {
            *o = o.clamp(-1.0, 1.0);
        }
    }

    pub fn stats(&self, source: u64) -> Option<MixerStats> {
        self.sources.lock().get(&source).map(|q| MixerStats {
            queued_samples: q.samples.len(),
            underruns: q.underruns,
            dropped_samples: q.dropped,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mixes_sources_and_clips() {
        let m = Mixer::new(2, 2, 100);
        m.push(1, &[16384, 16384, 16384]);
        m.push(2, &[16384, -16384, 32767]);
        let mut out = [0.0f32; 3];
        m.pull(&mut out);
        assert_eq!(out, [1.0, 0.0, 1.0]);
    }

    #[test]
    fn prebuffers_then_plays_and_counts_underruns() {
        let m = Mixer::new(4, 4, 100);
        m.push(1, &[1000; 3]);
        let mut out = [0.0f32; 2];
        m.pull(&mut out);
        assert_eq!(out, [0.0, 0.0], "not started before a prebuffer's worth");
        m.push(1, &[1000; 1]);
        let mut out = [0.0f32; 6];
        m.pull(&mut out);
        assert!(out[..4].iter().all(|&s| s > 0.0) && out[4..].iter().all(|&s| s == 0.0));
        assert_eq!(m.stats(1).unwrap().underruns, 1);
    }

    #[test]
    fn latency_is_bounded() {
        let m = Mixer::new(10, 20, 50);
        m.push(7, &[1; 60]);
        let s = m.stats(7).unwrap();
        assert_eq!(s.queued_samples, 20);
        assert_eq!(s.dropped_samples, 40);
        m.remove(7);
        assert!(m.stats(7).is_none());
    }
}
