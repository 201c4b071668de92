//! The engine's errors.

/// Why the engine could not do something. Device problems in a call are not errors of the
/// engine: they arrive as [`crate::EngineEvent::DeviceError`] and the call goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The signaling server could not be reached. Retryable: the server may be down or the URL
    /// wrong.
    #[error("cannot reach the signaling server at {url}: {message}")]
    Connect { url: String, message: String },
    /// The server refused the join (room full, wrong password, bad token, version). Not
    /// retryable without a change.
    #[error("the server refused to let us join: {message} ({code})")]
    JoinRefused { code: hearth_proto::ErrorCode, message: String },
    /// The URL is not a ws:// or wss:// URL.
    #[error("invalid server URL {url:?}: {message}")]
    BadUrl { url: String, message: String },
    /// WebRTC setup failed (not retryable; a bug or an unusable network setup).
    #[error("WebRTC: {0}")]
    Rtc(String),
    /// A device could not be opened or failed (device previews, the test sound; in a call,
    /// device problems arrive as events instead). Not retryable without a change: `problem`
    /// says what kind, `message` which device and what happened.
    #[error("{message}")]
    Device { problem: crate::config::DeviceProblem, message: String },
    /// The engine has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

impl From<webrtc::error::Error> for EngineError {
    fn from(e: webrtc::error::Error) -> Self {
        EngineError::Rtc(e.to_string())
    }
}
