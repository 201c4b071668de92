//! Room and display names: kept trimmed and in NFC, and a display name that looks like a present
//! member's is refused.

use super::*;

fn join_error(h: &mut Harness, c: u64, room: &str, name: &str) -> (ErrorCode, String) {
    h.connect(c);
    h.send(c, ClientMessage::Join(Join::new(room, name)));
    match h.take(c).as_slice() {
        [ServerMessage::Error { code, message, .. }] => (*code, message.clone()),
        other => panic!("expected one error, got {other:?}"),
    }
}

#[test]
fn room_names_are_trimmed_and_normalized_but_keep_their_case() {
    let mut h = Harness::new(HubConfig::default());
    let a = h.join(1, "  standup ", "Ada");
    assert_eq!(a.room, "standup");
    let b = h.join(2, "standup", "Bob");
    assert_eq!(b.peers.len(), 1, "\" standup \" and \"standup\" are one room");
    // Decomposed and composed forms of "café" are one room.
    let c = h.join(3, "cafe\u{301}", "Cy");
    assert_eq!(c.room, "caf\u{e9}");
    let d = h.join(4, "caf\u{e9}", "Di");
    assert_eq!(d.peers.len(), 1);
    // Case is kept: another room.
    let e = h.join(5, "Standup", "Eve");
    assert!(e.peers.is_empty());
    assert_eq!(h.hub.room_count(), 3);
}

#[test]
fn display_names_are_normalized_and_look_alikes_are_refused() {
    let mut h = Harness::new(HubConfig::default());
    let a = h.join(1, "r", " Zoe\u{308} ");
    assert_eq!(a.name, "Zo\u{eb}");
    h.join(2, "r", "Ace");
    let (code, message) = join_error(&mut h, 3, "r", "Zo\u{eb}");
    assert_eq!(code, ErrorCode::NameTaken);
    assert!(message.contains("already called"), "{message}");
    // All-Cyrillic "Асе" is one script, so it passes the name rules, but looks like "Ace".
    let (code, message) = join_error(&mut h, 4, "r", "\u{410}\u{441}\u{435}");
    assert_eq!(code, ErrorCode::NameTaken);
    assert!(message.contains("looks like \"Ace\""), "{message}");
    // Fullwidth letters, and l for I.
    h.join(5, "r", "Ilya");
    assert_eq!(join_error(&mut h, 6, "r", "llya").0, ErrorCode::NameTaken);
    assert_eq!(join_error(&mut h, 7, "r", "\u{FF21}ce").0, ErrorCode::NameTaken);
    // Latin with a Cyrillic letter is refused as mixed-script before anything else.
    assert_eq!(join_error(&mut h, 8, "r", "A\u{441}e").0, ErrorCode::InvalidField);
    // Case is not folded, and another room does not count.
    h.join(9, "r", "ace");
    h.join(10, "other", "Ace");
}

#[test]
fn a_reconnecting_member_keeps_its_name_until_it_is_gone() {
    let mut h = Harness::new(HubConfig::default());
    h.join(1, "r", "Ada");
    h.join(2, "r", "Bob");
    h.drop_conn(1);
    let (code, message) = join_error(&mut h, 3, "r", "Ada");
    assert_eq!(code, ErrorCode::NameTaken);
    assert!(message.contains("dropped") && message.contains("30 s"), "{message}");
    h.advance(HubConfig::default().resume_grace + Duration::from_secs(1));
    let w = h.join(3, "r", "Ada");
    assert_eq!(w.name, "Ada");
}

#[test]
fn a_room_token_name_obeys_the_name_rules_and_is_normalized() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let cfg =
        HubConfig { auth: JoinAuth::Jwt { secret: b"k".to_vec(), leeway_secs: 0 }, ..HubConfig::default() };
    let mut h = Harness::new(cfg);
    let tok = |name: &str| {
        encode(
            &Header::default(),
            &serde_json::json!({"room": "r", "name": name, "exp": 1_800_000_060u64}),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap()
    };
    let mut j = Join::new("r", "Ada");
    j.token = Some(tok("Ada\u{202E}nimda"));
    h.connect(1);
    h.send(1, ClientMessage::Join(j));
    assert_eq!(h.take_error(1), ErrorCode::TokenInvalid);
    let mut j = Join::new("r", "whatever");
    j.token = Some(tok(" Dr. Ada "));
    h.send(1, ClientMessage::Join(j));
    assert!(matches!(&h.take(1)[..], [ServerMessage::Welcome(w)] if w.name == "Dr. Ada"));
}
