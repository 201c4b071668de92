//! Scripted actions for `hearth-call join --at "SECS:ACTION"`: what a remote peer does during a
//! call (mute, share its screen, chat, ...), so UI tests can drive the app's view of it.
//!
//! `SECS` (seconds, a decimal number) counts from the moment the expected peers are connected
//! (from the join with `--expect-peers 0`). Specs are checked when the arguments are parsed
//! ([`parse_timed_action`], clap's value parser), with the protocol's own limits for chat text
//! and reactions, so a typo fails at once with exit code 2 instead of in the middle of a call.

use hearth_proto::{ClientMessage, validate_display_name};
use std::fmt;
use std::time::Duration;

/// One thing to do during the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Mute,
    Unmute,
    CameraOff,
    CameraOn,
    /// Share a screen (synthetic with `--synthetic`, else the real primary screen).
    ScreenOn,
    ScreenOff,
    HandUp,
    HandDown,
    React(String),
    /// A room chat message.
    Say(String),
    /// A private chat message to the peer with this display name.
    SayTo {
        name: String,
        text: String,
    },
    /// Leave the call now; the run ends as if its time were up.
    Leave,
}

/// The action names, for messages.
pub const ACTIONS: &str = "mute, unmute, camera-off, camera-on, screen-on, screen-off, hand-up, hand-down, \
                           react:EMOJI, say:TEXT, say-to:NAME:TEXT, leave";

impl fmt::Display for Action {
    /// The spec form (`mute`, `say:hello`, `say-to:bob:hi`), as parsed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Mute => f.write_str("mute"),
            Action::Unmute => f.write_str("unmute"),
            Action::CameraOff => f.write_str("camera-off"),
            Action::CameraOn => f.write_str("camera-on"),
            Action::ScreenOn => f.write_str("screen-on"),
            Action::ScreenOff => f.write_str("screen-off"),
            Action::HandUp => f.write_str("hand-up"),
            Action::HandDown => f.write_str("hand-down"),
            Action::React(e) => write!(f, "react:{e}"),
            Action::Say(t) => write!(f, "say:{t}"),
            Action::SayTo { name, text } => write!(f, "say-to:{name}:{text}"),
            Action::Leave => f.write_str("leave"),
        }
    }
}

/// An action and when to perform it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedAction {
    /// After the expected peers are connected (or after the join with `--expect-peers 0`).
    pub at: Duration,
    pub action: Action,
}

impl fmt::Display for TimedAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.at.as_secs_f64(), self.action)
    }
}

/// Parse `SECS:ACTION` (clap value parser for `--at`). The error says what is wrong and what
/// is accepted.
pub fn parse_timed_action(spec: &str) -> Result<TimedAction, String> {
    let Some((secs, action)) = spec.split_once(':') else {
        return Err(format!("expected SECS:ACTION (e.g. 2.5:mute), got {spec:?}"));
    };
    let secs = secs.trim();
    let at = secs
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("SECS must be a number of seconds, 0 or more (e.g. 2.5), got {secs:?}"))?;
    Ok(TimedAction { at, action: parse_action(action)? })
}

/// Parse the ACTION part of a spec.
pub fn parse_action(s: &str) -> Result<Action, String> {
    let (verb, arg) = match s.split_once(':') {
        Some((v, a)) => (v, Some(a)),
        None => (s, None),
    };
    let no_arg = |a: Action| match arg {
        None => Ok(a),
        Some(_) => Err(format!("action {verb:?} takes no argument, got {s:?}")),
    };
    let arg = |what: &str| {
        arg.ok_or_else(|| format!("action {verb:?} needs {what}: {verb}:{}", what.to_uppercase()))
    };
    match verb {
        "mute" => no_arg(Action::Mute),
        "unmute" => no_arg(Action::Unmute),
        "camera-off" => no_arg(Action::CameraOff),
        "camera-on" => no_arg(Action::CameraOn),
        "screen-on" => no_arg(Action::ScreenOn),
        "screen-off" => no_arg(Action::ScreenOff),
        "hand-up" => no_arg(Action::HandUp),
        "hand-down" => no_arg(Action::HandDown),
        "leave" => no_arg(Action::Leave),
        "react" => {
            let emoji = arg("emoji")?.to_owned();
            ClientMessage::Reaction { emoji: emoji.clone() }.validate().map_err(|e| format!("react: {e}"))?;
            Ok(Action::React(emoji))
        }
        "say" => {
            let text = arg("text")?.to_owned();
            check_chat(&text).map_err(|e| format!("say: {e}"))?;
            Ok(Action::Say(text))
        }
        "say-to" => {
            let Some((name, text)) = arg("name and text")?.split_once(':') else {
                return Err(format!(
                    "action \"say-to\" needs a name and a text: say-to:NAME:TEXT, got {s:?}"
                ));
            };
            validate_display_name(name).map_err(|e| format!("say-to: the name {name:?}: {e}"))?;
            check_chat(text).map_err(|e| format!("say-to: {e}"))?;
            Ok(Action::SayTo { name: name.to_owned(), text: text.to_owned() })
        }
        _ => Err(format!("unknown action {verb:?}; the actions are: {ACTIONS}")),
    }
}

fn check_chat(text: &str) -> Result<(), String> {
    ClientMessage::Chat { text: text.to_owned(), to: None }.validate().map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(spec: &str) -> (f64, Action) {
        let t = parse_timed_action(spec).unwrap();
        (t.at.as_secs_f64(), t.action)
    }

    fn err(spec: &str) -> String {
        parse_timed_action(spec).unwrap_err()
    }

    #[test]
    fn every_action_parses() {
        assert_eq!(at("1:mute"), (1.0, Action::Mute));
        assert_eq!(at("0:unmute"), (0.0, Action::Unmute));
        assert_eq!(at("2.5:camera-off"), (2.5, Action::CameraOff));
        assert_eq!(at(" 3 :camera-on"), (3.0, Action::CameraOn));
        assert_eq!(at("0.25:screen-on"), (0.25, Action::ScreenOn));
        assert_eq!(at("4:screen-off"), (4.0, Action::ScreenOff));
        assert_eq!(at("1:hand-up"), (1.0, Action::HandUp));
        assert_eq!(at("1:hand-down"), (1.0, Action::HandDown));
        assert_eq!(at("1:react:👍"), (1.0, Action::React("👍".into())));
        assert_eq!(at("9:leave"), (9.0, Action::Leave));
    }

    #[test]
    fn chat_text_keeps_its_colons_and_spaces() {
        assert_eq!(at("2:say:hello"), (2.0, Action::Say("hello".into())));
        assert_eq!(at("2:say:time is 10:30, ok?"), (2.0, Action::Say("time is 10:30, ok?".into())));
        assert_eq!(
            at("3:say-to:Ada Lovelace:see: this"),
            (3.0, Action::SayTo { name: "Ada Lovelace".into(), text: "see: this".into() })
        );
    }

    #[test]
    fn displays_as_parsed() {
        for spec in ["1:mute", "2.5:say:a:b", "0:say-to:bob:hi", "1:react:🎉", "7:leave"] {
            assert_eq!(parse_timed_action(spec).unwrap().to_string(), spec);
        }
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        assert!(err("mute").contains("expected SECS:ACTION"), "{}", err("mute"));
        assert!(err("soon:mute").contains("SECS must be a number"));
        assert!(err("-1:mute").contains("SECS must be a number"));
        assert!(err("nan:mute").contains("SECS must be a number"));
        assert!(err("inf:mute").contains("SECS must be a number"));
        assert!(err("1e30:mute").contains("SECS must be a number"));
        assert!(err(":mute").contains("SECS must be a number"));
        let e = err("1:dance");
        assert!(e.contains("unknown action \"dance\"") && e.contains("say-to:NAME:TEXT"), "{e}");
        assert!(err("1:").contains("unknown action \"\""));
        assert!(err("1:mute:now").contains("takes no argument"));
        assert!(err("1:leave:").contains("takes no argument"));
        assert!(err("1:say").contains("needs text: say:TEXT"), "{}", err("1:say"));
        assert!(err("1:say:").contains("say: field \"text\" must not be empty"), "{}", err("1:say:"));
        assert!(err("1:say:   ").contains("must not be empty"));
        assert!(err("1:say:a\u{1b}[2J").contains("control characters"));
        assert!(err(&format!("1:say:{}", "x".repeat(4001))).contains("at most 4000"));
        assert!(err("1:react").contains("needs emoji"));
        assert!(err("1:react:").contains("must not be empty"));
        assert!(err("1:react:this is far too long").contains("at most 16"));
        let e = err("1:say-to:bob");
        assert!(e.contains("say-to:NAME:TEXT"), "{e}");
        assert!(err("1:say-to").contains("needs name and text"));
        assert!(err("1:say-to::hi").contains("the name \"\""), "{}", err("1:say-to::hi"));
        assert!(err("1:say-to:bob:").contains("must not be empty"));
    }
}
