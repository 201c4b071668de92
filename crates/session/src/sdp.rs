//! The codec check of the media contract (docs/protocol.md, "Codecs"): a remote description
//! whose audio or video has no codec Hearth can use is refused with a `peer_error` the other
//! side can show, instead of failing silently.
//!
//! Only what the check needs is parsed: m-lines, `a=rtpmap` and `a=fmtp`. Any text is accepted
//! as input (it comes from the network): unparsable lines are skipped.

/// The session id of an SDP's origin line (`o=<user> <session id> <version> ...`). JSEP keeps
/// it for every description of one peer connection, so an offer with a different one comes from
/// a new peer connection (the peer rebuilt its link). `None` without a well-formed `o=` line.
pub fn session_id(sdp: &str) -> Option<&str> {
    let origin = sdp.lines().find_map(|l| l.trim_end_matches('\r').strip_prefix("o="))?;
    let id = origin.split_ascii_whitespace().nth(1)?;
    (!id.is_empty() && id.len() <= 64).then_some(id)
}

/// Why `sdp` cannot be used, for people ("your client offers no H.264 ..."), or `None` when
/// every active audio and video m-line has a codec Hearth decodes (Opus; H.264 with
/// packetization-mode=1).
pub fn unusable_codecs(sdp: &str) -> Option<String> {
    let mut problems = Vec::new();
    for section in media_sections(sdp) {
        let (needed, ok) = match section.kind.as_str() {
            "video" => ("H.264 (packetization-mode=1)", section.has_h264_mode1()),
            "audio" => ("Opus", section.has_opus()),
            _ => continue,
        };
        if section.port_zero || ok {
            continue;
        }
        let offered = section.codec_names();
        let offered = if offered.is_empty() { "no codec".to_owned() } else { offered.join(", ") };
        let problem = format!("your client offers no {needed} for {} (it offers {offered})", section.kind);
        if !problems.contains(&problem) {
            problems.push(problem);
        }
    }
    (!problems.is_empty()).then(|| format!("{}; Hearth needs H.264 and Opus", problems.join("; ")))
}

#[derive(Debug, Default)]
struct Section {
    kind: String,
    port_zero: bool,
    payload_types: Vec<String>,
    /// (payload type, encoding name lowercased, clock rate)
    rtpmaps: Vec<(String, String, String)>,
    /// (payload type, parameters lowercased)
    fmtps: Vec<(String, String)>,
}

impl Section {
    fn codec_of(&self, pt: &str) -> Option<&(String, String, String)> {
        self.rtpmaps.iter().find(|(p, _, _)| p == pt)
    }

    fn has_opus(&self) -> bool {
        self.payload_types
            .iter()
            .any(|pt| self.codec_of(pt).is_some_and(|(_, name, rate)| name == "opus" && rate == "48000"))
    }

    fn has_h264_mode1(&self) -> bool {
        self.payload_types.iter().any(|pt| {
            self.codec_of(pt).is_some_and(|(_, name, rate)| name == "h264" && rate == "90000")
                && self.fmtps.iter().any(|(p, params)| {
                    p == pt
                        && params.split(';').any(|kv| {
                            let mut it = kv.splitn(2, '=');
                            it.next().map(str::trim) == Some("packetization-mode")
                                && it.next().map(str::trim) == Some("1")
                        })
                })
        })
    }

    /// Names of the codecs offered, as sent, without repetition (rtx, red, ulpfec excluded).
    fn codec_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for pt in &self.payload_types {
            if let Some((_, name, _)) = self.codec_of(pt)
                && !matches!(name.as_str(), "rtx" | "red" | "ulpfec" | "flexfec-03")
            {
                let upper = name.to_uppercase();
                if !names.contains(&upper) {
                    names.push(upper);
                }
            }
        }
        names
    }
}

fn media_sections(sdp: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let kind = parts.next().unwrap_or("").to_ascii_lowercase();
            let port_zero = parts.next().is_some_and(|p| p == "0");
            let _proto = parts.next();
            sections.push(Section {
                kind,
                port_zero,
                payload_types: parts.map(str::to_owned).collect(),
                ..Section::default()
            });
            continue;
        }
        let Some(section) = sections.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let mut it = rest.splitn(2, char::is_whitespace);
            let (Some(pt), Some(enc)) = (it.next(), it.next()) else { continue };
            let mut enc = enc.trim().split('/');
            let name = enc.next().unwrap_or("").to_ascii_lowercase();
            let rate = enc.next().unwrap_or("").to_owned();
            section.rtpmaps.push((pt.to_owned(), name, rate));
        } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
            let mut it = rest.splitn(2, char::is_whitespace);
            let (Some(pt), Some(params)) = (it.next(), it.next()) else { continue };
            section.fmtps.push((pt.to_owned(), params.trim().to_ascii_lowercase()));
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEARTH: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

    #[test]
    fn hearth_and_browser_offers_are_usable() {
        assert_eq!(unusable_codecs(HEARTH), None);
        let chrome = "m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n\
            a=rtpmap:103 H264/90000\r\na=fmtp:103 level-asymmetry-allowed=1; packetization-mode=0;profile-level-id=42001f\r\n\
            a=rtpmap:104 H264/90000\r\na=fmtp:104 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert_eq!(unusable_codecs(chrome), None);
        // A rejected m-line (port 0) needs no codec; an audio-only client is fine.
        assert_eq!(unusable_codecs("m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"), None);
        assert_eq!(unusable_codecs("m=audio 9 RTP/SAVPF 111\na=rtpmap:111 OPUS/48000/2\n"), None);
    }

    #[test]
    fn missing_h264_or_opus_is_named() {
        let vp8_only = "m=audio 9 X 111\r\na=rtpmap:111 opus/48000/2\r\nm=video 9 X 96 97\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n";
        let why = unusable_codecs(vp8_only).unwrap();
        assert!(why.contains("no H.264 (packetization-mode=1) for video (it offers VP8)"), "{why}");
        let mode0 = "m=video 9 X 103\r\na=rtpmap:103 H264/90000\r\na=fmtp:103 packetization-mode=0\r\n";
        assert!(unusable_codecs(mode0).unwrap().contains("it offers H264"));
        let pcmu = "m=audio 9 X 0\r\na=rtpmap:0 PCMU/8000\r\n";
        assert!(unusable_codecs(pcmu).unwrap().contains("no Opus for audio (it offers PCMU)"));
        assert!(unusable_codecs("m=video 9 X 96\r\n").unwrap().contains("it offers no codec"));
    }

    #[test]
    fn arbitrary_text_never_panics() {
        for s in [
            "",
            "m=",
            "m=video",
            "a=rtpmap:",
            "a=fmtp:1",
            "m=video 9\na=rtpmap:x",
            "\u{0}\u{ffff}m=audio 1 2 3",
        ] {
            let _ = unusable_codecs(s);
        }
    }

    #[test]
    fn the_origin_session_id_is_read_and_junk_is_none() {
        let sdp = "v=0\r\no=- 4215775240449105457 2 IN IP4 127.0.0.1\r\ns=-\r\n";
        assert_eq!(session_id(sdp), Some("4215775240449105457"));
        assert_eq!(session_id("v=0\no=-\n"), None);
        assert_eq!(session_id(""), None);
        assert_eq!(session_id("o=a b"), Some("b"));
        assert_eq!(session_id(&format!("o=a {}", "9".repeat(65))), None);
    }
}
