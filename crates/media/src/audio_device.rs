//! Microphones and speakers through cpal (PulseAudio or ALSA on Linux, CoreAudio, WASAPI).
//!
//! Device ids are cpal's stable ids (`pulseaudio:vsink.monitor`, `alsa:default`, ...). Devices
//! that cannot do 48 kHz mono are opened at their own rate and channel count and converted.

use crate::MediaError;
use crate::device::{DeviceInfo, DeviceKind};
use crate::frame::{AudioFrame, FRAME_SAMPLES, FRAME_US, SAMPLE_RATE, now_us};
use crate::mixer::Mixer;
use crate::source::AudioSource;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use std::sync::Arc;
use std::time::Duration;

fn device_error(kind: DeviceKind, id: Option<&str>, message: impl Into<String>) -> MediaError {
    MediaError::Device { kind, id: id.map(str::to_owned), message: message.into() }
}

/// Sound-server connections not in use, kept to be used again.
///
/// A cpal host of the PulseAudio backend is a client of the sound server with a reader thread
/// of its own (`pulseaudio` 0.3's reactor). Dropping the host does not end that thread: its
/// loop waits on the socket and ends only when something arrives there, so the thread, its
/// socket, epoll instance and 1 MB buffer stay for as long as the server sends nothing. Opening
/// a host per lookup left one such client per device list, microphone and speaker (five
/// join/leave cycles: 5 more clients, 5 threads, 15 open files). A host is leased to one user
/// at a time (a device list, one microphone, one speaker) and given back when that user is
/// done, so concurrent streams still have clients of their own (a microphone on a sink's monitor
/// captured nothing while a speaker shared its client), and the number of clients is bounded by
/// how many are in use at once.
struct IdlePool<K, H> {
    /// `(requested, host)`: `requested` is None for a host made as the system default.
    idle: parking_lot::Mutex<Vec<(Option<K>, H)>>,
    max_idle: usize,
}

impl<K: Copy + PartialEq, H> IdlePool<K, H> {
    const fn new(max_idle: usize) -> Self {
        IdlePool { idle: parking_lot::const_mutex(Vec::new()), max_idle }
    }

    /// An idle host made for the same request (`None`: the default), or one of host `id`.
    fn take(&self, request: Option<K>, id_of: impl Fn(&H) -> K) -> Option<H> {
        let mut idle = self.idle.lock();
        let pos = idle.iter().position(|(made_for, h)| match request {
            None => made_for.is_none(),
            Some(id) => id_of(h) == id,
        })?;
        Some(idle.swap_remove(pos).1)
    }

    /// Keep `host` for later, unless enough are idle already (then it is dropped).
    fn give_back(&self, request: Option<K>, host: H) {
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push((request, host));
        }
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }
}

static HOSTS: IdlePool<cpal::HostId, cpal::Host> = IdlePool::new(4);

/// A host leased from [`HOSTS`], given back on drop.
struct HostLease {
    request: Option<cpal::HostId>,
    host: Option<cpal::Host>,
    reused: bool,
}

impl HostLease {
    /// Host `request` (None: the system default), idle or new.
    fn take(request: Option<cpal::HostId>, fresh: bool) -> Result<HostLease, cpal::Error> {
        if !fresh && let Some(host) = HOSTS.take(request, |h| h.id()) {
            return Ok(HostLease { request, host: Some(host), reused: true });
        }
        let host = match request {
            None => cpal::default_host(),
            Some(id) => cpal::host_from_id(id)?,
        };
        Ok(HostLease { request, host: Some(host), reused: false })
    }

    fn host(&self) -> &cpal::Host {
        // Only `discard` and `drop` take it.
        self.host.as_ref().unwrap_or_else(|| unreachable!("a lease holds its host until dropped"))
    }

    /// Do not give this host back (its connection failed).
    fn discard(mut self) {
        self.host = None;
    }
}

impl Drop for HostLease {
    fn drop(&mut self) {
        if let Some(host) = self.host.take()
            && leaks_when_dropped(&host)
        {
            HOSTS.give_back(self.request, host);
        }
    }
}

/// Only PulseAudio hosts are kept: the others cost nothing to make again, and a default host
/// that is not PulseAudio (the server was down when it was made) must not stay the default.
fn leaks_when_dropped(host: &cpal::Host) -> bool {
    #[cfg(target_os = "linux")]
    {
        host.id() == cpal::HostId::PulseAudio
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = host;
        false
    }
}

/// Run `f` with a leased host; if a reused host fails (its sound server restarted since, say),
/// once more with a new one.
fn with_host<T>(
    request: Option<cpal::HostId>,
    kind: DeviceKind,
    id: Option<&str>,
    f: impl Fn(&cpal::Host) -> Result<T, MediaError>,
) -> Result<(HostLease, T), MediaError> {
    let take = |fresh| {
        HostLease::take(request, fresh)
            .map_err(|e| device_error(kind, id, format!("its audio system is not available: {e}")))
    };
    let lease = take(false)?;
    match f(lease.host()) {
        Ok(v) => Ok((lease, v)),
        // A host that still answers failed for a reason of the device's own (not connected,
        // none found): keep it, since dropping a live client leaks its thread.
        Err(_) if lease.reused && lease.host().devices().is_err() => {
            lease.discard();
            let lease = take(true)?;
            let v = f(lease.host())?;
            Ok((lease, v))
        }
        Err(e) => Err(e),
    }
}

fn id_of(d: &cpal::Device) -> String {
    d.id().map(|i| i.to_string()).unwrap_or_else(|_| "unknown".into())
}

fn name_of(d: &cpal::Device) -> String {
    d.description().map(|desc| desc.name().to_string()).unwrap_or_else(|_| id_of(d))
}

/// Microphones (`input == true`) or speakers.
pub fn list(input: bool) -> Result<Vec<DeviceInfo>, MediaError> {
    let kind = if input { DeviceKind::Microphone } else { DeviceKind::Speaker };
    let (_lease, devices) = with_host(None, kind, None, |host| {
        let default_id =
            if input { host.default_input_device() } else { host.default_output_device() }.map(|d| id_of(&d));
        let devices = if input {
            host.input_devices().map(|d| d.collect::<Vec<_>>())
        } else {
            host.output_devices().map(|d| d.collect())
        }
        .map_err(|e| device_error(kind, None, format!("cannot list {kind}s: {e}")))?;
        Ok(devices
            .iter()
            // Devices that cannot report a usable configuration cannot be opened either.
            .filter(
                |d| if input { d.default_input_config().is_ok() } else { d.default_output_config().is_ok() },
            )
            .map(|d| {
                let id = id_of(d);
                DeviceInfo { is_default: Some(&id) == default_id.as_ref(), name: name_of(d), id, kind }
            })
            .collect())
    })?;
    Ok(devices)
}

/// Device `id` (None: the default) and the host it belongs to, which must outlive its streams.
fn find(kind: DeviceKind, id: Option<&str>) -> Result<(HostLease, cpal::Device), MediaError> {
    let input = kind == DeviceKind::Microphone;
    match id {
        None => with_host(None, kind, None, |host| {
            if input { host.default_input_device() } else { host.default_output_device() }.ok_or_else(|| {
                device_error(
                    kind,
                    None,
                    format!("no {kind} found; connect one or choose another in settings"),
                )
            })
        }),
        Some(id) => {
            let parsed: cpal::DeviceId =
                id.parse().map_err(|e| device_error(kind, Some(id), format!("not a device id: {e}")))?;
            // The id names its host (pulseaudio, alsa, ...): ask that host, not the default one,
            // which may be another backend.
            with_host(Some(parsed.host()), kind, Some(id), |host| {
                host.device_by_id(&parsed).ok_or_else(|| {
                    device_error(kind, Some(id), format!("{kind} {id} is not connected; pick another"))
                })
            })
        }
    }
}

/// Open a stream config: 48 kHz mono if the device takes it, else its default.
/// Frames per speaker callback. cpal's PulseAudio backend keeps two periods in the server's
/// buffer; with two 20 ms periods (40 ms) the null sink here consumed only 61-66% of real time
/// (the stream under-ran between callbacks: the rest was silence, and the echo canceller's
/// reference lost its alignment with what the microphone heard), with two 40 ms periods 96%.
const SPEAKER_PERIOD: usize = 2 * FRAME_SAMPLES;

fn stream_config(kind: DeviceKind, dev: &cpal::Device) -> Result<cpal::StreamConfig, MediaError> {
    let input = kind == DeviceKind::Microphone;
    let supports_48k_mono = if input {
        dev.supported_input_configs().map(|mut c| c.any(|r| fits(&r))).unwrap_or(false)
    } else {
        dev.supported_output_configs().map(|mut c| c.any(|r| fits(&r))).unwrap_or(false)
    };
    if supports_48k_mono {
        return Ok(cpal::StreamConfig {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            buffer_size: cpal::BufferSize::Fixed(if input { FRAME_SAMPLES } else { SPEAKER_PERIOD } as u32),
        });
    }
    let default =
        if input { dev.default_input_config() } else { dev.default_output_config() }.map_err(|e| {
            device_error(kind, Some(&id_of(dev)), format!("the {kind} reports no usable format: {e}"))
        })?;
    Ok(cpal::StreamConfig {
        channels: default.channels(),
        sample_rate: default.sample_rate(),
        buffer_size: cpal::BufferSize::Default,
    })
}

fn fits(r: &cpal::SupportedStreamConfigRange) -> bool {
    r.channels() == 1
        && r.sample_format() == cpal::SampleFormat::F32
        && r.min_sample_rate() <= SAMPLE_RATE
        && r.max_sample_rate() >= SAMPLE_RATE
}

/// When a speaker callback's samples are heard. The device's estimate (callback time plus
/// its latency readout) jitters by a few ms, and PulseAudio's readout drops to 0 now and then
/// while its buffer is still full: taken as is, the audio a lip-synced frame waits for seemed
/// heard 24-40 ms early for one callback and late again at the next. A device plays in real
/// time, so a callback's samples cannot be heard before the previous callback's have been:
/// the estimate is held at that point when it reads earlier (moving back toward the readout by
/// at most [`HeardClock::DRIFT`] per callback, for the device's clock drifting from ours),
/// and followed when it reads later (an under-run: silence was played in between).
#[derive(Debug, Default)]
struct HeardClock {
    /// When the sample after the last callback's is heard, at the earliest.
    next: Option<std::time::Instant>,
}

impl HeardClock {
    const DRIFT: Duration = Duration::from_micros(500);

    /// The device estimates `measured` for a callback of `len` of sound; returns when its
    /// first sample is heard.
    fn heard_at(&mut self, measured: std::time::Instant, len: Duration) -> std::time::Instant {
        let at = match self.next {
            Some(next) => measured.max(next.checked_sub(Self::DRIFT).unwrap_or(next)),
            None => measured,
        };
        self.next = Some(at + len);
        at
    }
}

/// Linear resampler from any rate to 48 kHz (good enough for speech from odd devices; most
/// devices run at 48 kHz and skip it).
#[derive(Debug)]
struct Resampler {
    step: f64,
    pos: f64,
    last: f32,
}

impl Resampler {
    fn new(from_rate: u32) -> Resampler {
        Resampler { step: f64::from(from_rate) / f64::from(SAMPLE_RATE), pos: 0.0, last: 0.0 }
    }

    fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if (self.step - 1.0).abs() < f64::EPSILON {
            out.extend_from_slice(input);
            return;
        }
        // pos is measured from the sample before input[0] (self.last).
        while self.pos < input.len() as f64 {
            let i = self.pos.floor() as usize;
            let frac = (self.pos - i as f64) as f32;
            let a = if i == 0 { self.last } else { input[i - 1] };
            let b = input[i];
            out.push(a + (b - a) * frac);
            self.pos += self.step;
        }
        self.pos -= input.len() as f64;
        if let Some(&l) = input.last() {
            self.last = l;
        }
    }
}

enum MicEvent {
    Samples(Vec<f32>),
    Error(String),
}

/// A microphone delivering 20 ms frames. Open it on the thread that captures from it.
pub struct Microphone {
    /// The stream and the host it was opened on, given back once the stream is closed.
    stream: Option<(cpal::Stream, HostLease)>,
    rx: Receiver<MicEvent>,
    pending: Vec<f32>,
    name: String,
    /// Capture time of the next sample handed out: counted in samples from the device's clock,
    /// so frames are evenly spaced even when callbacks arrive in bursts.
    next_sample_us: Option<u64>,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Microphone").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Microphone {
    /// Open microphone `id` (None: the system default).
    pub fn open(id: Option<&str>) -> Result<Microphone, MediaError> {
        let kind = DeviceKind::Microphone;
        let (lease, dev) = find(kind, id)?;
        let name = name_of(&dev);
        let config = stream_config(kind, &dev)?;
        let channels = usize::from(config.channels.max(1));
        let mut resampler = Resampler::new(config.sample_rate);
        let (tx, rx): (Sender<MicEvent>, _) = bounded(256);
        let err_tx = tx.clone();
        let mut mono = Vec::new();
        let stream = dev
            .build_input_stream::<f32, _, _>(
                config,
                move |data: &[f32], _: &cpal::InputCallbackInfo| {
                    mono.clear();
                    mono.extend(data.chunks(channels).map(|c| c.iter().sum::<f32>() / channels as f32));
                    let mut out = Vec::with_capacity(mono.len() + 8);
                    resampler.process(&mono, &mut out);
                    // A full queue means nobody is reading; dropping is all we can do here.
                    let _ = tx.try_send(MicEvent::Samples(out));
                },
                move |e: cpal::Error| {
                    let _ = err_tx.try_send(MicEvent::Error(e.to_string()));
                },
                None,
            )
            .map_err(|e| {
                device_error(
                    kind,
                    id,
                    format!("cannot open the microphone: {e}. It may be in use, or access was denied"),
                )
            })?;
        stream.play().map_err(|e| device_error(kind, id, format!("the microphone would not start: {e}")))?;
        Ok(Microphone {
            next_sample_us: None,
            stream: Some((stream, lease)),
            rx,
            pending: Vec::with_capacity(4 * FRAME_SAMPLES),
            name,
        })
    }
}

impl Drop for Microphone {
    fn drop(&mut self) {
        // cpal 0.18's PulseAudio backend can block for most of a minute closing a record
        // stream (its latency thread waits on a timing query). Close it on a thread of its own
        // so stopping the microphone never stalls the call.
        if let Some((stream, lease)) = self.stream.take() {
            let closer = std::thread::Builder::new().name("hearth-mic-close".into()).spawn(move || {
                drop(stream);
                drop(lease);
            });
            if let Err(e) = closer {
                tracing::debug!(error = %e, "closing the microphone inline");
            }
        }
    }
}

impl AudioSource for Microphone {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn capture(&mut self, frame: &mut AudioFrame) -> Result<(), MediaError> {
        while self.pending.len() < FRAME_SAMPLES {
            // PulseAudio takes ~2 s to open a monitor source the first time.
            match self.rx.recv_timeout(Duration::from_secs(5)) {
                Ok(MicEvent::Samples(s)) => self.pending.extend_from_slice(&s),
                Ok(MicEvent::Error(e)) => {
                    return Err(device_error(
                        DeviceKind::Microphone,
                        Some(&self.name),
                        format!("the microphone failed: {e}"),
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(device_error(
                        DeviceKind::Microphone,
                        Some(&self.name),
                        "the microphone delivered no audio for 5 s",
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(device_error(
                        DeviceKind::Microphone,
                        Some(&self.name),
                        "the microphone stream ended",
                    ));
                }
            }
        }
        // The newest pending sample was captured about now; count back to this frame's first.
        let queued_us = self.pending.len() as u64 * 1_000_000 / u64::from(SAMPLE_RATE);
        let observed = now_us().saturating_sub(queued_us);
        let start = match self.next_sample_us {
            // Follow the sample count unless it drifted far from the wall clock (a stall).
            Some(t) if t.abs_diff(observed) < 200_000 => t,
            _ => observed,
        };
        frame.samples.clear();
        frame
            .samples
            .extend(self.pending.drain(..FRAME_SAMPLES).map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16));
        frame.capture_us = start;
        self.next_sample_us = Some(start + FRAME_US);
        Ok(())
    }
}

/// A speaker playing what a [`Mixer`] mixes. The device stream lives on a thread of its own
/// (cpal streams are not `Send` everywhere); dropping the `Speaker` stops it.
#[derive(Debug)]
pub struct Speaker {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    name: String,
    errors: Receiver<String>,
}

impl Speaker {
    /// Open speaker `id` (None: the system default) and start playing `mixer`.
    pub fn open(id: Option<&str>, mixer: Arc<Mixer>) -> Result<Speaker, MediaError> {
        let (ready_tx, ready_rx) = bounded::<Result<String, MediaError>>(1);
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let (err_tx, err_rx) = bounded::<String>(16);
        let id_owned = id.map(str::to_owned);
        let thread = std::thread::Builder::new()
            .name("hearth-speaker".into())
            .spawn(move || {
                let id = id_owned.as_deref();
                let opened = (|| {
                    let kind = DeviceKind::Speaker;
                    let (lease, dev) = find(kind, id)?;
                    let name = name_of(&dev);
                    let config = stream_config(kind, &dev)?;
                    let channels = usize::from(config.channels.max(1));
                    let rate = config.sample_rate;
                    let mut mono = Vec::new();
                    let mut resampled = Vec::new();
                    // Output at another rate: pull 48 kHz and resample to the device rate.
                    let mut resampler =
                        Resampler { step: f64::from(SAMPLE_RATE) / f64::from(rate), pos: 0.0, last: 0.0 };
                    let mut raised = false;
                    let mut clock = HeardClock::default();
                    let stream = dev
                        .build_output_stream::<f32, _, _>(
                            config,
                            move |data: &mut [f32], info: &cpal::OutputCallbackInfo| {
                                if !raised {
                                    raised = true;
                                    // The backend's thread: see MediaThread::AudioBackend.
                                    crate::priority::raise_current_thread(crate::MediaThread::AudioBackend);
                                }
                                let frames = data.len() / channels;
                                // These samples are heard after the device's own buffering.
                                let ts = info.timestamp();
                                let device_delay = ts.playback.duration_since(ts.callback);
                                let heard_at = clock.heard_at(
                                    std::time::Instant::now() + device_delay.min(Duration::from_secs(1)),
                                    Duration::from_micros(frames as u64 * 1_000_000 / u64::from(rate)),
                                );
                                if rate == SAMPLE_RATE {
                                    mono.resize(frames, 0.0);
                                    mixer.pull_timed(&mut mono, heard_at);
                                } else {
                                    let need = (frames as f64 * f64::from(SAMPLE_RATE) / f64::from(rate))
                                        .ceil() as usize;
                                    let mut src = vec![0.0f32; need];
                                    mixer.pull_timed(&mut src, heard_at);
                                    resampled.clear();
                                    resampler.process(&src, &mut resampled);
                                    resampled.resize(frames, 0.0);
                                    std::mem::swap(&mut mono, &mut resampled);
                                }
                                for (chunk, s) in data.chunks_mut(channels).zip(mono.iter()) {
                                    chunk.fill(*s);
                                }
                            },
                            move |e: cpal::Error| {
                                tracing::warn!(error = %e, "speaker stream error");
                                let _ = err_tx.try_send(e.to_string());
                            },
                            None,
                        )
                        .map_err(|e| device_error(kind, id, format!("cannot open the speaker: {e}")))?;
                    stream
                        .play()
                        .map_err(|e| device_error(kind, id, format!("the speaker would not start: {e}")))?;
                    Ok((stream, lease, name))
                })();
                match opened {
                    Ok((stream, lease, name)) => {
                        let _ = ready_tx.send(Ok(name));
                        let _ = stop_rx.recv();
                        drop(stream);
                        drop(lease);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| {
                device_error(DeviceKind::Speaker, id, format!("cannot start the audio thread: {e}"))
            })?;
        let name = ready_rx.recv().map_err(|_| {
            device_error(DeviceKind::Speaker, id, "the audio thread ended while opening the speaker")
        })??;
        Ok(Speaker { stop: Some(stop_tx), thread: Some(thread), name, errors: err_rx })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A failure of the playing stream (unplugged, server gone), if one happened since the last
    /// call.
    pub fn take_error(&self) -> Option<MediaError> {
        let message = self.errors.try_recv().ok()?;
        Some(device_error(DeviceKind::Speaker, Some(&self.name), format!("the speaker failed: {message}")))
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        drop(self.stop.take());
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
    fn heard_clock_holds_readouts_that_are_too_early_and_follows_under_runs() {
        let t0 = std::time::Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        let period = ms(40);
        let mut c = HeardClock::default();
        assert_eq!(c.heard_at(t0 + ms(32), period), t0 + ms(32));
        // Next callback 40 ms later with a readout of 0: its samples follow the last ones.
        assert_eq!(c.heard_at(t0 + ms(40), period), t0 + ms(72) - HeardClock::DRIFT);
        // A readout a little later than contiguous playback (jitter, or silence played in an
        // under-run) is followed.
        let next = t0 + ms(112) - HeardClock::DRIFT;
        assert_eq!(c.heard_at(next + ms(3), period), next + ms(3));
        let under_run = t0 + ms(200);
        assert_eq!(c.heard_at(under_run, period), under_run);
        // A device clock 0.5% fast (far more than real clocks drift): readouts 0.2 ms earlier
        // each callback. The estimate moves back by up to the drift allowance each time, so it
        // comes back to the readouts instead of running ahead of them.
        let mut measured = under_run;
        let mut last = under_run;
        for _ in 0..100 {
            measured += period - Duration::from_micros(200);
            last = c.heard_at(measured, period);
        }
        assert_eq!(last, measured);
    }

    #[test]
    fn resampler_keeps_rate_and_shape() {
        let mut r = Resampler::new(44_100);
        let input: Vec<f32> =
            (0..44_100).map(|i| (i as f32 / 44_100.0 * 440.0 * std::f32::consts::TAU).sin()).collect();
        let mut out = Vec::new();
        for chunk in input.chunks(441) {
            r.process(chunk, &mut out);
        }
        assert!((47_990..=48_010).contains(&out.len()), "{}", out.len());
        // Same tone: zero crossings per second ~ 880.
        let crossings = out.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
        assert!((870..=890).contains(&crossings), "{crossings}");
        let mut same = Resampler::new(48_000);
        let mut o = Vec::new();
        same.process(&[0.1, 0.2], &mut o);
        assert_eq!(o, [0.1, 0.2]);
    }

    #[test]
    fn idle_pool_gives_a_host_to_one_user_at_a_time_and_keeps_a_bounded_number() {
        // Hosts are (host id, serial number); requests are host ids, None the default.
        let pool: IdlePool<u8, (u8, u32)> = IdlePool::new(2);
        let id = |h: &(u8, u32)| h.0;
        assert_eq!(pool.take(None, id), None);
        pool.give_back(None, (1, 10));
        pool.give_back(Some(2), (2, 20));
        // A default request takes only a host made as the default, even of the same id.
        pool.give_back(Some(1), (1, 11));
        assert_eq!(pool.idle_count(), 2, "over the bound: dropped");
        assert_eq!(pool.take(Some(3), id), None);
        assert_eq!(pool.take(None, id), Some((1, 10)));
        assert_eq!(pool.take(None, id), None, "taken: not handed out twice");
        // A request by id takes any idle host of that id.
        pool.give_back(None, (1, 10));
        assert_eq!(pool.take(Some(1), id), Some((1, 10)));
        assert_eq!(pool.take(Some(2), id), Some((2, 20)));
        assert_eq!(pool.idle_count(), 0);
    }

    #[test]
    fn unknown_device_ids_are_clear_errors() {
        let Err(err) = find(DeviceKind::Microphone, Some("bogus")) else { panic!("found a bogus device") };
        assert!(err.to_string().contains("not a device id"), "{err}");
    }
}
