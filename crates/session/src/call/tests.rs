use super::*;
use crate::call::LINK_CONNECT_TIMEOUT;
use hearth_proto::ServerLimits;

fn info(id: &str) -> PeerInfo {
    PeerInfo {
        id: PeerId::from(id),
        name: id.to_uppercase(),
        media: MediaState::default(),
        hand_raised: false,
        reconnecting: false,
    }
}

fn welcome(me: &str, peers: &[&str], resumed: bool) -> ServerMessage {
    ServerMessage::Welcome(Welcome {
        protocol: hearth_proto::PROTOCOL_VERSION,
        room: "r".into(),
        peer_id: PeerId::from(me),
        name: me.to_uppercase(),
        peers: peers.iter().map(|p| info(p)).collect(),
        ice_servers: vec![],
        history: vec![],
        resume_token: "tok".into(),
        resume_grace_ms: 30_000,
        resumed,
        limits: ServerLimits {
            max_message_bytes: 65536,
            max_room_size: 8,
            rate_per_sec: 50,
            rate_burst: 200,
        },
        last_cseq: 0,
    })
}

fn drain(c: &mut Call) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

fn opens(actions: &[Action]) -> Vec<(String, bool, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::OpenLink { peer, polite, offer } => Some((peer.to_string(), *polite, *offer)),
            _ => None,
        })
        .collect()
}

#[test]
fn newcomer_offers_to_everyone_and_existing_members_wait() {
    let t = Instant::now();
    let mut c = Call::new();
    c.join(Join::new("r", "m"));
    assert!(matches!(drain(&mut c)[..], [Action::Send(ClientMessage::Join(_))]));
    c.handle_server(t, welcome("m", &["a", "z"], false));
    let a = drain(&mut c);
    // "m" < "z": polite towards z; "a" < "m": impolite towards a.
    assert_eq!(opens(&a), [("a".into(), false, true), ("z".into(), true, true)]);
    c.handle_server(t, ServerMessage::PeerJoined { peer: info("q") });
    let a = drain(&mut c);
    assert_eq!(opens(&a), [("q".into(), true, false)]);
    assert!(a.contains(&Action::Emit(CallEvent::PeerJoined(info("q")))));
}

#[test]
fn leaving_peer_link_is_closed_and_reports_are_sent_once() {
    let t = Instant::now();
    let mut c = Call::new();
    c.handle_server(t, welcome("m", &["a"], false));
    drain(&mut c);
    let a = PeerId::from("a");
    let path = hearth_proto::CallPath {
        local: hearth_proto::CandidateType::Relay,
        remote: hearth_proto::CandidateType::Srflx,
        relay: Some(hearth_proto::RelayTransport::Tls),
    };
    c.link_path(&a, path);
    c.link_changed(t + Duration::from_millis(80), &a, LinkState::Connected);
    let acts = drain(&mut c);
    assert!(acts.contains(&Action::Send(ClientMessage::CallReport {
        peer: a.clone(),
        outcome: CallOutcome::Connected,
        connect_ms: Some(80),
        path: Some(path),
        reason: None,
    })));
    c.link_changed(t, &a, LinkState::Disconnected);
    c.link_changed(t, &a, LinkState::Connected);
    assert!(!drain(&mut c).iter().any(|x| matches!(x, Action::Send(ClientMessage::CallReport { .. }))));
    c.handle_server(t, ServerMessage::PeerLeft { peer_id: a.clone(), reason: LeaveReason::Left });
    let acts = drain(&mut c);
    assert!(acts.contains(&Action::CloseLink { peer: a.clone() }));
    assert!(c.peer(&a).is_none());
}

#[test]
fn vanished_peer_with_dead_link_is_freed_at_once() {
    let t = Instant::now();
    let mut c = Call::new();
    c.handle_server(t, welcome("m", &["a"], false));
    let a = PeerId::from("a");
    c.link_changed(t, &a, LinkState::Connected);
    drain(&mut c);
    // Signaling says it is reconnecting while its link is still fine: keep the link.
    c.handle_server(t, ServerMessage::PeerReconnecting { peer_id: a.clone() });
    assert!(!drain(&mut c).contains(&Action::CloseLink { peer: a.clone() }));
    // The link then fails: close it now rather than wait for the grace period.
    c.link_changed(t, &a, LinkState::Failed);
    let acts = drain(&mut c);
    assert!(acts.contains(&Action::CloseLink { peer: a.clone() }));
    // It did connect once, so no "failed" outcome is reported for this link.
    assert!(!acts.iter().any(|x| matches!(x, Action::Send(ClientMessage::CallReport { .. }))));
    // It comes back: the impolite side ("m" > "a") rebuilds the link and offers.
    c.handle_server(t, ServerMessage::PeerReconnected { peer_id: a.clone() });
    assert_eq!(opens(&drain(&mut c)), [("a".into(), false, true)]);
}

#[test]
fn offer_for_a_failed_link_replaces_it() {
    let t = Instant::now();
    let mut c = Call::new();
    c.handle_server(t, welcome("a", &["m"], false));
    let m = PeerId::from("m");
    drain(&mut c);
    c.link_changed(t, &m, LinkState::Failed);
    assert!(drain(&mut c).contains(&Action::Send(ClientMessage::CallReport {
        peer: m.clone(),
        outcome: CallOutcome::Failed,
        connect_ms: None,
        path: None,
        reason: Some(hearth_proto::CallFailure::Ice),
    })));
    c.link_changed(t, &m, LinkState::Failed);
    // "a" is polite towards "m": it does not rebuild itself...
    assert!(opens(&drain(&mut c)).is_empty());
    // ...but accepts m's fresh offer on a new link.
    c.handle_server(t, ServerMessage::Offer { from: m.clone(), sdp: "v=0".into() });
    let acts = drain(&mut c);
    assert_eq!(opens(&acts), [("m".into(), true, false)]);
    assert_eq!(acts.last(), Some(&Action::Signal { peer: m, signal: Signal::Offer("v=0".into()) }));
}

#[test]
fn resume_reconciles_membership_and_keeps_live_links() {
    let t = Instant::now();
    let mut c = Call::new();
    c.handle_server(t, welcome("m", &["a", "b"], false));
    c.link_changed(t, &PeerId::from("a"), LinkState::Connected);
    c.handle_server(
        t,
        ServerMessage::Chat {
            message: ChatMessage {
                id: "x".into(),
                seq: 7,
                ts_ms: 0,
                from: PeerId::from("a"),
                from_name: "A".into(),
                to: None,
                text: "hi".into(),
            },
        },
    );
    drain(&mut c);
    let j = c.resume_join().unwrap();
    assert_eq!(j.resume.as_ref().unwrap().last_seq, 7);
    assert_eq!(j.resume.unwrap().token, "tok");
    // While away, b left and c joined.
    c.handle_server(t, welcome("m", &["a", "c"], true));
    let acts = drain(&mut c);
    assert!(acts.contains(&Action::CloseLink { peer: PeerId::from("b") }));
    assert!(acts.contains(&Action::Emit(CallEvent::PeerLeft {
        peer_id: PeerId::from("b"),
        reason: LeaveReason::Timeout
    })));
    assert_eq!(opens(&acts), [("c".into(), false, true)], "a's live link is kept");
}

#[test]
fn media_state_changes_are_announced_and_echo_ignored() {
    let t = Instant::now();
    let mut c = Call::new();
    c.handle_server(t, welcome("m", &["a"], false));
    drain(&mut c);
    let muted = MediaState { audio_muted: true, ..MediaState::default() };
    c.set_media(muted);
    c.set_media(muted);
    assert_eq!(drain(&mut c), vec![Action::Send(ClientMessage::MediaState { state: muted })]);
    c.handle_server(t, ServerMessage::MediaState { peer_id: PeerId::from("m"), state: muted });
    assert!(drain(&mut c).is_empty());
    c.handle_server(t, ServerMessage::MediaState { peer_id: PeerId::from("a"), state: muted });
    assert_eq!(c.peer(&PeerId::from("a")).unwrap().media, muted);
}

#[test]
fn reconnect_delays_grow_and_are_capped() {
    assert_eq!(reconnect_delay(0, 1.0), Duration::from_millis(250));
    assert_eq!(reconnect_delay(0, 0.0), Duration::from_millis(125));
    assert_eq!(reconnect_delay(3, 1.0), Duration::from_millis(2000));
    assert_eq!(reconnect_delay(30, 1.0), Duration::from_millis(10_000));
    assert!(reconnect_delay(30, 0.0) >= Duration::from_millis(5_000));
}

#[test]
fn failing_relinks_back_off_and_stuck_links_are_rebuilt() {
    let t = Instant::now();
    let mut c = Call::new();
    // "m" > "a": impolite towards a, so it rebuilds.
    c.handle_server(t, welcome("m", &["a"], false));
    let a = PeerId::from("a");
    drain(&mut c);
    c.link_changed(t, &a, LinkState::Failed);
    assert_eq!(opens(&drain(&mut c)), [("a".into(), false, true)], "first rebuild at once");
    c.link_changed(t, &a, LinkState::Failed);
    assert!(opens(&drain(&mut c)).is_empty(), "second rebuild waits");
    c.tick(t + Duration::from_millis(100));
    assert!(opens(&drain(&mut c)).is_empty());
    c.tick(t + Duration::from_secs(1));
    assert_eq!(opens(&drain(&mut c)), [("a".into(), false, true)]);
    c.link_changed(t + Duration::from_secs(1), &a, LinkState::Connected);
    drain(&mut c);
    // Connected once: a failure restarts ICE first; when that does not bring it back, the link
    // is rebuilt at once (connecting reset the backoff).
    let t2 = t + Duration::from_secs(2);
    c.link_changed(t2, &a, LinkState::Failed);
    let acts = drain(&mut c);
    assert!(acts.contains(&Action::RestartIce { peer: a.clone() }) && opens(&acts).is_empty(), "{acts:?}");
    c.tick(t2 + ICE_RESTART_TIMEOUT);
    assert_eq!(opens(&drain(&mut c)).len(), 1);
    // A link that never connects (its negotiation was lost) is rebuilt after the timeout.
    c.tick(t2 + ICE_RESTART_TIMEOUT + LINK_CONNECT_TIMEOUT);
    let acts = drain(&mut c);
    // The rebuilt link never connected: its outcome is a failure by timeout.
    assert!(
        acts.iter().any(|x| matches!(
            x,
            Action::Send(ClientMessage::CallReport {
                outcome: CallOutcome::Failed,
                reason: Some(hearth_proto::CallFailure::Timeout),
                ..
            })
        )),
        "{acts:?}"
    );
    assert!(acts.contains(&Action::Emit(CallEvent::Link { peer_id: a.clone(), state: LinkState::Failed })));
}

#[test]
fn a_newcomer_that_never_offers_is_offered_to() {
    let t = Instant::now();
    let mut c = Call::new();
    c.handle_server(t, welcome("m", &[], false));
    drain(&mut c);
    c.handle_server(t, ServerMessage::PeerJoined { peer: info("q") });
    assert_eq!(opens(&drain(&mut c)), [("q".into(), true, false)]);
    // Still waiting just before the limit.
    c.tick(t + crate::call::NEWCOMER_OFFER_WAIT - Duration::from_millis(1));
    assert!(opens(&drain(&mut c)).is_empty());
    // Past it, the existing member offers on a fresh link, once.
    c.tick(t + crate::call::NEWCOMER_OFFER_WAIT);
    let acts = drain(&mut c);
    assert!(acts.contains(&Action::CloseLink { peer: PeerId::from("q") }));
    assert_eq!(opens(&acts), [("q".into(), true, true)]);
    c.tick(t + crate::call::NEWCOMER_OFFER_WAIT * 3);
    assert!(opens(&drain(&mut c)).is_empty());
}

#[test]
fn a_newcomer_that_offers_in_time_is_not_offered_to() {
    let t = Instant::now();
    let mut c = Call::new();
    c.handle_server(t, welcome("m", &[], false));
    c.handle_server(t, ServerMessage::PeerJoined { peer: info("q") });
    drain(&mut c);
    c.handle_server(
        t + Duration::from_millis(100),
        ServerMessage::Offer { from: PeerId::from("q"), sdp: "v=0".into() },
    );
    drain(&mut c);
    c.tick(t + crate::call::NEWCOMER_OFFER_WAIT * 2);
    assert!(opens(&drain(&mut c)).is_empty());
}

#[test]
fn a_failed_link_that_worked_gets_an_ice_restart_before_a_rebuild() {
    let t = Instant::now();
    // "m" > "a": we are the impolite side and restart.
    let mut c = Call::new();
    c.handle_server(t, welcome("m", &["a"], false));
    let a = PeerId::from("a");
    c.link_changed(t, &a, LinkState::Connected);
    drain(&mut c);
    c.link_changed(t, &a, LinkState::Failed);
    let acts = drain(&mut c);
    assert!(acts.contains(&Action::RestartIce { peer: a.clone() }), "{acts:?}");
    assert!(opens(&acts).is_empty() && !acts.contains(&Action::CloseLink { peer: a.clone() }), "{acts:?}");
    // It comes back within the timeout: nothing is rebuilt.
    c.link_changed(t + Duration::from_secs(2), &a, LinkState::Connected);
    c.tick(t + ICE_RESTART_TIMEOUT + Duration::from_secs(1));
    assert!(opens(&drain(&mut c)).is_empty());
    // It fails again and stays down: after the timeout the link is rebuilt, with us offering.
    let t2 = t + Duration::from_secs(20);
    c.link_changed(t2, &a, LinkState::Failed);
    assert!(drain(&mut c).contains(&Action::RestartIce { peer: a.clone() }));
    c.tick(t2 + Duration::from_secs(3));
    assert!(opens(&drain(&mut c)).is_empty(), "too early to rebuild");
    c.tick(t2 + ICE_RESTART_TIMEOUT);
    let acts = drain(&mut c);
    assert!(acts.contains(&Action::CloseLink { peer: a.clone() }), "{acts:?}");
    assert_eq!(opens(&acts), [("a".into(), false, true)]);
}

#[test]
fn the_polite_side_waits_for_the_restart_offer() {
    let t = Instant::now();
    let mut c = Call::new();
    c.handle_server(t, welcome("a", &["m"], false));
    let m = PeerId::from("m");
    c.link_changed(t, &m, LinkState::Connected);
    drain(&mut c);
    c.link_changed(t, &m, LinkState::Failed);
    let acts = drain(&mut c);
    assert!(
        !acts.iter().any(|x| matches!(x, Action::RestartIce { .. } | Action::OpenLink { .. })),
        "{acts:?}"
    );
}

#[test]
fn a_network_change_restarts_ice_on_every_working_link() {
    let t = Instant::now();
    let mut c = Call::new();
    c.handle_server(t, welcome("a", &["m", "z"], false));
    let (m, z) = (PeerId::from("m"), PeerId::from("z"));
    c.link_changed(t, &m, LinkState::Connected);
    drain(&mut c);
    // Either side may restart when its own network changed (we are polite to both here).
    c.network_changed(t);
    let acts = drain(&mut c);
    assert!(acts.contains(&Action::RestartIce { peer: m.clone() }), "{acts:?}");
    // A link that never connected is left to its own timeout.
    assert!(!acts.contains(&Action::RestartIce { peer: z.clone() }), "{acts:?}");
}

#[test]
fn signaling_retries_stay_quick_for_two_minutes() {
    assert_eq!(signal_retry_delay(0, Duration::ZERO, 1.0), Duration::from_millis(250));
    assert_eq!(signal_retry_delay(9, Duration::from_secs(60), 1.0), Duration::from_millis(1500));
    assert_eq!(signal_retry_delay(9, Duration::from_secs(121), 1.0), Duration::from_secs(10));
}

#[test]
fn an_offer_from_a_new_peer_connection_replaces_our_link() {
    let t = Instant::now();
    let mut c = Call::new();
    c.handle_server(t, welcome("m", &["a"], false));
    drain(&mut c);
    let a = PeerId::from("a");
    let sdp =
        |session: &str, version: u32| format!("v=0\r\no=- {session} {version} IN IP4 0.0.0.0\r\ns=-\r\n");
    // Our offer is answered by a's peer connection (session 111).
    c.handle_server(t, ServerMessage::Answer { from: a.clone(), sdp: sdp("111", 1) });
    drain(&mut c);
    // A renegotiation from the same peer connection (screen share, ICE restart) keeps the link.
    c.handle_server(t, ServerMessage::Offer { from: a.clone(), sdp: sdp("111", 2) });
    let acts = drain(&mut c);
    assert!(opens(&acts).is_empty() && !acts.contains(&Action::CloseLink { peer: a.clone() }), "{acts:?}");
    // a rebuilt its link (its DTLS handshake failed while ours still waited): a new session
    // id. Our old link could never finish DTLS with it; it is replaced and answers the offer.
    c.handle_server(t, ServerMessage::Offer { from: a.clone(), sdp: sdp("222", 1) });
    let acts = drain(&mut c);
    assert!(acts.contains(&Action::CloseLink { peer: a.clone() }), "{acts:?}");
    assert_eq!(opens(&acts), [("a".into(), false, false)]);
    assert_eq!(acts.last(), Some(&Action::Signal { peer: a.clone(), signal: Signal::Offer(sdp("222", 1)) }));
    // Descriptions without an origin line (other clients, junk) never replace anything.
    c.handle_server(t, ServerMessage::Offer { from: a.clone(), sdp: "v=0".into() });
    assert!(opens(&drain(&mut c)).is_empty());
}
