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
            let frame = decode_client_frame(json).unwrap_or_else(|e| panic!("spec example {json}: {e}"));
            frame.validate().unwrap_or_else(|e| panic!("spec example {json}: {e}"));
            assert_eq!(decode_client(json).unwrap(), frame.message, "spec example {json}");
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
    ErrorCode::NameTaken,
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
fn call_report_paths_are_strict() {
    let ok = r#"{"type":"call_report","peer":"p1","outcome":"connected","path":{"local":"relay","remote":"srflx","relay":"tls"}}"#;
    assert!(matches!(decode_client(ok), Ok(ClientMessage::CallReport { path: Some(_), .. })));
    let failed = r#"{"type":"call_report","peer":"p1","outcome":"failed","reason":"ice"}"#;
    assert!(matches!(decode_client(failed), Ok(ClientMessage::CallReport { reason: Some(CallFailure::Ice), .. })));
    let older = r#"{"type":"call_report","peer":"p1","outcome":"failed"}"#;
    assert!(matches!(decode_client(older), Ok(ClientMessage::CallReport { path: None, .. })));
    for bad in [
        r#"{"type":"call_report","peer":"p1","outcome":"connected","path":{"local":"tunnel","remote":"host"}}"#,
        r#"{"type":"call_report","peer":"p1","outcome":"connected","path":{"local":"relay","remote":"host","relay":"sctp"}}"#,
        r#"{"type":"call_report","peer":"p1","outcome":"connected","path":["relay","host"]}"#,
        r#"{"type":"call_report","peer":"p1","outcome":"failed","reason":"bad_luck"}"#,
    ] {
        assert!(decode_client(bad).is_err(), "{bad}");
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
        ClientMessage::CallReport {
            peer: to.clone(),
            outcome: CallOutcome::Connected,
            connect_ms: Some(80),
            path: Some(crate::CallPath {
                local: crate::CandidateType::Relay,
                remote: crate::CandidateType::Host,
                relay: Some(crate::RelayTransport::Tcp),
            }),
            reason: None,
        },
        ClientMessage::PeerError {
            to,
            code: peer_error_code::NO_COMMON_CODEC.into(),
            message: "your client offers no H.264 (packetization-mode=1)".into(),
        },
    ]
}

#[test]
fn decode_errors_are_classified() {
    assert!(matches!(decode_client("{not json"), Err(DecodeError::MalformedJson(_))));
    assert!(matches!(decode_client(""), Err(DecodeError::MalformedJson(_))));
    assert_eq!(decode_client("[1,2]"), Err(DecodeError::MissingType));
    // serde would take a tagged enum from an array whose first element is the tag.
    assert_eq!(decode_client(r#"["ping",5]"#), Err(DecodeError::MissingType));
    assert_eq!(decode_client(r#" ["leave"]"#), Err(DecodeError::MissingType));
    assert_eq!(decode_server(r#"["pong",1,2]"#), Err(DecodeError::MissingType));
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

/// Replace, one at a time, every JSON object below the top level of `json` by the array of its
/// values in order (what serde would accept in place of a struct), giving each variant.
fn objects_as_arrays(json: &serde_json::Value) -> Vec<serde_json::Value> {
    use serde_json::Value;
    fn walk(v: &Value, top: bool, rebuild: &dyn Fn(Value) -> Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(map) => {
                if !top {
                    out.push(rebuild(Value::Array(map.values().cloned().collect())));
                }
                for (k, child) in map {
                    let rebuild_child = |new: Value| {
                        let mut m = map.clone();
                        m.insert(k.clone(), new);
                        rebuild(Value::Object(m))
                    };
                    walk(child, false, &rebuild_child, out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    let rebuild_child = |new: Value| {
                        let mut a = items.clone();
                        a[i] = new;
                        rebuild(Value::Array(a))
                    };
                    walk(child, false, &rebuild_child, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(json, true, &|v| v, &mut out);
    out
}

#[test]
fn arrays_are_refused_where_objects_are_required() {
    let err = decode_client(r#"{"type":"media_state","state":[true,true,true]}"#).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidMessage);
    assert_eq!(err.type_name(), Some("media_state"));

    let mut join = Join::new("r", "n");
    join.resume = Some(Resume { token: "t".into(), last_seq: 3 });
    let mut clients = sample_client_messages();
    clients.push(ClientMessage::Join(join));
    clients.push(ClientMessage::IceCandidate {
        to: PeerId::from("p1"),
        candidate: Some(IceCandidate {
            candidate: "c".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        }),
    });
    let mut checked = 0;
    for msg in clients {
        let json: serde_json::Value = serde_json::from_str(&encode(&msg)).unwrap();
        for bad in objects_as_arrays(&json) {
            let text = bad.to_string();
            assert_eq!(decode_client(&text).map_err(|e| e.code()), Err(ErrorCode::InvalidMessage), "{text}");
            let framed = decode_client_frame(&text).map_err(|e| e.code());
            assert_eq!(framed, Err(ErrorCode::InvalidMessage), "{text}");
            checked += 1;
        }
        // The top level too, with and without a cseq.
        let top = serde_json::Value::Array(json.as_object().unwrap().values().cloned().collect());
        assert_eq!(decode_client(&top.to_string()), Err(DecodeError::MissingType));
        assert_eq!(decode_client_frame(&top.to_string()), Err(DecodeError::MissingType));
    }
    assert!(checked >= 5, "only {checked} nested objects checked");

    // Every nested object of the spec's server examples: welcome's peers, their media, ICE
    // servers, history and limits; peer_joined's peer; candidates; media states; chat messages.
    let spec = include_str!("../../docs/protocol.md");
    let mut checked = 0;
    for json in spec.lines().filter_map(|l| l.trim().strip_prefix("S> ")) {
        let json: serde_json::Value = serde_json::from_str(json).unwrap();
        for bad in objects_as_arrays(&json) {
            let text = bad.to_string();
            assert_eq!(decode_server(&text).map_err(|e| e.code()), Err(ErrorCode::InvalidMessage), "{text}");
            checked += 1;
        }
    }
    assert!(checked >= 11, "only {checked} nested server objects checked");
}

#[test]
fn cseq_is_read_from_the_frame_and_ignored_by_decode_client() {
    let chat = ClientMessage::Chat { text: "hi".into(), to: None };
    let text = r#"{"type":"chat","text":"hi","cseq":12}"#;
    assert_eq!(decode_client_frame(text).unwrap(), ClientFrame::numbered(chat.clone(), 12));
    assert_eq!(decode_client(text).unwrap(), chat);
    assert_eq!(
        decode_client_frame(r#"{"cseq":1,"type":"leave"}"#).unwrap(),
        ClientFrame::numbered(ClientMessage::Leave, 1)
    );
    assert_eq!(
        decode_client_frame(r#"{"type":"chat","text":"hi"}"#).unwrap(),
        ClientFrame::from(chat.clone())
    );
    assert_eq!(encode_numbered(&ClientMessage::Leave, 2), r#"{"type":"leave","cseq":2}"#);
    assert_eq!(encode(&ClientFrame::from(ClientMessage::Leave)), r#"{"type":"leave"}"#);
    for bad in [
        r#"{"type":"chat","text":"hi","cseq":-1}"#,
        r#"{"type":"chat","text":"hi","cseq":"3"}"#,
        r#"{"type":"chat","text":"hi","cseq":1.5}"#,
    ] {
        let err = decode_client_frame(bad).unwrap_err();
        assert_eq!((err.code(), err.type_name()), (ErrorCode::InvalidMessage, Some("chat")), "{bad}");
    }
    // Errors in the message itself are classified as without a cseq.
    assert_eq!(
        decode_client_frame(r#"{"type":"teleport","cseq":1}"#),
        Err(DecodeError::UnknownType("teleport".into()))
    );
    assert_eq!(decode_client_frame(r#"{"cseq":1}"#), Err(DecodeError::MissingType));
    assert_eq!(
        decode_client_frame(r#"{"type":"chat","cseq":1}"#).unwrap_err().code(),
        ErrorCode::InvalidMessage
    );
    // cseq 0 would read as a duplicate forever: refused. Join and ping are not numbered.
    assert_eq!(ClientFrame::numbered(chat.clone(), 0).validate().unwrap_err().field, "cseq");
    assert!(ClientFrame::numbered(chat, 1).validate().is_ok());
    assert!(ClientFrame::numbered(ClientMessage::Ping { nonce: 1 }, 0).validate().is_ok());
    assert!(!ClientMessage::Ping { nonce: 1 }.is_numbered());
    assert!(!ClientMessage::Join(Join::new("r", "n")).is_numbered());
    assert!(ClientMessage::Leave.is_numbered());
}

#[test]
fn chat_refuses_control_characters_but_line_feed_and_tab() {
    let chat = |t: &str| ClientMessage::Chat { text: t.into(), to: None };
    assert!(chat("line one\nline two\tend").validate().is_ok());
    for bad in ["nul\0", "esc \u{1b}[2J", "bell\u{7}", "cr\r\n", "del\u{7f}", "c1 \u{85}"] {
        let err = chat(bad).validate().unwrap_err();
        assert_eq!(err.field, "text", "{bad:?}");
        assert!(err.problem.contains("control"), "{bad:?}: {err}");
    }
}

fn join_named(room: &str, name: &str) -> Result<(), ValidationError> {
    ClientMessage::Join(Join::new(room, name)).validate()
}

#[test]
fn names_are_trimmed_and_normalized_case_is_kept() {
    assert_eq!(normalize_name("  sp \t"), "sp");
    assert_eq!(normalize_name("Zoe\u{308}"), "Zo\u{eb}");
    assert_eq!(normalize_name("Zo\u{eb}"), "Zo\u{eb}");
    assert_eq!(normalize_name("Standup"), "Standup");
    // Limits count the normalized form: 64 decomposed characters are 32 composed ones.
    assert!(join_named(&"e\u{301}".repeat(32), "n").is_ok());
    assert!(join_named(&format!("  {}  ", "r".repeat(Limits::ROOM_NAME_MAX)), "n").is_ok());
}

#[test]
fn names_refuse_invisible_and_direction_characters() {
    for c in [
        '\u{202A}',
        '\u{202E}',
        '\u{2066}',
        '\u{2069}',
        '\u{200E}',
        '\u{200F}',
        '\u{061C}',
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{2060}',
        '\u{FEFF}',
        '\u{00AD}',
        '\u{2028}',
        '\u{3164}',
        '\u{E0041}',
    ] {
        let name = format!("Ada{c}Bob");
        let err = join_named("r", &name).unwrap_err();
        assert_eq!(err.field, "name", "{name:?}");
        assert!(err.problem.contains(&format!("U+{:04X}", u32::from(c))), "{name:?}: {err}");
        assert_eq!(join_named(&name, "n").unwrap_err().field, "room", "{name:?}");
    }
    // Emoji sequences keep their joiners, variation selectors and tags.
    for ok in [
        "Ada 👩\u{200D}💻",
        "Grace 👩\u{1F3FD}\u{200D}🔬",
        "❤\u{FE0F}\u{200D}🔥",
        "🏳\u{FE0F}\u{200D}🌈 team",
        "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
        "✌\u{FE0F} Linus",
    ] {
        assert!(join_named("r", ok).is_ok(), "{ok:?}: {:?}", join_named("r", ok));
    }
    // A joiner outside an emoji sequence, or a tag outside a flag, hides something.
    for bad in ["Ada\u{200D}", "\u{200D}👩", "a\u{200D}👩", "👩\u{200D}b", "Ada\u{E0067}"] {
        assert!(join_named("r", bad).is_err(), "{bad:?}");
    }
    // Only invisible characters is not a name.
    assert!(join_named("r", "\u{3164}\u{3164}").is_err());
}

#[test]
fn names_use_one_script() {
    for ok in [
        "Ada",
        "Zoë 🌟",
        "Иван",
        "Ἀριστοτέλης",
        "田中さん",
        "Tanaka 田中",
        "김민준",
        "Kim 김민준",
        "李小龍",
        "R2-D2 (guest)",
        "محمد",
        "123",
    ] {
        assert!(join_named("r", ok).is_ok(), "{ok:?}: {:?}", join_named("r", ok));
    }
    // Latin with one Cyrillic letter (the second "а"), Latin and Greek, Cyrillic and Greek.
    for bad in ["Adа", "Pаul", "Ρaul", "Иван Ivan", "Иванα"] {
        let err = join_named("r", bad).unwrap_err();
        assert_eq!(err.field, "name", "{bad:?}");
        assert!(err.problem.contains("scripts"), "{bad:?}: {err}");
    }
    assert_eq!(join_named("stаndup", "n").unwrap_err().field, "room");
}

#[test]
fn look_alike_names_have_the_same_skeleton() {
    let same = |a: &str, b: &str| name_skeleton(a) == name_skeleton(b);
    assert!(same("Ada", " Ada "));
    assert!(same("Ace", "Асе")); // Latin, and all-Cyrillic
    assert!(same("Bob", "Ｂｏｂ")); // fullwidth
    assert!(same("Ilya", "llya"));
    assert!(same("Zoe\u{308}", "Zoë"));
    assert!(same("rn", "m"));
    assert!(!same("Ada", "Adam"));
    assert!(!same("Ada", "ada"));
}

#[test]
fn peer_error_limits() {
    let pe = |code: &str, message: &str| ClientMessage::PeerError {
        to: PeerId::from("p1"),
        code: code.into(),
        message: message.into(),
    };
    assert!(pe("no_common_codec", "your client offers no H.264 (packetization-mode=1)").validate().is_ok());
    assert!(pe(&"a".repeat(64), &"é".repeat(1000)).validate().is_ok());
    for bad_code in ["", "No_Codec", "no-codec", "no codec", &"a".repeat(65)] {
        assert_eq!(pe(bad_code, "m").validate().unwrap_err().field, "code", "{bad_code:?}");
    }
    for bad_message in ["", "two\nlines", &"é".repeat(1001)] {
        assert_eq!(pe("x", bad_message).validate().unwrap_err().field, "message", "{bad_message:?}");
    }
    let to_nobody =
        ClientMessage::PeerError { to: PeerId(String::new()), code: "x".into(), message: "m".into() };
    assert_eq!(to_nobody.validate().unwrap_err().field, "to");
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
        (peer(), any::<bool>(), proptest::option::of(any::<u64>()), any::<(u8, u8, u8)>()).prop_map(
            |(peer, ok, connect_ms, (l, r, t))| {
                let kinds = [crate::CandidateType::Host, crate::CandidateType::Srflx, crate::CandidateType::Prflx, crate::CandidateType::Relay];
                let relays = [None, Some(crate::RelayTransport::Udp), Some(crate::RelayTransport::Tcp), Some(crate::RelayTransport::Tls)];
                let path = (l % 5 < 4).then(|| crate::CallPath {
                    local: kinds[usize::from(l % 4)],
                    remote: kinds[usize::from(r % 4)],
                    relay: relays[usize::from(t % 4)],
                });
                ClientMessage::CallReport {
                    peer,
                    outcome: if ok { CallOutcome::Connected } else { CallOutcome::Failed },
                    connect_ms,
                    path,
                    reason: (!ok).then_some(if t % 2 == 0 { crate::CallFailure::Ice } else { crate::CallFailure::Timeout }),
                }
            },
        ),
        (peer(), text(), text()).prop_map(|(to, code, message)| ClientMessage::PeerError {
            to,
            code,
            message
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
            any::<bool>(),
            any::<u64>()
        )
            .prop_map(|(peer_id, name, peers, history, resume_token, resumed, last_cseq)| {
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
                    last_cseq,
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
        (any::<u64>(), any::<u64>(), proptest::option::of(any::<u64>())).prop_map(
            |(nonce, server_time_ms, last_cseq)| ServerMessage::Pong { nonce, server_time_ms, last_cseq }
        ),
        (peer(), text(), text()).prop_map(|(from, code, message)| ServerMessage::PeerError {
            from,
            code,
            message
        }),
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
    fn client_frames_round_trip(msg in client_message(), cseq in proptest::option::of(any::<u64>())) {
        let frame = ClientFrame { message: msg.clone(), cseq };
        prop_assert_eq!(decode_client_frame(&encode(&frame)).unwrap(), frame);
        if let Some(cseq) = cseq {
            let text = encode_numbered(&msg, cseq);
            prop_assert_eq!(decode_client_frame(&text).unwrap(), ClientFrame::numbered(msg.clone(), cseq));
            prop_assert_eq!(decode_client(&text).unwrap(), msg);
        }
    }

    #[test]
    fn server_messages_round_trip(msg in server_message()) {
        prop_assert_eq!(decode_server(&encode(&msg)).unwrap(), msg);
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(s in any::<String>()) {
        let _ = decode_client(&s);
        let _ = decode_client_frame(&s);
        let _ = decode_server(&s);
    }

    #[test]
    fn normalized_names_are_stable(s in any::<String>()) {
        let once = normalize_name(&s);
        prop_assert_eq!(normalize_name(&once), once.clone());
        prop_assert_eq!(name_skeleton(&s), name_skeleton(&once));
        prop_assert_eq!(validate_display_name(&s).is_ok(), validate_display_name(&once).is_ok());
    }

    #[test]
    fn validation_never_panics(msg in client_message()) {
        let _ = msg.validate();
    }
}
