//! The app core without a window, against a real signaling server and real engines: joining,
//! the test participant, chat, media states, errors as people see them, diagnostics.

#![allow(clippy::unwrap_used)]

use hearth_app::api::*;
use hearth_app::{App, AppOptions};
use hearth_testkit::{Server, eventually};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

struct Harness {
    app: App,
    events: Arc<Mutex<Vec<UiEvent>>>,
    dir: std::path::PathBuf,
}

async fn app(tag: &str) -> Harness {
    let dir = std::env::temp_dir().join(format!("hearth-app-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let sink: hearth_app::Sink = Arc::new(move |e| ev.lock().push(e));
    // A port of our own for the embedded server, so parallel tests do not share one.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let opts = AppOptions { config_dir: Some(dir.clone()), invite: None, automation: None, embedded_port: Some(port), launched: None };
    let app = App::start(opts, sink).await.unwrap();
    Harness { app, events, dir }
}

fn req(name: &str, room: &str, server: &str) -> JoinRequest {
    JoinRequest {
        name: name.into(),
        room: room.into(),
        server: server.into(),
        password: None,
        camera: Some(SYNTHETIC_DEVICE.into()),
        microphone: Some(SYNTHETIC_DEVICE.into()),
        speaker: Some(SYNTHETIC_DEVICE.into()),
        camera_on: true,
        mic_on: true,
        audio: Default::default(),
    }
}

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_call_with_test_participant_chat_and_media_states() {
    let h = app("embedded").await;
    let phases = h.events.clone();
    h.app.join(req("Ada", "standup", "")).await.unwrap();
    let v = h.app.view();
    assert_eq!(v.phase, Phase::InCall);
    assert!(v.embedded);
    assert!(v.invite.as_deref().unwrap().starts_with("hearth://join?room=standup"));
    // Every wait was shown by name, in order.
    let seen: Vec<String> = phases
        .lock()
        .iter()
        .filter_map(|e| match e {
            UiEvent::View { view } => Some(format!("{:?}", view.phase).split_whitespace().next().unwrap_or("").to_string()),
            _ => None,
        })
        .collect();
    let order = ["StartingServer", "Connecting", "Joining", "InCall"];
    let mut at = 0;
    for s in &seen {
        if at < order.len() && s.starts_with(order[at]) {
            at += 1;
        }
    }
    assert_eq!(at, order.len(), "phases seen: {seen:?}");
    // Settings were remembered.
    assert_eq!(h.app.settings().name, "Ada");

    h.app.add_test_participant().await.unwrap();
    let peer = eventually(T, "the test participant connects", async || {
        h.app.view().peers.into_iter().find(|p| p.is_test_participant && p.link == LinkUi::Connected)
    })
    .await
    .unwrap();
    assert_eq!(peer.name, "Test participant");
    // Its frames reach the frame hub; our own camera too (self view).
    let hub = h.app.frame_hub().clone();
    eventually(T, "frames published", async || (hub.published.load(std::sync::atomic::Ordering::Relaxed) > 60).then_some(())).await.unwrap();
    // Quality, candidates and the safety code appear once stats come in.
    let q = eventually(T, "quality with a safety code", async || {
        h.app.view().peers.into_iter().find_map(|p| p.quality.filter(|q| q.safety_code.is_some()))
    })
    .await
    .unwrap();
    let code = q.safety_code.unwrap();
    assert_eq!(code.len(), 7, "{code}");
    assert!(q.candidates.unwrap().contains("host"));

    // Private chat: the test participant answers; the thread is the peer's id.
    h.app.send_chat("hello <b>there</b>".into(), Some(peer.peer_id.clone())).unwrap();
    let answer = eventually(T, "an answer", async || h.app.chat().into_iter().find(|m| m.from == peer.peer_id)).await.unwrap();
    assert_eq!(answer.thread.as_deref(), Some(peer.peer_id.as_str()));
    assert!(answer.text.contains("hello <b>there</b>"), "{}", answer.text);
    let mine = h.app.chat().into_iter().find(|m| m.mine).unwrap();
    assert_eq!(mine.to_name.as_deref(), Some("Test participant"));
    // Room chat.
    h.app.send_chat("hi all".into(), None).unwrap();
    eventually(T, "room chat echo", async || h.app.chat().into_iter().find(|m| m.text == "hi all" && m.thread.is_none())).await.unwrap();

    // Mute, hand, screen share: our view follows at once; presenter layout while sharing.
    h.app.set_muted(true).unwrap();
    h.app.raise_hand(true).unwrap();
    h.app.start_screen_share(Some(SYNTHETIC_DEVICE.into())).unwrap();
    let v = h.app.view();
    let me = v.me.unwrap();
    assert!(me.audio_muted && me.hand_raised && me.screen_sharing);
    assert_eq!(v.presenter.as_deref(), Some("self"));
    h.app.stop_screen_share().unwrap();
    assert_eq!(h.app.view().presenter, None);

    // Levels: the test participant's tone bursts make it speak now and then.
    eventually(T, "the test participant is heard", async || {
        h.app.view().peers.into_iter().find(|p| p.is_test_participant && p.level > 0.1).map(|_| ())
    })
    .await
    .unwrap();

    h.app.remove_test_participant().await;
    eventually(T, "the test participant leaves", async || h.app.view().peers.is_empty().then_some(())).await.unwrap();
    h.app.leave().await;
    assert!(matches!(h.app.view().phase, Phase::Left { .. }));
    h.app.shutdown().await;
    let _ = std::fs::remove_dir_all(&h.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_share_one_embedded_server_and_see_each_other() {
    let a = app("share-a").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mk = async |tag: &str| {
        let dir = std::env::temp_dir().join(format!("hearth-app-test-{tag}-{}", std::process::id()));
        let sink: hearth_app::Sink = Arc::new(|_| {});
        App::start(AppOptions { config_dir: Some(dir), invite: None, automation: None, embedded_port: Some(port), launched: None }, sink)
            .await
            .unwrap()
    };
    drop(a);
    let first = mk("share-1").await;
    let second = mk("share-2").await;
    first.join(req("Ada", "pair", "")).await.unwrap();
    second.join(req("Bo", "pair", "")).await.unwrap();
    for (app, other) in [(&first, "Bo"), (&second, "Ada")] {
        eventually(T, "the other app connects", async || {
            app.view().peers.into_iter().find(|p| p.name == other && p.link == LinkUi::Connected)
        })
        .await
        .unwrap();
    }
    // Mute in one app is seen in the other.
    first.set_muted(true).unwrap();
    eventually(T, "Bo sees Ada muted", async || {
        second.view().peers.into_iter().find(|p| p.name == "Ada" && p.audio_muted)
    })
    .await
    .unwrap();
    // Both ends show the same safety code for their link.
    let code = async |app: &App| {
        eventually(T, "safety code", async || app.view().peers.into_iter().find_map(|p| p.quality.and_then(|q| q.safety_code)))
            .await
            .unwrap()
    };
    assert_eq!(code(&first).await, code(&second).await);
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_become_messages_people_can_act_on() {
    let mut config = hearth_signal::Config::default();
    config.hub.max_room_size = 1;
    let server = Server::start(config).await.unwrap();
    let h = app("errors").await;

    // Unreachable server: a closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let e = h.app.join(req("Ada", "r", &format!("ws://{closed}/ws"))).await;
    let e = match e {
        Err(e) => e,
        Ok(()) => panic!("joined a closed port"),
    };
    assert_eq!(e.kind, ErrorKind::ServerUnreachable, "{e:?}");
    assert!(matches!(h.app.view().phase, Phase::Failed { .. }));

    // A bad URL.
    let e = h.app.join(req("Ada", "r", "http://example.invalid")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadServerUrl, "{e:?}");

    // Room full: someone else is in the room of one.
    let other = App::start(
        AppOptions { config_dir: Some(h.dir.join("other")), ..AppOptions::default() },
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    other.join(req("Bo", "tiny", &server.url())).await.unwrap();
    let e = h.app.join(req("Ada", "tiny", &server.url())).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RoomFull, "{e:?}");
    other.leave().await;

    // Wrong password on a locked room.
    let mut locker = req("Bo", "locked", &server.url());
    locker.password = Some("right-one".into());
    other.join(locker).await.unwrap();
    let mut wrong = req("Ada", "locked", &server.url());
    wrong.password = Some("wrong-one".into());
    let e = h.app.join(wrong).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::WrongPassword, "{e:?}");
    assert!(e.message.contains("password"), "{}", e.message);
    other.shutdown().await;
    h.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_hold_the_call_but_no_secrets() {
    let mut config = hearth_signal::Config::default();
    config.hub.turn = Some(hearth_signal::auth::TurnConfig {
        urls: vec!["turn:127.0.0.1:3478".into()],
        secret: b"turn-secret-xyzzy".to_vec(),
        ttl_secs: 3600,
    });
    let server = Server::start(config).await.unwrap();
    let h = app("diag").await;
    let mut r = req("Ada", "diag-room", &format!("{}?token=not-a-real-token-abc", server.url()));
    r.password = Some("hunter2-password".into());
    h.app.join(r).await.unwrap();
    h.app.add_test_participant().await.unwrap();
    eventually(T, "connected", async || h.app.view().peers.into_iter().find(|p| p.link == LinkUi::Connected)).await.unwrap();
    h.app.send_chat("private words".into(), None).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await; // a few stats snapshots
    let path = h.app.save_diagnostics(Some(h.dir.join("diag"))).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["hearth_diagnostics"], 1);
    assert!(json["app"]["version"].is_string());
    assert!(json["events"].as_array().unwrap().len() > 3);
    assert!(json["links"][0]["local_candidate"].is_string(), "{}", json["links"]);
    assert!(!json["stats_timeline"].as_object().unwrap().is_empty());
    for secret in ["hunter2-password", "not-a-real-token-abc", "turn-secret-xyzzy", "credential", "private words"] {
        assert!(!text.contains(secret), "diagnostics contain {secret:?}");
    }
    h.app.shutdown().await;
}
