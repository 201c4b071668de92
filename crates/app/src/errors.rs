//! Every failure becomes a [`UiError`]: what happened, and what to do about it.

use crate::api::{ErrorKind, UiError};
use hearth_engine::EngineError;
use hearth_proto::ErrorCode;

pub fn ui(kind: ErrorKind, title: &str, message: &str, detail: impl Into<String>) -> UiError {
    UiError { kind, title: title.into(), message: message.into(), detail: detail.into() }
}

/// Why `join` failed.
pub fn from_engine(e: &EngineError, embedded: bool) -> UiError {
    let detail = e.to_string();
    match e {
        EngineError::Connect { url, .. } if embedded => ui(
            ErrorKind::ServerUnreachable,
            "The local server did not answer",
            "Hearth could not reach its own server on this computer. Quit other Hearth windows or restart the app, then try again.",
            format!("{url}: {detail}"),
        ),
        EngineError::Connect { .. } => ui(
            ErrorKind::ServerUnreachable,
            "Cannot reach the server",
            "Check the server address and your internet connection, then try again. Leave the server field empty to call on this computer.",
            detail,
        ),
        EngineError::BadUrl { .. } => ui(
            ErrorKind::BadServerUrl,
            "That server address is not valid",
            "Use an address like wss://call.example.org (ask the server's admin), or leave it empty for the local server.",
            detail,
        ),
        EngineError::JoinRefused { code, message } => from_code(*code, message),
        EngineError::Rtc(_) | EngineError::Stopped => ui(
            ErrorKind::Internal,
            "The call could not start",
            "Try again. If it keeps happening, save diagnostics (⋯ menu) and report it.",
            detail,
        ),
        _ => ui(ErrorKind::Internal, "Something went wrong", "Try again.", detail),
    }
}

/// A refusal from the server.
pub fn from_code(code: ErrorCode, server_message: &str) -> UiError {
    let d = format!("{}: {server_message}", code.as_str());
    match code {
        ErrorCode::WrongPassword => ui(
            ErrorKind::WrongPassword,
            "Wrong password",
            "This room is locked. Check the password with whoever invited you and try again.",
            d,
        ),
        ErrorCode::PasswordRequired => ui(
            ErrorKind::PasswordRequired,
            "This room needs a password",
            "Enter the room's password (ask whoever invited you) and join again.",
            d,
        ),
        ErrorCode::TooManyAttempts => ui(
            ErrorKind::TooManyAttempts,
            "Too many wrong passwords",
            "Wait a minute before trying again, and check the password first.",
            d,
        ),
        ErrorCode::RoomFull => ui(
            ErrorKind::RoomFull,
            "The room is full",
            "The room has as many people as the server allows. Try again later or use another room.",
            d,
        ),
        ErrorCode::ServerFull => ui(
            ErrorKind::RoomFull,
            "The server is full",
            "The server has as many connections as it allows. Try again in a few minutes.",
            d,
        ),
        ErrorCode::TokenRequired
        | ErrorCode::TokenInvalid
        | ErrorCode::TokenExpired
        | ErrorCode::TokenNotYetValid
        | ErrorCode::TokenWrongRoom => ui(
            ErrorKind::TokenRefused,
            "The server did not accept your access token",
            "This server only admits invited people. Ask its admin for a fresh invite link or token.",
            d,
        ),
        ErrorCode::VersionMismatch => ui(
            ErrorKind::VersionMismatch,
            "This app and the server are different versions",
            "Update Hearth (or ask the server's admin to update the server), then join again.",
            d,
        ),
        ErrorCode::NameTaken => ui(
            ErrorKind::NameTaken,
            "Someone in the room already has that name",
            "Pick another display name (or add an initial) and join again.",
            d,
        ),
        ErrorCode::InvalidField | ErrorCode::InvalidMessage => ui(
            ErrorKind::InvalidInput,
            "The server did not accept the name or room",
            "Use a shorter name or room without unusual characters, and try again.",
            d,
        ),
        ErrorCode::ShuttingDown => ui(
            ErrorKind::ServerUnreachable,
            "The server is restarting",
            "Try again in a few seconds.",
            d,
        ),
        _ => ui(ErrorKind::Internal, "The server refused", "Try again. If it keeps happening, tell the server's admin.", d),
    }
}

/// A device problem: which device, what kind of problem.
pub fn device(kind: hearth_engine::TrackKind, problem: hearth_engine::DeviceProblem, detail: &str) -> UiError {
    use hearth_engine::DeviceProblem as P;
    use hearth_engine::TrackKind as T;
    let detail = detail.to_string();
    match (kind, problem) {
        (T::Camera, P::Missing) => ui(
            ErrorKind::CameraMissing,
            "No camera found",
            "Connect a camera, or join with the camera off (others will see your initials). The Test pattern works without one.",
            detail,
        ),
        (T::Camera, P::Busy) => ui(
            ErrorKind::CameraBusy,
            "The camera is in use",
            "Another app is using the camera. Close it (or pick another camera) and turn the camera on again.",
            detail,
        ),
        (T::Camera, P::Denied) => ui(
            ErrorKind::CameraDenied,
            "Hearth may not use the camera",
            "Allow camera access for Hearth in your system's privacy settings (on Linux: add yourself to the 'video' group), then turn the camera on again.",
            detail,
        ),
        (T::Camera, _) => ui(
            ErrorKind::CameraLost,
            "The camera stopped",
            "It may have been unplugged. Reconnect it or pick another camera, then turn the camera on again.",
            detail,
        ),
        (T::Audio, P::Missing) => ui(
            ErrorKind::NoMicrophone,
            "No microphone found",
            "Connect a microphone or headset, then pick it in the microphone list. Others cannot hear you until then.",
            detail,
        ),
        (T::Audio, P::Busy) => ui(
            ErrorKind::MicrophoneBusy,
            "The microphone is in use",
            "Another app holds the microphone. Close it or pick another microphone.",
            detail,
        ),
        (T::Audio, P::Denied) => ui(
            ErrorKind::MicrophoneDenied,
            "Hearth may not use the microphone",
            "Allow microphone access for Hearth in your system's privacy settings, then unmute again.",
            detail,
        ),
        (T::Audio, _) => ui(
            ErrorKind::MicrophoneLost,
            "The microphone stopped",
            "It may have been unplugged. Reconnect it or pick another microphone.",
            detail,
        ),
        (T::Screen, _) => ui(
            ErrorKind::ScreenShareFailed,
            "Screen sharing stopped",
            "The screen could not be captured. Try sharing again; on Wayland, allow the screen-sharing prompt.",
            detail,
        ),
    }
}

pub fn peer_unreachable(name: &str, detail: &str) -> UiError {
    ui(
        ErrorKind::PeerUnreachable,
        &format!("Could not connect to {name}"),
        "A firewall between you blocks a direct connection. A TURN server on the signaling server fixes this: ask its admin to enable one. Hearth keeps trying meanwhile.",
        detail,
    )
}
