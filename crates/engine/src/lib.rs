//! Hearth's call engine: the signaling client, one webrtc-rs peer connection per remote peer
//! (full mesh), and the media pipeline, behind a small API: commands in, typed events out.
//! Both the desktop app and the headless `hearth-call` client use it.
//!
//! # Driving it
//! ```no_run
//! # async fn demo() -> Result<(), hearth_engine::EngineError> {
//! use hearth_engine::{Command, Engine, EngineConfig, EngineEvent};
//! let cfg = EngineConfig::new("ws://127.0.0.1:7878", "standup", "Ada").synthetic(1280, 720, 30.0);
//! let (engine, mut events) = Engine::start(cfg).await?;
//! engine.command(Command::SetAudioMuted(true))?;
//! while let Some(ev) = events.recv().await {
//!     match ev {
//!         EngineEvent::Call(e) => println!("{e:?}"),
//!         EngineEvent::Ended { .. } => break,
//!         _ => {}
//!     }
//! }
//! engine.leave().await;
//! # Ok(()) }
//! ```
//!
//! # Inside
//! - Capture → encode once per source (a thread per source) → RTP packets fanned out to every
//!   peer's track ([`send`]).
//! - Per peer, a link task owns the peer connection and performs the session crate's
//!   perfect-negotiation steps in order ([`link`]).
//! - Per remote track, a receiver reorders without idle delay, releases video frames on the
//!   marker bit, decodes (video on its own thread), reads in-band markers and keeps stats
//!   ([`receive`]).
//! - The [`hearth_session::Call`] state machine decides which links exist.
//!
//! Before joining, [`preview`] checks the devices (camera preview, microphone meter, test sound).

pub mod adapt;
pub mod config;
pub mod engine;
pub mod error;
pub mod handshake_copy;
pub mod link;
pub mod preview;
pub mod receive;
pub mod rtc_setup;
pub mod send;
pub mod signal;
pub mod turn_paths;

#[doc(hidden)]
pub use config::RtpRewrite;
pub use config::{
    AudioLevel, AudioSpec, DeviceProblem, DisplayFrame, EncoderInfo, EngineConfig, EngineEvent, Freeze, Latency,
    OutboundStats, RECENT_FREEZES, PeerStats, StreamStats, TrackKind, VideoSpec,
};
pub use engine::{Command, Engine};
pub use error::EngineError;
/// Devices the engine can open (ids for [`VideoSpec::Camera`], [`AudioSpec::Microphone`], the
/// speaker, [`VideoSpec::Screen`]).
pub use hearth_media::device::{DeviceInfo, DeviceKind, list as list_devices};
pub use hearth_session::{CallEvent, LinkState, safety_code};
