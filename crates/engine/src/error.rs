//! The engine's errors.

/// Why the engine could not do something. Device problems are not errors of the engine: they
/// arrive as [`crate::EngineEvent::DeviceError`] and the call goes on.
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
    /// The engine has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

impl From<webrtc::error::Error> for EngineError {
    fn from(e: webrtc::error::Error) -> Self {
        EngineError::Rtc(e.to_string())
    }
}
