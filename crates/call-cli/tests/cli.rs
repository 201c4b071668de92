//! The `hearth-call` binary as users run it in CI: real processes against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use hearth_engine::{CallEvent, Engine, EngineConfig, EngineEvent, LinkState};
use hearth_testkit::{Server, eventually};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

mod common;
use common::{hearth_call, join_args};

fn run_all(children: Vec<std::process::Child>) -> Vec<(i32, Value, String)> {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
            (out.status.code().unwrap_or(-1), json, stderr)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_smoke_call_exits_zero() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let url = server.url();
    let kids = ["ada", "bob"]
        .iter()
        .map(|n| hearth_call().args(join_args(&url, n, &["--seconds", "3"])).spawn().unwrap())
        .collect();
    let results = tokio::task::spawn_blocking(move || run_all(kids)).await.unwrap();
    for (code, json, stderr) in results {
        assert_eq!(code, 0, "{json:#}\n{stderr}");
        assert_eq!(json["ok"], true);
        let pair = &json["pairs"][0];
        assert!(pair["video_frames_decoded"].as_u64().unwrap() > 30, "{pair:#}");
        assert!(pair["audio_frames_decoded"].as_u64().unwrap() > 50, "{pair:#}");
        assert!(pair["sender_received_packets"].as_u64().unwrap() > 0, "{pair:#}");
        assert_eq!(pair["video_width"], 320);
        assert_eq!(pair["problems"].as_array().unwrap().len(), 0, "{pair:#}");
        // Figures over the call, and at the outputs (virtual speaker, frames "shown").
        assert!(pair["video_fps_avg"].as_f64().unwrap() > 20.0, "{pair:#}");
        assert!(pair["received_kbps"].as_f64().unwrap() > 50.0, "{pair:#}");
        assert!(pair["audio_latency_ms"]["samples"].as_u64().unwrap() > 0, "{pair:#}");
        assert!(pair["lip_sync_skew_ms"]["samples"].as_u64().unwrap() > 0, "{pair:#}");
        assert!(pair["video_psnr_db"].as_f64().unwrap() > 30.0, "{pair:#}");
        let video = json["encoders"].as_array().unwrap().iter().find(|e| e["kind"] == "camera").unwrap();
        assert_eq!((video["width"].as_u64(), video["fps"].as_f64()), (Some(320), Some(30.0)), "{video:#}");
        // OpenH264's initialisation warning no longer reaches the console.
        assert!(!stderr.contains("OpenH264"), "{stderr}");
    }
}

/// A peer that announces its camera as on but stops sending it after a second: the other
/// side decoded a fraction of what the sender's frame rate promised, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_media_that_stops_flowing_fails_the_call_with_the_reason() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let url = server.url();
    let ada = hearth_call().args(join_args(&url, "ada", &["--seconds", "5"])).spawn().unwrap();
    let bob = hearth_call()
        .args(join_args(&url, "bob", &["--seconds", "5", "--test-stop-camera-after", "1"]))
        .spawn()
        .unwrap();
    let results = tokio::task::spawn_blocking(move || run_all(vec![ada, bob])).await.unwrap();
    let (code, json, stderr) = &results[0];
    assert_eq!(*code, 1, "ada: {json:#}\n{stderr}");
    assert_eq!(json["ok"], false);
    let problems: Vec<&str> =
        json["problems"].as_array().unwrap().iter().filter_map(|p| p.as_str()).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    // "camera from bob: 31 of 150 expected frames (21%) at 30.0 fps over 5.0 s"
    assert!(
        problems[0].starts_with("camera from bob: ") && problems[0].contains("expected frames"),
        "{problems:?}"
    );
    let pair = &json["pairs"][0];
    assert!(pair["video_frames_decoded"].as_u64().unwrap() > 10, "bob did send at first: {pair:#}");
    // Bob's side of the call was fine: ada's media reached bob, and bob's reached ada as sent.
    let (code, json, stderr) = &results[1];
    assert_eq!(*code, 0, "bob: {json:#}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_and_private_chat_from_the_cli() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let url = server.url();
    let common = ["--seconds", "3", "--expect-peers", "2"];
    let ada = hearth_call()
        .args(join_args(&url, "ada", &[&common[..], &["--say", "hello room"]].concat()))
        .spawn()
        .unwrap();
    let bob = hearth_call()
        .args(join_args(&url, "bob", &[&common[..], &["--say", "psst", "--say-to", "cy"]].concat()))
        .spawn()
        .unwrap();
    let cy = hearth_call().args(join_args(&url, "cy", &common)).spawn().unwrap();
    let results = tokio::task::spawn_blocking(move || run_all(vec![ada, bob, cy])).await.unwrap();
    let chat = |i: usize| -> Vec<(String, bool, String)> {
        results[i].1["chat"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["from"].as_str().unwrap().to_owned(),
                    c["private"].as_bool().unwrap(),
                    c["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    for (code, json, stderr) in &results {
        assert_eq!(*code, 0, "{json:#}\n{stderr}");
    }
    let room = ("ada".to_owned(), false, "hello room".to_owned());
    let private = ("bob".to_owned(), true, "psst".to_owned());
    assert!(chat(1).contains(&room), "bob: {:?}", chat(1));
    assert!(chat(2).contains(&room), "cy: {:?}", chat(2));
    assert!(chat(2).contains(&private), "cy: {:?}", chat(2));
    assert!(!chat(0).iter().any(|c| c.2 == "psst"), "the private message leaked to ada: {:?}", chat(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_peer_is_cleaned_up_by_the_others() {
    let mut cfg = hearth_signal::Config::default();
    cfg.hub.resume_grace = Duration::from_secs(2);
    let server = Server::start(cfg).await.unwrap();
    let (ada, mut rx) =
        Engine::start(EngineConfig::new(server.url(), "ci", "ada").synthetic(320, 240, 30.0)).await.unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            sink.lock().unwrap().push(ev);
        }
    });
    let mut victim =
        hearth_call().args(join_args(&server.url(), "victim", &["--seconds", "120"])).spawn().unwrap();
    eventually(Duration::from_secs(20), "victim connected", async || {
        log.lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, EngineEvent::Call(CallEvent::Link { state: LinkState::Connected, .. })))
            .then_some(())
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "video from the victim", async || {
        ada.stats().await.ok()?.into_iter().find(|s| s.camera.frames_decoded > 10)
    })
    .await
    .unwrap();
    victim.kill().unwrap(); // SIGKILL: no leave, no close frames
    let _ = victim.wait();
    eventually(Duration::from_secs(20), "victim reported left", async || {
        log.lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, EngineEvent::Call(CallEvent::PeerLeft { .. })))
            .then_some(())
    })
    .await
    .unwrap();
    // Its link is torn down: no stats entry, so no connection, tasks or decoder left for it.
    eventually(Duration::from_secs(10), "link gone", async || {
        ada.stats().await.ok()?.is_empty().then_some(())
    })
    .await
    .unwrap();
    let reconnecting_seen =
        log.lock().unwrap().iter().any(|e| matches!(e, EngineEvent::Call(CallEvent::PeerReconnecting(_))));
    assert!(reconnecting_seen);
    ada.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_what_went_wrong() {
    // Nobody listening: 3, with a clear message.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", dead.local_addr().unwrap());
    drop(dead);
    let out = hearth_call().args(join_args(&url, "a", &[])).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the signaling server"));
    // Nothing to send: 2.
    let out = hearth_call().args(["join", "--server", &url, "--room", "r"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--synthetic"));
    // Alone in the room when a peer is expected: 1.
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let url = server.url();
    let out = tokio::task::spawn_blocking(move || {
        hearth_call().args(join_args(&url, "alone", &["--wait", "2"])).output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert!(json["problems"][0].as_str().unwrap().contains("expected 1 peer(s), 0 connected"), "{json:#}");
}

#[test]
fn demo_reports_every_pair() {
    let out = hearth_call()
        .args(["demo", "--peers", "3", "--seconds", "2", "--json", "--width", "320", "--height", "240"])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(0), "{json:#}\n{}", String::from_utf8_lossy(&out.stderr));
    let pairs = json["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 6);
    for p in pairs {
        assert!(p["video_frames_decoded"].as_u64().unwrap() > 0);
        assert!(p["video_latency_ms"]["samples"].as_u64().unwrap() > 0);
        assert!(p["join_to_first_frame_ms"].as_f64().unwrap() > 0.0);
        assert!(p["video_psnr_db"].as_f64().unwrap() > 30.0, "{p:#}");
        assert!(p["audio_latency_ms"]["samples"].as_u64().unwrap() > 0, "{p:#}");
    }
    assert!(json["cpu_per_peer_pct"].as_f64().unwrap() > 0.0);
    assert_eq!(json["problems"].as_array().unwrap().len(), 0);
    // Each summary figure names its worst pair beside the median.
    let s = &json["summary"];
    for figure in ["video_latency_p95_ms", "audio_latency_p95_ms", "video_fps_avg", "video_psnr_db"] {
        let worst = &s["worst"][figure];
        assert!(
            worst["value"].as_f64().is_some() && worst["pair"].as_str().unwrap().contains(" <- "),
            "{s:#}"
        );
        assert!(s[figure].as_f64().is_some(), "{s:#}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("OpenH264") && !String::from_utf8_lossy(&out.stdout).contains("OpenH264"),
        "{stderr}"
    );
}

/// The remote peers of the desktop app's UI tests act during the call (`--at`) and report what
/// they saw of each other: here one mutes, chats and shares its screen for 2 s; the other's
/// report has the timeline, and both calls pass (a muted peer's audio is not expected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_actions_are_seen_by_the_other_peer() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let url = server.url();
    let script = ["--at", "1:mute", "--at", "2:say:hello", "--at", "3:screen-on", "--at", "5:screen-off"];
    let ada = hearth_call()
        .args(join_args(&url, "ada", &[&["--seconds", "6"][..], &script].concat()))
        .spawn()
        .unwrap();
    let bob = hearth_call().args(join_args(&url, "bob", &["--seconds", "6"])).spawn().unwrap();
    let results = tokio::task::spawn_blocking(move || run_all(vec![ada, bob])).await.unwrap();
    for (code, json, stderr) in &results {
        assert_eq!(*code, 0, "{json:#}\n{stderr}");
    }
    let (ada, bob) = (&results[0].1, &results[1].1);
    let done: Vec<&str> =
        ada["actions_done"].as_array().unwrap().iter().map(|d| d["action"].as_str().unwrap()).collect();
    assert_eq!(done, ["mute", "say:hello", "screen-on", "screen-off"], "{ada:#}");
    let times: Vec<u64> =
        ada["actions_done"].as_array().unwrap().iter().map(|d| d["at_ms"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[1] >= w[0] + 900), "{times:?}");

    let seen = bob["seen_peers"].as_array().unwrap();
    assert_eq!(seen.len(), 1, "{bob:#}");
    let a = &seen[0];
    assert_eq!(a["name"], "ada");
    assert_eq!(a["peer_id"], ada["peer_id"]);
    assert_eq!(
        (&a["audio_muted"], &a["video_off"], &a["screen_sharing"]),
        (&Value::from(true), &Value::from(false), &Value::from(false)),
        "{a:#}"
    );
    let changes: Vec<(bool, bool)> = a["media_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["audio_muted"].as_bool().unwrap(), c["screen_sharing"].as_bool().unwrap()))
        .collect();
    assert_eq!(changes, [(false, false), (true, false), (true, true), (true, false)], "{a:#}");
    let at: Vec<u64> =
        a["media_changes"].as_array().unwrap().iter().map(|c| c["at_ms"].as_u64().unwrap()).collect();
    // Sharing for about 2 s.
    assert!((1500..2500).contains(&(at[3] - at[2])), "{at:?}");
    let chat = &bob["chat_received"];
    assert_eq!(chat.as_array().unwrap().len(), 1, "{bob:#}");
    assert_eq!(
        (&chat[0]["from_name"], &chat[0]["text"], &chat[0]["private"]),
        (&Value::from("ada"), &Value::from("hello"), &Value::from(false))
    );
    assert_eq!(chat[0]["from"], ada["peer_id"]);
    assert!(chat[0]["at_ms"].as_u64().unwrap() > at[1], "{chat:#}");
    // The screen did arrive; the muted audio is not held against ada, and the report says so.
    let pair = &bob["pairs"][0];
    assert!(pair["screen_frames_decoded"].as_u64().unwrap() > 5, "{pair:#}");
    let notes: Vec<&str> = bob["notes"].as_array().unwrap().iter().filter_map(|n| n.as_str()).collect();
    assert!(notes.iter().any(|n| n.starts_with("audio from ada: ") && n.contains("muted")), "{notes:?}");
}

/// A peer that just sits in the room (`--expect-peers 0 --seconds 0`, muted, camera off) until
/// it is sent SIGTERM, then leaves and reports what the visitor did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sitting_peer_reports_on_sigterm() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let url = server.url();
    let sitter = hearth_call()
        .args(join_args(
            &url,
            "sitter",
            &["--expect-peers", "0", "--seconds", "0", "--muted", "--camera-off"],
        ))
        .spawn()
        .unwrap();
    let script = [
        "--seconds",
        "4",
        "--at",
        "0.5:hand-up",
        "--at",
        "1:react:👍",
        "--at",
        "1.5:say-to:sitter:psst",
        "--at",
        "2:hand-down",
        "--at",
        "3:leave",
    ];
    let visitor = hearth_call().args(join_args(&url, "visitor", &script)).spawn().unwrap();
    let visitor = tokio::task::spawn_blocking(move || run_all(vec![visitor])).await.unwrap();
    let (code, v, stderr) = &visitor[0];
    assert_eq!(*code, 0, "{v:#}\n{stderr}");
    assert_eq!(v["ended_by"], "leave");
    assert_eq!(v["actions_done"].as_array().unwrap().len(), 5, "{v:#}");
    let s = &v["seen_peers"][0];
    assert_eq!(
        (&s["name"], &s["audio_muted"], &s["video_off"]),
        (&Value::from("sitter"), &Value::from(true), &Value::from(true)),
        "{s:#}"
    );
    let notes: Vec<&str> = v["notes"].as_array().unwrap().iter().filter_map(|n| n.as_str()).collect();
    assert!(notes.contains(&"audio from sitter: not checked (muted)"), "{notes:?}");
    assert!(notes.contains(&"camera from sitter: not checked (camera off)"), "{notes:?}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let term = Command::new("kill").args(["-TERM", &sitter.id().to_string()]).status().unwrap();
    assert!(term.success());
    let sitter = tokio::task::spawn_blocking(move || run_all(vec![sitter])).await.unwrap();
    let (code, s, stderr) = &sitter[0];
    assert_eq!(*code, 0, "{s:#}\n{stderr}");
    assert_eq!(s["ended_by"], "SIGTERM");
    assert_eq!(s["chat_received"][0]["text"], "psst");
    assert_eq!(s["chat_received"][0]["private"], true);
    assert_eq!(s["reactions_received"][0]["emoji"], "👍");
    assert_eq!(s["reactions_received"][0]["from_name"], "visitor");
    let visitor = &s["seen_peers"][0];
    assert_eq!(
        (&visitor["left"], &visitor["hand_raised"]),
        (&Value::from(true), &Value::from(false)),
        "{visitor:#}"
    );
    let hands: Vec<bool> =
        visitor["hand_changes"].as_array().unwrap().iter().map(|h| h["raised"].as_bool().unwrap()).collect();
    assert_eq!(hands, [true, false]);
    // The visitor's media reached the sitter while it was there.
    assert!(s["pairs"][0]["video_frames_decoded"].as_u64().unwrap() > 30, "{s:#}");
}

#[test]
fn bad_at_specs_are_refused_before_joining() {
    for (spec, why) in
        [("1:dance", "unknown action"), ("x:mute", "SECS must be a number"), ("1:say:", "must not be empty")]
    {
        let out = hearth_call()
            .args(["join", "--server", "ws://127.0.0.1:1", "--room", "r", "--synthetic", "--at", spec])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{spec}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{spec}: {stderr}");
    }
    // An action after the end of the call.
    let out = hearth_call()
        .args([
            "join",
            "--server",
            "ws://127.0.0.1:1",
            "--room",
            "r",
            "--synthetic",
            "--seconds",
            "3",
            "--at",
            "5:mute",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("after the end of the call"));
}
