//! Hearth's signaling server (placeholder module list while the server is assembled).
pub mod auth;
pub mod hub;
pub mod rate;
