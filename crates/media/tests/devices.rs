//! Real audio devices through a PulseAudio null sink (started by the test), and the camera
//! behaviour on a machine without one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hearth_media::marker::BurstDetector;
use hearth_media::{AudioFrame, AudioSource, Microphone, Mixer, Speaker, ToneBursts, now_us};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn speaker_to_microphone_round_trip_through_a_null_sink() {
    let _pa = hearth_testkit::PulseAudio::start().expect("pulseaudio");
    let mics = hearth_media::device::list(hearth_media::DeviceKind::Microphone).unwrap();
    assert!(mics.iter().any(|d| d.id == "pulseaudio:vsink.monitor"), "{mics:?}");
    let speakers = hearth_media::device::list(hearth_media::DeviceKind::Speaker).unwrap();
    assert!(speakers.iter().any(|d| d.id == "pulseaudio:vsink" && d.is_default), "{speakers:?}");

    let mixer = Arc::new(Mixer::new(960, 960, 48_000));
    let _speaker = Speaker::open(Some("pulseaudio:vsink"), mixer.clone()).unwrap();
    let mut mic = Microphone::open(Some("pulseaudio:vsink.monitor")).unwrap();
    // As the engine's capture threads do, once the device is open.
    hearth_media::raise_current_thread(hearth_media::MediaThread::Audio);
    // Play tone bursts into the sink until the microphone has heard five of them.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let (mixer, stop) = (mixer.clone(), stop.clone());
        std::thread::spawn(move || {
            hearth_media::raise_current_thread(hearth_media::MediaThread::Audio);
            let mut src = ToneBursts::new();
            let mut f = AudioFrame::default();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                src.capture(&mut f).unwrap();
                mixer.push_timed(1, &f.samples, Some(f.capture_us));
            }
        })
    };
    let mut det = BurstDetector::new();
    let mut bursts = Vec::new();
    let mut f = AudioFrame::default();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) && bursts.len() < 5 {
        mic.capture(&mut f).unwrap();
        bursts.extend(det.push(&f.samples, now_us()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feeder.join().unwrap();
    assert!(bursts.len() >= 5, "found {bursts:?}");
    // Consecutive slots: in order, none missing.
    assert!(bursts.windows(2).all(|w| w[1].slot == w[0].slot + 1), "{bursts:?}, mixer {:?}", mixer.stats(1));
    // The speaker reported which media time it played.
    assert!(mixer.playout(1).is_some());
}

#[test]
fn no_camera_lists_empty_and_opening_fails_clearly() {
    let cams = hearth_media::camera::list().unwrap();
    if cams.is_empty() {
        let err = hearth_media::Camera::open("camera:0", 640, 480, 30).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("camera") && msg.contains("cannot open the camera"), "{msg}");
        let err = hearth_media::Camera::open("front", 640, 480, 30).unwrap_err();
        assert!(err.to_string().contains("camera ids look like camera:0"));
    } else {
        // A machine with a camera: it must open and deliver a frame.
        let mut cam = hearth_media::Camera::open(&cams[0].id, 640, 480, 30).unwrap();
        let mut frame = hearth_media::VideoFrame::new(2, 2);
        hearth_media::VideoSource::capture(&mut cam, &mut frame).unwrap();
        assert!(frame.width > 0);
    }
}

#[test]
fn no_sound_server_means_clear_errors_not_panics() {
    // SAFETY of the environment change: nextest runs each test in its own process.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("XDG_RUNTIME_DIR", "/nonexistent");
        std::env::remove_var("PULSE_SERVER");
    }
    // Without a sound server only ALSA remains; on a machine without a sound card opening
    // fails with a message instead of crashing. (With a card, it opens.)
    match Microphone::open(Some("pulseaudio:vsink.monitor")) {
        Ok(_) => {}
        Err(e) => assert!(e.to_string().contains("microphone"), "{e}"),
    }
    let _ = Speaker::open(None, Arc::new(Mixer::default()))
        .map_err(|e| assert!(e.to_string().contains("speaker"), "{e}"));
}

/// Clients this process has open on the sound server: all but `pactl` itself (cpal's client
/// sends no name the short list shows).
fn our_clients(pa: &hearth_testkit::PulseAudio) -> usize {
    pa.pactl(&["list", "short", "clients"]).unwrap().lines().filter(|l| !l.ends_with("pactl")).count()
}

/// What a call does with the sound devices: list them, play and capture, close.
fn join_and_leave() {
    let mics = hearth_media::device::list(hearth_media::DeviceKind::Microphone).unwrap();
    assert!(mics.iter().any(|d| d.id == "pulseaudio:vsink.monitor"), "{mics:?}");
    hearth_media::device::list(hearth_media::DeviceKind::Speaker).unwrap();
    let mixer = Arc::new(Mixer::new(960, 960, 48_000));
    let speaker = Speaker::open(None, mixer).unwrap();
    let mut mic = Microphone::open(Some("pulseaudio:vsink.monitor")).unwrap();
    let mut f = AudioFrame::default();
    mic.capture(&mut f).unwrap();
    drop(mic);
    drop(speaker);
}

/// (threads, open files, sound-server clients) of this process once the microphones closed
/// on threads of their own are closed.
fn settled_usage(pa: &hearth_testkit::PulseAudio) -> (usize, usize, usize) {
    let names = || -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_owned())
            .collect()
    };
    let t = Instant::now();
    // Thread names are cut to 15 bytes.
    while names().iter().any(|n| n.starts_with("hearth-mic-clo")) && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    (names().len(), std::fs::read_dir("/proc/self/fd").unwrap().count(), our_clients(pa))
}

#[test]
fn joining_again_and_again_leaves_no_threads_files_or_sound_server_clients_behind() {
    let pa = hearth_testkit::PulseAudio::start().expect("pulseaudio");
    join_and_leave();
    let after_one = settled_usage(&pa);
    for _ in 0..5 {
        join_and_leave();
        // A device that is not there: a clear error, and the client that looked stays in use.
        let err = Microphone::open(Some("pulseaudio:no-such-source")).unwrap_err();
        assert!(err.to_string().contains("is not connected"), "{err}");
    }
    let after_six = settled_usage(&pa);
    println!("(threads, files, clients): {after_one:?} after one join, {after_six:?} after six");
    // Clients are kept for reuse, at most 4 idle (how many were in use at once: a microphone
    // still closing on its own thread when the next join opens one). Each has a thread and 3
    // files (socket, epoll, waker); nothing else may grow. Before clients were leased, every
    // list, microphone and speaker left one (6 more after five joins).
    let besides_clients = |u: (usize, usize, usize)| (u.0.saturating_sub(u.2), u.1.saturating_sub(3 * u.2));
    assert!(after_six.2 <= 4, "{after_six:?} after six joins: clients beyond the pool's bound");
    assert_eq!(besides_clients(after_six), besides_clients(after_one), "{after_one:?} -> {after_six:?}");

    // The sound server restarts: the clients kept from before are dead; new ones are made.
    drop(pa);
    let pa = hearth_testkit::PulseAudio::start().expect("pulseaudio again");
    let t = Instant::now();
    join_and_leave();
    println!("joined after a restart of the sound server in {:?}", t.elapsed());
    let after_restart = settled_usage(&pa);
    println!("(threads, files, clients) after the restart and a join: {after_restart:?}");
    assert!(after_restart.2 >= 1, "no client on the new server");
    assert!(after_restart.2 <= 4, "{after_restart:?}");
    // The dead clients' threads ended with the old server; a dead one still idle in the pool
    // keeps one file (its waker) until it is next taken and thrown away.
    let (threads, files) = besides_clients(after_restart);
    let (threads_before, files_before) = besides_clients(after_one);
    assert!(threads == threads_before && files <= files_before + 4, "dead clients left: {after_restart:?}");
}
