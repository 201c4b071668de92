//! Client sequence numbers: a message resent after a resume is taken once, `welcome` and `pong`
//! say what was taken. And `peer_error`, relayed like an offer.

use super::*;
use hearth_proto::Resume;

fn numbered(h: &mut Harness, c: u64, msg: ClientMessage, cseq: u64) {
    h.hub.message(h.now, ConnId(c), ClientFrame::numbered(msg, cseq));
    h.pump();
}

fn resume(h: &mut Harness, c: u64, room: &str, token: &str, last_seq: u64) -> Welcome {
    h.connect(c);
    let mut j = Join::new(room, "again");
    j.resume = Some(Resume { token: token.into(), last_seq });
    h.send(c, ClientMessage::Join(j));
    match h.take(c).into_iter().next() {
        Some(ServerMessage::Welcome(w)) => w,
        other => panic!("expected welcome, got {other:?}"),
    }
}

fn texts(msgs: &[ServerMessage]) -> Vec<&str> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMessage::Chat { message } => Some(message.text.as_str()),
            _ => None,
        })
        .collect()
}

/// The `last_cseq` of a pong to a fresh ping (what else `c` had received is dropped).
fn pong_cseq(h: &mut Harness, c: u64) -> Option<u64> {
    h.take(c);
    h.send(c, ClientMessage::Ping { nonce: 1 });
    match h.take(c).as_slice() {
        [ServerMessage::Pong { last_cseq, .. }] => *last_cseq,
        other => panic!("expected a pong, got {other:?}"),
    }
}

#[test]
fn messages_resent_after_a_resume_are_taken_once() {
    let mut h = Harness::new(HubConfig::default());
    let a = h.join(1, "r", "Ada");
    let b = h.join(2, "r", "Bob");
    assert_eq!(b.last_cseq, 0);
    h.take(1);
    numbered(&mut h, 2, chat("one"), 1);
    numbered(&mut h, 2, ClientMessage::Offer { to: a.peer_id.clone(), sdp: "v=0 first".into() }, 2);
    numbered(&mut h, 2, chat("two"), 3);
    assert_eq!(pong_cseq(&mut h, 2), Some(3));
    // Bob's socket drops before he learns what arrived.
    h.drop_conn(2);
    h.take(1);
    h.take(2);
    let w = resume(&mut h, 3, "r", &b.resume_token, 0);
    assert!(w.resumed);
    assert_eq!(w.last_cseq, 3, "the welcome says what the server already has");
    // A client that resends all it kept: the first three are duplicates.
    numbered(&mut h, 3, chat("one"), 1);
    numbered(&mut h, 3, ClientMessage::Offer { to: a.peer_id.clone(), sdp: "v=0 first".into() }, 2);
    numbered(&mut h, 3, chat("two"), 3);
    numbered(&mut h, 3, chat("three"), 4);
    let to_ada = h.take(1);
    assert_eq!(texts(&to_ada), ["three"]);
    assert!(!to_ada.iter().any(|m| matches!(m, ServerMessage::Offer { .. })), "{to_ada:?}");
    let to_bob = h.take(3);
    assert_eq!(texts(&to_bob), ["three"], "duplicates are dropped without an error: {to_bob:?}");
    assert_eq!(pong_cseq(&mut h, 3), Some(4));
    // The count survives a second drop too.
    h.drop_conn(3);
    let w = resume(&mut h, 4, "r", &w.resume_token, 0);
    assert_eq!(w.last_cseq, 4);
}

#[test]
fn unnumbered_messages_are_never_dropped_and_numbers_may_skip() {
    let mut h = Harness::new(HubConfig::default());
    h.join(1, "r", "Ada");
    h.send(1, chat("same"));
    h.send(1, chat("same"));
    assert_eq!(texts(&h.take(1)), ["same", "same"]);
    numbered(&mut h, 1, chat("five"), 5);
    numbered(&mut h, 1, chat("ten"), 10);
    numbered(&mut h, 1, chat("seven"), 7);
    h.send(1, chat("plain"));
    assert_eq!(texts(&h.take(1)), ["five", "ten", "plain"]);
    assert_eq!(pong_cseq(&mut h, 1), Some(10));
}

#[test]
fn cseq_rules_zero_errors_ping_join_and_fresh_sessions() {
    let mut h = Harness::new(HubConfig::default());
    h.connect(1);
    // Before a join there is no session: no last_cseq, and a numbered message is not_joined.
    assert_eq!(pong_cseq(&mut h, 1), None);
    numbered(&mut h, 1, chat("early"), 1);
    assert_eq!(h.take_error(1), ErrorCode::NotJoined);
    h.hub.message(h.now, ConnId(1), ClientFrame::numbered(ClientMessage::Join(Join::new("r", "Ada")), 9));
    h.pump();
    assert!(matches!(h.take(1).as_slice(), [ServerMessage::Welcome(w)] if w.last_cseq == 0));
    // cseq 0 would be a duplicate forever: refused.
    numbered(&mut h, 1, chat("zero"), 0);
    assert_eq!(h.take_error(1), ErrorCode::InvalidField);
    // A ping's cseq is ignored.
    numbered(&mut h, 1, ClientMessage::Ping { nonce: 2 }, 50);
    assert!(matches!(h.take(1).as_slice(), [ServerMessage::Pong { last_cseq: Some(0), .. }]));
    // A message answered with an error is taken all the same: resending it changes nothing.
    let nobody = PeerId::from("pnobody");
    numbered(&mut h, 1, ClientMessage::Offer { to: nobody.clone(), sdp: "v=0".into() }, 1);
    assert_eq!(h.take_error(1), ErrorCode::PeerNotFound);
    numbered(&mut h, 1, ClientMessage::Offer { to: nobody, sdp: "v=0".into() }, 1);
    assert!(h.take(1).is_empty());
    // A new session counts from 0 again.
    numbered(&mut h, 1, ClientMessage::Leave, 2);
    let w = h.join(1, "r", "Ada");
    assert_eq!(w.last_cseq, 0);
    numbered(&mut h, 1, chat("again"), 1);
    assert_eq!(texts(&h.take(1)), ["again"]);
}

#[test]
fn peer_error_is_relayed_to_the_addressee_only_and_held_while_it_reconnects() {
    let mut h = Harness::new(HubConfig::default());
    let a = h.join(1, "r", "Ada");
    let b = h.join(2, "r", "Bob");
    h.join(3, "r", "Cy");
    h.take(1);
    h.take(2);
    let pe = |to: &PeerId, code: &str| ClientMessage::PeerError {
        to: to.clone(),
        code: code.into(),
        message: "your client offers no H.264 (packetization-mode=1)".into(),
    };
    h.send(1, pe(&b.peer_id, "no_common_codec"));
    assert_eq!(
        h.take(2),
        [ServerMessage::PeerError {
            from: a.peer_id.clone(),
            code: "no_common_codec".into(),
            message: "your client offers no H.264 (packetization-mode=1)".into(),
        }]
    );
    assert!(h.take(1).is_empty() && h.take(3).is_empty());
    // Held for a peer that is reconnecting, delivered after its welcome.
    h.drop_conn(2);
    h.take(1);
    h.send(1, pe(&b.peer_id, "negotiation_failed"));
    assert!(h.take(1).is_empty());
    h.connect(4);
    let mut j = Join::new("r", "Bob");
    j.resume = Some(hearth_proto::Resume { token: b.resume_token.clone(), last_seq: 0 });
    h.send(4, ClientMessage::Join(j));
    let got = h.take(4);
    assert!(
        matches!(&got[..], [ServerMessage::Welcome(_), ServerMessage::PeerError { code, .. }] if code == "negotiation_failed"),
        "{got:?}"
    );
    // Checked like any message.
    h.take(1);
    h.send(1, pe(&b.peer_id, "Bad Code"));
    assert_eq!(h.take_error(1), ErrorCode::InvalidField);
    h.send(1, pe(&PeerId::from("pnobody"), "negotiation_failed"));
    assert_eq!(h.take_error(1), ErrorCode::PeerNotFound);
}

#[derive(Debug, Clone)]
enum Step {
    /// Send the next numbered chat (lost if the connection is dead and the client not yet told).
    Send,
    /// The connection drops.
    Drop,
    /// Resume on a new connection and resend every kept message, even those the welcome says
    /// arrived (the server must drop those).
    Resume,
    /// Ping, and forget the kept messages the pong confirms.
    Ping,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![4 => Just(Step::Send), 1 => Just(Step::Drop), 1 => Just(Step::Resume), 1 => Just(Step::Ping)]
}

proptest::proptest! {
    #[test]
    fn a_client_that_resends_what_it_kept_delivers_each_message_exactly_once(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let mut h = Harness::new(HubConfig::default());
        h.join(1, "r", "Ada");
        let bob = h.join(2, "r", "Bob");
        let (mut token, mut conn, mut live, mut next_conn) = (bob.resume_token, 2, true, 3);
        let (mut next_cseq, mut kept) = (1u64, Vec::<u64>::new());
        for step in steps.iter().chain([Step::Drop, Step::Resume].iter()) {
            match step {
                Step::Send => {
                    let cseq = next_cseq;
                    next_cseq += 1;
                    kept.push(cseq);
                    numbered(&mut h, conn, chat(&cseq.to_string()), cseq);
                }
                Step::Drop if live => {
                    h.drop_conn(conn);
                    live = false;
                }
                Step::Resume if !live => {
                    conn = next_conn;
                    next_conn += 1;
                    let w = resume(&mut h, conn, "r", &token, 0);
                    proptest::prop_assert!(w.last_cseq < next_cseq);
                    token = w.resume_token;
                    live = true;
                    for cseq in kept.clone() {
                        numbered(&mut h, conn, chat(&cseq.to_string()), cseq);
                    }
                }
                Step::Ping if live => {
                    if let Some(confirmed) = pong_cseq(&mut h, conn) {
                        kept.retain(|c| *c > confirmed);
                    }
                }
                _ => {}
            }
        }
        let got: Vec<u64> = texts(&h.take(1)).iter().map(|t| t.parse().unwrap()).collect();
        proptest::prop_assert_eq!(got, (1..next_cseq).collect::<Vec<_>>());
    }
}
