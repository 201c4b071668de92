//! Audio processing through real calls (issue 14): `cargo bench -p hearth-engine --bench
//! audio_processing`.
//!
//! Two engines in one call on a private PulseAudio whose null sink is a perfect echo path (see
//! `tests/support/echo.rs`): "far" talks (speech-like synthetic voice), "near" plays it and hears
//! it back through the sink's monitor; near-end speech and noise are played into the same sink.
//! Near's processing is run three ways (off; echo cancellation + noise suppression + high-pass;
//! everything, the default) over the same script with the echo path 10 dB down, then off and
//! without gain control over the null sink's 0 dB path; what near sends is measured where far
//! receives it. Then the stage's own cost per 10 ms, outside any call.
//!
//! Prints, per configuration: echo return loss enhancement (ERLE: near's level with the far end
//! alone, against processing off, after 3 s), time to converge (the echo stays 25 dB under the
//! unprocessed echo), the near end's level in double talk against the near end alone, noise in
//! speech pauses against processing off; and the cost. Floors from the issue: ERLE >= 25 dB,
//! converged within 2 s, near end within 3 dB, noise down >= 15 dB, cost < 5% of a core.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/support/echo.rs"]
mod echo;

use echo::Phase;
use hearth_media::{CaptureProcessor, ProcessingConfig, SpeechLike, WebrtcProcessor};
use std::time::Instant;

/// The echo path: the far end comes back 10 dB under a near-end talker as loud as the far end
/// (a laptop's speaker and microphone; the null sink alone is a 0 dB path, run too).
const ECHO_PATH_DB: f64 = -10.0;

const SCRIPT: &[(Phase, f64)] = &[
    (Phase::Silence, 2.0),
    (Phase::Noise, 12.0),
    (Phase::Far, 12.0),
    (Phase::DoubleTalk, 8.0),
    (Phase::Near, 8.0),
];

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let pa =
        hearth_testkit::PulseAudio::start().expect("a private PulseAudio (scripts/setup.sh installs it)");
    let all_on = ProcessingConfig::default();
    let no_agc = ProcessingConfig { gain_control: false, ..all_on };
    // (name, processing, echo path gain in dB)
    let runs = [
        ("off", ProcessingConfig::OFF, ECHO_PATH_DB),
        ("aec+ns+hpf", no_agc, ECHO_PATH_DB),
        ("default (all on)", all_on, ECHO_PATH_DB),
        ("off, 0 dB path", ProcessingConfig::OFF, 0.0),
        ("aec+ns+hpf, 0 dB", no_agc, 0.0),
    ];
    let recordings: Vec<(&str, echo::Recording)> = runs
        .iter()
        .enumerate()
        .map(|(i, (name, cfg, path))| {
            rt.block_on(async {
                let server = hearth_testkit::Server::start(hearth_signal::Config::default()).await.unwrap();
                println!("running {name} ({} s of script)...", SCRIPT.iter().map(|p| p.1).sum::<f64>());
                let rec = echo::run(&pa, &server.url(), &format!("bench-{i}"), *cfg, *path, SCRIPT).await;
                (*name, rec)
            })
        })
        .collect();

    // Each run is compared with processing off over the same echo path.
    let reference = |name: &str| if name.contains("0 dB") { &recordings[3].1 } else { &recordings[0].1 };
    println!();
    println!("near's level as far receives it (dBFS; reports floor at -60):");
    println!(
        "{:<18} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "processing", "echo", "ERLE", "converged", "dtalk", "near", "dt-near", "noise-gap", "noise-dn"
    );
    for (name, rec) in &recordings {
        let off = reference(name);
        let echo_off = off.mean_db(Phase::Far, 3.0);
        let noise_off = off.sent_quantile_db(Phase::Noise, 1.0, 0.25);
        let echo_db = rec.mean_db(Phase::Far, 3.0);
        let erle = echo_off - echo_db;
        let converged = echo::convergence_s(rec.phase(Phase::Far), echo_off, 25.0f64.min(erle - 3.0));
        let dt = rec.mean_db(Phase::DoubleTalk, 1.0);
        let near = rec.mean_db(Phase::Near, 1.0);
        let gap = rec.sent_quantile_db(Phase::Noise, 1.0, 0.25);
        let noise_text = if gap <= -59.5 {
            format!(">={:.1}", noise_off - gap)
        } else {
            format!("{:.1}", noise_off - gap)
        };
        // At the reports' floor the echo is somewhere below it: ERLE is at least this.
        let erle_text = if echo_db <= -59.5 { format!(">={erle:.1}") } else { format!("{erle:.1}") };
        println!(
            "{:<18} {:>9.1} {:>7} {:>10} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>9}",
            name,
            echo_db,
            erle_text,
            converged.map_or("never".to_string(), |s| format!("{s:.1} s")),
            dt,
            near,
            dt - near,
            gap,
            noise_text,
        );
    }
    println!();
    println!("the far end's first 2 s (energy mean of each 0.5 s, dBFS), i.e. how fast the echo goes:");
    for (name, rec) in &recordings {
        println!("{name:<18} {}", half_seconds(rec.phase(Phase::Far), 4));
    }
    println!(
        "(echo: far end alone, from 3 s; ERLE vs off; converged: the echo stays min(25, ERLE-3) dB under off's, \
         0.5 s windows; dtalk/near: double talk vs near end alone, from 1 s; noise-gap: 25th percentile of what near sent in the \
         noise phase, i.e. speech pauses; noise-dn: vs off)"
    );

    // Double talk from the first second: the echo canceller has not seen the echo path yet.
    const EARLY: &[(Phase, f64)] = &[(Phase::Silence, 2.0), (Phase::DoubleTalk, 4.0), (Phase::Near, 4.0)];
    println!();
    println!(
        "double talk from the start of a call (near end level, dBFS, 0.5 s windows over the first 3 s; then near alone):"
    );
    for (i, (name, cfg)) in [("off", ProcessingConfig::OFF), ("aec+ns+hpf", no_agc)].into_iter().enumerate() {
        let rec = rt.block_on(async {
            let server = hearth_testkit::Server::start(hearth_signal::Config::default()).await.unwrap();
            echo::run(&pa, &server.url(), &format!("early-{i}"), cfg, ECHO_PATH_DB, EARLY).await
        });
        let dt = half_seconds(rec.phase(Phase::DoubleTalk), 6);
        println!("{name:<18} {dt}   near alone {:6.1}", rec.mean_db(Phase::Near, 1.0));
    }

    // The stage's own cost, outside a call: 20 s of double talk, 10 ms at a time as sonora works.
    let n = 48_000 * 20;
    let far = SpeechLike::samples(1, 140.0, 0.5, n);
    let near = SpeechLike::samples(7, 210.0, 0.5, n);
    for (name, cfg) in [("aec+ns+hpf", no_agc), ("default (all on)", all_on)] {
        let mut p = WebrtcProcessor::new(cfg);
        let start = Instant::now();
        for s in (0..n).step_by(960) {
            p.render(&far[s..s + 960]);
            let mut frame: Vec<i16> = (s..s + 960).map(|i| (far[i] / 2).saturating_add(near[i])).collect();
            p.capture(&mut frame);
        }
        let per_10ms_us = start.elapsed().as_secs_f64() * 1e6 / (n / 480) as f64;
        println!(
            "cost {name}: {per_10ms_us:.0} us per 10 ms of audio = {:.2}% of one core",
            per_10ms_us / 100.0
        );
    }
}

/// The energy mean of each of a phase's first `n` half seconds, printed side by side.
fn half_seconds(phase: &[(f64, f64)], n: usize) -> String {
    (0..n)
        .map(|k| {
            let t = k as f64 * 0.5;
            let d = echo::energy_mean(phase.iter().filter(|(s, _)| *s >= t && *s < t + 0.5).map(|(_, d)| *d));
            format!("{d:6.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}
