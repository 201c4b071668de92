use super::*;
use proptest::prelude::*;

#[test]
fn join_wire_format_is_stable() {
    let json = r#"{"type":"join","protocol":1,"room":"standup","name":"Ada"}"#;
    let msg = decode_client(json).unwrap();
    assert_eq!(msg, ClientMessage::Join(Join::new("standup", "Ada")));
    assert_eq!(
        encode(&msg),
        r#"{"type":"join","protocol":1,"room":"standup","name":"Ada","media":{"audio_muted":false,"video_off":false,"screen_sharing":false}}"#
    );
}

#[test]
fn spec_examples_decode() {
    // Every example in docs/protocol.md, client side then server side.
    let spec = include_str!("../../docs/protocol.md");
    let mut client = 0;
    let mut server = 0;
    for line in spec.lines() {
        let line = line.trim();
        if let Some(json) = line.strip_prefix("C> ") {
            decode_client(json).unwrap_or_else(|e| panic!("spec example {json}: {e}"));
            client += 1;
        } else if let Some(json) = line.strip_prefix("S> ") {
            decode_server(json).unwrap_or_else(|e| panic!("spec example {json}: {e}"));
            server += 1;
        }
    }
    assert!(client >= ClientMessage::TYPES.len(), "spec shows {client} client examples");
    assert!(server >= SERVER_TYPES.len(), "spec shows {server} server examples");
}

#[test]
fn spec_shows_every_type_and_error_code() {
    let spec = include_str!("../../docs/protocol.md");
    for t in ClientMessage::TYPES.iter().chain(SERVER_TYPES) {
        assert!(spec.contains(&format!("\"type\":\"{t}\"")), "spec lacks an example of {t}");
    }
    for code in ALL_CODES {
        assert!(spec.contains(&format!("`{}`", code.as_str())), "spec lacks error code {code}");
    }
}

const ALL_CODES: &[ErrorCode] = &[
    ErrorCode::MalformedJson,
    ErrorCode::MissingType,
    ErrorCode::UnknownType,
    ErrorCode::InvalidMessage,
    ErrorCode::InvalidField,
    ErrorCode::VersionMismatch,
    ErrorCode::NotJoined,
    ErrorCode::AlreadyJoined,
    ErrorCode::RoomFull,
    ErrorCode::PasswordRequired,
    ErrorCode::WrongPassword,
    ErrorCode::TooManyAttempts,
    ErrorCode::TokenRequired,
    ErrorCode::TokenInvalid,
    ErrorCode::TokenExpired,
    ErrorCode::TokenNotYetValid,
    ErrorCode::TokenWrongRoom,
    ErrorCode::PeerNotFound,
    ErrorCode::PeerUnavailable,
    ErrorCode::RateLimited,
    ErrorCode::ResumeFailed,
    ErrorCode::ServerFull,
    ErrorCode::ShuttingDown,
    ErrorCode::Internal,
];

#[test]
fn error_code_names_match_serde() {
    for code in ALL_CODES {
        assert_eq!(serde_json::to_string(code).unwrap(), format!("\"{}\"", code.as_str()));
    }
}

#[test]
fn type_names_match_serde() {
    let samples = sample_client_messages();
    assert_eq!(samples.len(), ClientMessage::TYPES.len());
    for msg in samples {
        let v: serde_json::Value = serde_json::from_str(&encode(&msg)).unwrap();
        assert_eq!(v["type"], msg.type_name());
        assert!(ClientMessage::TYPES.contains(&msg.type_name()));
    }
}

fn sample_client_messages() -> Vec<ClientMessage> {
    let to = PeerId::from("p1");
    vec![
        ClientMessage::Join(Join::new("r", "n")),
        ClientMessage::Leave,
        ClientMessage::Offer { to: to.clone(), sdp: "v=0".into() },
        ClientMessage::Answer { to: to.clone(), sdp: "v=0".into() },
        ClientMessage::IceCandidate { to: to.clone(), candidate: None },
        ClientMessage::MediaState { state: MediaState::default() },
        ClientMessage::Chat { text: "hi".into(), to: None },
        ClientMessage::Reaction { emoji: "👍".into() },
        ClientMessage::RaiseHand { raised: true },
        ClientMessage::Ping { nonce: 7 },
        ClientMessage::CallReport { peer: to, outcome: CallOutcome::Connected, connect_ms: Some(80) },
    ]
}

#[test]
fn decode_errors_are_classified() {
    assert!(matches!(decode_client("{not json"), Err(DecodeError::MalformedJson(_))));
    assert!(matches!(decode_client(""), Err(DecodeError::MalformedJson(_))));
    assert_eq!(decode_client("[1,2]"), Err(DecodeError::MissingType));
    assert_eq!(decode_client(r#"{"type":5}"#), Err(DecodeError::MissingType));
    assert_eq!(decode_client(r#"{"room":"x"}"#), Err(DecodeError::MissingType));
    assert_eq!(decode_client(r#"{"type":"teleport"}"#), Err(DecodeError::UnknownType("teleport".into())));
    let err = decode_client(r#"{"type":"join","protocol":"one","room":"r","name":"n"}"#).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidMessage);
    assert_eq!(err.type_name(), Some("join"));
    let err = decode_client(r#"{"type":"chat"}"#).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidMessage);
    // A server message type is not a client message type.
    assert_eq!(decode_client(r#"{"type":"welcome"}"#), Err(DecodeError::UnknownType("welcome".into())));
}

#[test]
fn unknown_fields_are_ignored_for_forward_compatibility() {
    let msg = decode_client(r#"{"type":"ping","nonce":1,"future_field":true}"#).unwrap();
    assert_eq!(msg, ClientMessage::Ping { nonce: 1 });
}

#[test]
fn validation_limits() {
    let mut j = Join::new("room", "Ada");
    assert!(ClientMessage::Join(j.clone()).validate().is_ok());
    j.name = "   ".into();
    assert_eq!(ClientMessage::Join(j.clone()).validate().unwrap_err().field, "name");
    j.name = "x".repeat(Limits::DISPLAY_NAME_MAX + 1);
    assert_eq!(ClientMessage::Join(j.clone()).validate().unwrap_err().field, "name");
    j.name = "a\u{7}b".into();
    assert!(ClientMessage::Join(j.clone()).validate().is_err());
    j.name = "Zoë 🌟".into();
    assert!(ClientMessage::Join(j.clone()).validate().is_ok());
    j.room = String::new();
    assert_eq!(ClientMessage::Join(j).validate().unwrap_err().field, "room");

    let chat = |t: &str| ClientMessage::Chat { text: t.into(), to: None };
    assert!(chat("multi\nline").validate().is_ok());
    assert!(chat(" ").validate().is_err());
    assert!(chat(&"é".repeat(Limits::CHAT_TEXT_MAX)).validate().is_ok());
    assert!(chat(&"é".repeat(Limits::CHAT_TEXT_MAX + 1)).validate().is_err());
    let offer = ClientMessage::Offer { to: PeerId(String::new()), sdp: "v=0".into() };
    assert_eq!(offer.validate().unwrap_err().field, "to");
}

fn text() -> impl Strategy<Value = String> {
    // Arbitrary unicode, including quotes, escapes and control characters.
    any::<String>()
}

fn peer() -> impl Strategy<Value = PeerId> {
    "[a-z0-9]{1,12}".prop_map(PeerId)
}

fn media() -> impl Strategy<Value = MediaState> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(a, v, s)| MediaState {
        audio_muted: a,
        video_off: v,
        screen_sharing: s,
    })
}

fn candidate() -> impl Strategy<Value = Option<IceCandidate>> {
    proptest::option::of((text(), proptest::option::of(text()), proptest::option::of(any::<u16>())).prop_map(
        |(candidate, sdp_mid, sdp_mline_index)| IceCandidate { candidate, sdp_mid, sdp_mline_index },
    ))
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (
            any::<u32>(),
            text(),
            text(),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of((text(), any::<u64>())),
            media()
        )
            .prop_map(|(protocol, room, name, password, token, resume, media)| {
                ClientMessage::Join(Join {
                    protocol,
                    room,
                    name,
                    password,
                    token,
                    resume: resume.map(|(token, last_seq)| Resume { token, last_seq }),
                    media,
                })
            }),
        Just(ClientMessage::Leave),
        (peer(), text()).prop_map(|(to, sdp)| ClientMessage::Offer { to, sdp }),
        (peer(), text()).prop_map(|(to, sdp)| ClientMessage::Answer { to, sdp }),
        (peer(), candidate()).prop_map(|(to, candidate)| ClientMessage::IceCandidate { to, candidate }),
        media().prop_map(|state| ClientMessage::MediaState { state }),
        (text(), proptest::option::of(peer())).prop_map(|(text, to)| ClientMessage::Chat { text, to }),
        text().prop_map(|emoji| ClientMessage::Reaction { emoji }),
        any::<bool>().prop_map(|raised| ClientMessage::RaiseHand { raised }),
        any::<u64>().prop_map(|nonce| ClientMessage::Ping { nonce }),
        (peer(), any::<bool>(), proptest::option::of(any::<u64>())).prop_map(|(peer, ok, connect_ms)| {
            ClientMessage::CallReport {
                peer,
                outcome: if ok { CallOutcome::Connected } else { CallOutcome::Failed },
                connect_ms,
            }
        }),
    ]
}

fn chat_message() -> impl Strategy<Value = ChatMessage> {
    (text(), any::<u64>(), any::<u64>(), peer(), text(), proptest::option::of(peer()), text()).prop_map(
        |(id, seq, ts_ms, from, from_name, to, text)| ChatMessage {
            id,
            seq,
            ts_ms,
            from,
            from_name,
            to,
            text,
        },
    )
}

fn peer_info() -> impl Strategy<Value = PeerInfo> {
    (peer(), text(), media(), any::<bool>(), any::<bool>()).prop_map(
        |(id, name, media, hand_raised, reconnecting)| PeerInfo {
            id,
            name,
            media,
            hand_raised,
            reconnecting,
        },
    )
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        (
            peer(),
            text(),
            proptest::collection::vec(peer_info(), 0..4),
            proptest::collection::vec(chat_message(), 0..4),
            text(),
            any::<bool>()
        )
            .prop_map(|(peer_id, name, peers, history, resume_token, resumed)| {
                ServerMessage::Welcome(Welcome {
                    protocol: PROTOCOL_VERSION,
                    room: "r".into(),
                    peer_id,
                    name,
                    peers,
                    ice_servers: vec![IceServer {
                        urls: vec!["turn:127.0.0.1:3478".into()],
                        username: Some("1:u".into()),
                        credential: Some("c".into()),
                    }],
                    history,
                    resume_token,
                    resume_grace_ms: 30_000,
                    resumed,
                    limits: ServerLimits {
                        max_message_bytes: 65536,
                        max_room_size: 8,
                        rate_per_sec: 20,
                        rate_burst: 60,
                    },
                })
            }),
        peer_info().prop_map(|peer| ServerMessage::PeerJoined { peer }),
        peer().prop_map(|peer_id| ServerMessage::PeerLeft { peer_id, reason: LeaveReason::Timeout }),
        peer().prop_map(|peer_id| ServerMessage::PeerReconnecting { peer_id }),
        peer().prop_map(|peer_id| ServerMessage::PeerReconnected { peer_id }),
        (peer(), text()).prop_map(|(from, sdp)| ServerMessage::Offer { from, sdp }),
        (peer(), text()).prop_map(|(from, sdp)| ServerMessage::Answer { from, sdp }),
        (peer(), candidate()).prop_map(|(from, candidate)| ServerMessage::IceCandidate { from, candidate }),
        (peer(), media()).prop_map(|(peer_id, state)| ServerMessage::MediaState { peer_id, state }),
        chat_message().prop_map(|message| ServerMessage::Chat { message }),
        (peer(), text(), any::<u64>()).prop_map(|(from, emoji, ts_ms)| ServerMessage::Reaction {
            from,
            emoji,
            ts_ms
        }),
        (peer(), any::<bool>()).prop_map(|(peer_id, raised)| ServerMessage::RaiseHand { peer_id, raised }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(nonce, server_time_ms)| ServerMessage::Pong { nonce, server_time_ms }),
        (text(), proptest::option::of(text())).prop_map(|(message, r)| ServerMessage::Error {
            code: ErrorCode::RoomFull,
            message,
            ref_type: r
        }),
        (text(), any::<u64>())
            .prop_map(|(reason, retry_after_ms)| ServerMessage::Shutdown { reason, retry_after_ms }),
    ]
}

proptest! {
    #[test]
    fn client_messages_round_trip(msg in client_message()) {
        prop_assert_eq!(decode_client(&encode(&msg)).unwrap(), msg);
    }

    #[test]
    fn server_messages_round_trip(msg in server_message()) {
        prop_assert_eq!(decode_server(&encode(&msg)).unwrap(), msg);
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(s in any::<String>()) {
        let _ = decode_client(&s);
        let _ = decode_server(&s);
    }

    #[test]
    fn validation_never_panics(msg in client_message()) {
        let _ = msg.validate();
    }
}
