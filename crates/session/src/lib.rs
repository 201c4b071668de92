//! Hearth's call logic, without sockets or clocks (sans-IO).
//!
//! # Driving it
//! The engine owns one [`Call`] per participant and one [`Negotiator`] per peer link:
//!
//! 1. feed inputs: [`Call::handle_server`] for each server message, [`Call::link_changed`] for
//!    peer-connection state, user commands ([`Call::set_media`], [`Call::chat`], ...), each with
//!    the current time where it matters;
//! 2. drain [`Call::poll_action`] and carry out each [`Action`] in order (send a message,
//!    open/close a link, hand a signal to a link's [`Negotiator`], emit an event to the app);
//! 3. per link, perform the negotiator's [`negotiation::Step`]s on the peer connection and report
//!    back, as its module docs describe.
//!
//! Invariants, tested here without a network: the newcomer offers; glare resolves with one
//! polite side; early ICE candidates are held; links to departed peers are closed; each link's
//! outcome is reported once.

pub mod call;
pub mod negotiation;
pub mod outbox;
pub mod quality;
pub mod sdp;
pub mod security;

pub use call::{Action, Call, CallEvent, LinkState, Signal, reconnect_delay, signal_retry_delay};
pub use negotiation::{Negotiator, SdpKind, SignalingState, Step, is_polite};
pub use outbox::{Outbox, SendPacer};
pub use quality::{LinkMeasure, Quality, quality};
pub use security::safety_code;
