//! A speaker with no device: a thread that pulls the [`Mixer`] in real time, as a sound card
//! would, and throws the samples away.
//!
//! Headless runs (the demo, benchmarks, CI smoke calls) use it so received audio still goes
//! through the playout buffer: the latency a listener would hear, lip sync and underruns behave
//! as with a real speaker. It pulls [`FRAME_SAMPLES`] at a time, like the real speaker's fixed
//! 20 ms device buffer, and the samples pulled at a tick are taken as heard at that tick (no
//! device delay).

use crate::frame::{FRAME_SAMPLES, FRAME_US};
use crate::mixer::Mixer;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Pulls a mixer at real-time pace until dropped.
#[derive(Debug)]
pub struct VirtualSpeaker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VirtualSpeaker {
    /// Start pulling `mixer` (on a thread of its own).
    pub fn start(mixer: Arc<Mixer>) -> std::io::Result<VirtualSpeaker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("hearth-virtual-speaker".into()).spawn(move || {
            crate::priority::raise_current_thread(crate::MediaThread::Audio);
            let period = Duration::from_micros(FRAME_US);
            let mut out = vec![0.0f32; FRAME_SAMPLES];
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else if now - next > 5 * period {
                    // Descheduled for a while: a device would have under-run; resume from now
                    // rather than pulling a burst.
                    next = now;
                }
                mixer.pull_timed(&mut out, next);
                next += period;
            }
        })?;
        Ok(VirtualSpeaker { stop, thread: Some(thread) })
    }
}

impl Drop for VirtualSpeaker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pulls_in_real_time() {
        let mixer = Arc::new(Mixer::new(FRAME_SAMPLES, FRAME_SAMPLES * 2, 48_000));
        let pulled = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let sink = pulled.clone();
        mixer.set_tap(1, Box::new(move |s: &[i16], at: Instant| sink.lock().push((s.len(), at))));
        // One second of audio queued; a device consumes it at 48 kHz.
        mixer.push(1, &vec![1000i16; 48_000]);
        let t = Instant::now();
        let speaker = VirtualSpeaker::start(mixer.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        drop(speaker);
        let pulled = pulled.lock();
        let samples: usize = pulled.iter().map(|(n, _)| n).sum();
        let elapsed = t.elapsed().as_secs_f64();
        // ~300 ms worth (one frame at the start), never ahead of real time by more than a frame.
        assert!(samples >= 12 * FRAME_SAMPLES, "{samples} samples in {elapsed:.3} s");
        assert!(samples as f64 <= (elapsed * 48_000.0) + FRAME_SAMPLES as f64, "{samples} in {elapsed:.3} s");
        // Heard times are 20 ms apart (more only if this thread was descheduled).
        for w in pulled.windows(2) {
            assert!(w[1].1 - w[0].1 >= Duration::from_millis(20), "{:?}", w[1].1 - w[0].1);
        }
    }
}
