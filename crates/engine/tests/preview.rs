//! Device checks before a call: a video preview, a microphone meter and the test sound, with
//! synthetic sources and a PulseAudio null sink (its monitor hears what the sink plays).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use hearth_engine::preview::{MicMeter, VideoPreview, play_test_sound};
use hearth_engine::{AudioSpec, DeviceProblem, EngineError, VideoSpec};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn a_video_preview_delivers_frames_until_dropped() {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = frames.clone();
    let preview =
        VideoPreview::start(VideoSpec::Synthetic { width: 320, height: 240, fps: 30.0 }, move |f| {
            let stamp = hearth_media::marker::read_stamp(&f.view()).map(|s| s.frame);
            sink.lock().unwrap().push((f.width, f.height, stamp));
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(preview.is_running());
    preview.stop();
    let seen = frames.lock().unwrap().clone();
    assert!(seen.len() >= 12, "{} frames in 0.7 s at 30 fps", seen.len());
    assert!(seen.iter().all(|(w, h, _)| (*w, *h) == (320, 240)));
    let numbers: Vec<u32> = seen.iter().map(|(_, _, n)| n.expect("stamped")).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    // Stopped means stopped: no frame after stop() returned.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(frames.lock().unwrap().len(), seen.len());

    // Dropping stops it too.
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    let preview =
        VideoPreview::start(VideoSpec::Synthetic { width: 160, height: 120, fps: 50.0 }, move |_| {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(preview);
    let after = count.load(std::sync::atomic::Ordering::Relaxed);
    assert!(after > 0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), after);
}

#[test]
fn a_camera_that_cannot_be_opened_is_a_clear_error() {
    let err = VideoPreview::start(
        VideoSpec::Camera { id: Some("webcam".into()), width: 640, height: 480, fps: 30 },
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::Device { .. }), "{err:?}");
    assert!(err.to_string().contains("camera ids look like camera:0"), "{err}");
    if hearth_media::camera::list().unwrap().is_empty() {
        let err =
            VideoPreview::start(VideoSpec::Camera { id: None, width: 640, height: 480, fps: 30 }, |_| {})
                .unwrap_err();
        let EngineError::Device { problem, message } = &err else { panic!("{err:?}") };
        assert_eq!(*problem, DeviceProblem::Missing, "{message}");
        assert!(message.contains("no camera found") && !message.contains("the call"), "{message}");
    }
}

#[test]
fn the_meter_follows_the_microphone() {
    // Tone bursts: 20 ms at -9 dBFS every 200 ms.
    let meter = MicMeter::start(AudioSpec::Synthetic).unwrap();
    let (mut high, mut low) = (0.0f32, 1.0f32);
    let until = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < until {
        let l = meter.level();
        high = high.max(l);
        low = low.min(l);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(high > 0.75, "peak {high}");
    // It falls between bursts (decays), without dropping to nothing at once.
    assert!(low < 0.5, "lowest {low}");
    assert!(meter.is_running());
    meter.stop();

    let err = MicMeter::start(AudioSpec::Microphone { id: Some("bogus".into()) }).unwrap_err();
    assert!(err.to_string().contains("not a device id"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_sound_is_heard_through_the_speaker() {
    let _pa = hearth_testkit::PulseAudio::start().expect("pulseaudio");
    let meter =
        MicMeter::start(AudioSpec::Microphone { id: Some("pulseaudio:vsink.monitor".into()) }).unwrap();
    // Silence first (the monitor may take ~2 s to deliver at all).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(meter.level() < 0.2, "silence reads {}", meter.level());
    let meter = Arc::new(meter);
    let mut heard = 0.0f32;
    for _ in 0..3 {
        let watch = {
            let meter = meter.clone();
            tokio::spawn(async move {
                let mut peak = 0.0f32;
                for _ in 0..150 {
                    peak = peak.max(meter.level());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                peak
            })
        };
        let started = Instant::now();
        play_test_sound(Some("pulseaudio:vsink".into())).await.unwrap();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(950) && took < Duration::from_secs(4), "{took:?}");
        heard = heard.max(watch.await.unwrap());
        if heard > 0.5 {
            break;
        }
    }
    assert!(heard > 0.5, "the monitor heard {heard}");

    let err = play_test_sound(Some("pulseaudio:no-such-sink".into())).await.unwrap_err();
    let EngineError::Device { problem, message } = &err else { panic!("{err:?}") };
    assert_eq!(*problem, DeviceProblem::Missing, "{message}");
    assert!(message.contains("speaker"), "{message}");
}
