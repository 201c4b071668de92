//! "Perfect negotiation" for one peer connection, as a state machine that decides and never
//! waits: the driver performs each [`Step`] on the real peer connection, then reports back.
//!
//! Either side may offer at any time (first connect, screen share on/off). When both offer at
//! once (glare), the impolite peer ignores the incoming offer and the polite peer rolls its own
//! back and answers; the polite peer's wish to renegotiate is remembered and replayed once
//! stable. ICE candidates that arrive before the remote description are held until it is set;
//! candidates belonging to an ignored offer are dropped.
//!
//! Driver contract (one peer, steps performed strictly in order):
//! - [`Negotiator::negotiation_needed`] when local tracks change; perform `CreateOffer`
//!   (create, set local, send), then call [`Negotiator::local_offer_sent`].
//! - [`Negotiator::remote_description`] for each received offer/answer; perform the step.
//!   After `ApplyRemote`, call [`Negotiator::remote_applied`] and perform what it returns.
//! - After sending an answer, call [`Negotiator::local_answer_sent`].
//! - [`Negotiator::remote_candidate`] for each received candidate.

use hearth_proto::IceCandidate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpKind {
    Offer,
    Answer,
}

/// The signaling state as the negotiator tracks it (webrtc-rs 0.21 has no getter for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalingState {
    Stable,
    HaveLocalOffer,
    HaveRemoteOffer,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create an offer, set it as local description and send it.
    CreateOffer,
    /// Optionally roll back the local offer, then set this remote description.
    ApplyRemote { kind: SdpKind, sdp: String, rollback_first: bool },
    /// Create an answer, set it as local description and send it.
    CreateAnswer,
    /// Add these remote candidates (`None` = end of candidates).
    AddCandidates(Vec<Option<IceCandidate>>),
    /// Roll back the pending local offer (`setLocalDescription(rollback)`).
    RollbackLocal,
    /// Roll back the pending remote offer (`setRemoteDescription(rollback)`).
    RollbackRemote,
    /// Nothing to do; the input was ignored (explained for logs).
    Ignore(&'static str),
}

#[derive(Debug, Clone)]
pub struct Negotiator {
    polite: bool,
    state: SignalingState,
    /// A remote description has been applied at least once.
    has_remote: bool,
    /// Renegotiation was asked for while not stable.
    offer_wanted: bool,
    /// The last remote offer was ignored (glare, impolite side); cleared by the next exchange.
    ignoring_offer: bool,
    held_candidates: Vec<Option<IceCandidate>>,
    /// How many offer/answer rounds completed (for tests and stats).
    rounds: u32,
}

/// Which side of a pair is polite: the one with the lower peer id (both sides agree without
/// talking).
pub fn is_polite(my_id: &str, their_id: &str) -> bool {
    my_id < their_id
}

const MAX_HELD_CANDIDATES: usize = 64;

impl Negotiator {
    pub fn new(polite: bool) -> Negotiator {
        Negotiator {
            polite,
            state: SignalingState::Stable,
            has_remote: false,
            offer_wanted: false,
            ignoring_offer: false,
            held_candidates: Vec::new(),
            rounds: 0,
        }
    }

    pub fn state(&self) -> SignalingState {
        self.state
    }

    pub fn is_polite(&self) -> bool {
        self.polite
    }

    /// Completed offer/answer exchanges.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    /// Local tracks changed (or the first connect): offer now if stable, else later.
    pub fn negotiation_needed(&mut self) -> Step {
        if self.state == SignalingState::Stable {
            self.offer_wanted = false;
            Step::CreateOffer
        } else {
            self.offer_wanted = true;
            Step::Ignore("negotiation in progress; will offer when stable")
        }
    }

    /// The offer was set locally and sent.
    pub fn local_offer_sent(&mut self) {
        self.state = SignalingState::HaveLocalOffer;
    }

    /// Creating or sending the offer failed: back to stable, try again later.
    pub fn local_offer_failed(&mut self) {
        self.state = SignalingState::Stable;
        self.offer_wanted = true;
    }

    /// A remote offer or answer arrived.
    pub fn remote_description(&mut self, kind: SdpKind, sdp: String) -> Step {
        match kind {
            SdpKind::Offer => {
                let collision = self.state != SignalingState::Stable;
                if collision && !self.polite {
                    self.ignoring_offer = true;
                    return Step::Ignore("glare: impolite side keeps its own offer");
                }
                self.ignoring_offer = false;
                let rollback_first = collision && self.state == SignalingState::HaveLocalOffer;
                if rollback_first {
                    // Our offer is discarded; offer again once this exchange completes.
                    self.offer_wanted = true;
                }
                Step::ApplyRemote { kind, sdp, rollback_first }
            }
            SdpKind::Answer => {
                if self.state != SignalingState::HaveLocalOffer {
                    return Step::Ignore("answer without a pending local offer");
                }
                Step::ApplyRemote { kind, sdp, rollback_first: false }
            }
        }
    }

    /// The remote description was applied. Returns the steps that follow (answer, held
    /// candidates, a postponed offer).
    pub fn remote_applied(&mut self, kind: SdpKind) -> Vec<Step> {
        self.has_remote = true;
        let mut steps = Vec::new();
        match kind {
            SdpKind::Offer => {
                self.state = SignalingState::HaveRemoteOffer;
                steps.push(Step::CreateAnswer);
            }
            SdpKind::Answer => {
                self.state = SignalingState::Stable;
                self.ignoring_offer = false;
                self.rounds += 1;
            }
        }
        if !self.held_candidates.is_empty() {
            steps.push(Step::AddCandidates(std::mem::take(&mut self.held_candidates)));
        }
        if self.state == SignalingState::Stable && self.offer_wanted {
            self.offer_wanted = false;
            steps.push(Step::CreateOffer);
        }
        steps
    }

    /// Applying the remote description failed (bad or unacceptable SDP). The driver must roll
    /// back whatever is pending on the connection (`Rollback` steps come first), after which the
    /// negotiator is stable and offers again so both sides resynchronise.
    pub fn remote_failed(&mut self, kind: SdpKind) -> Vec<Step> {
        let mut steps = Vec::new();
        if kind == SdpKind::Answer && self.state == SignalingState::HaveLocalOffer {
            steps.push(Step::RollbackLocal);
        }
        self.state = SignalingState::Stable;
        self.offer_wanted = false;
        steps.push(Step::CreateOffer);
        steps
    }

    /// The remote description was refused without applying it (it has no codec we can use;
    /// the peer was told why): undo our own offer if it was answered, and do not offer again,
    /// which would only be refused the same way.
    pub fn remote_refused(&mut self, kind: SdpKind) -> Vec<Step> {
        let steps = if kind == SdpKind::Answer && self.state == SignalingState::HaveLocalOffer {
            vec![Step::RollbackLocal]
        } else {
            vec![]
        };
        self.state = SignalingState::Stable;
        self.offer_wanted = false;
        steps
    }

    /// Creating or sending an answer failed: roll back the remote offer and offer instead.
    pub fn local_answer_failed(&mut self) -> Vec<Step> {
        let steps =
            if self.state == SignalingState::HaveRemoteOffer { vec![Step::RollbackRemote] } else { vec![] };
        self.state = SignalingState::Stable;
        self.offer_wanted = false;
        steps.into_iter().chain(std::iter::once(Step::CreateOffer)).collect()
    }

    /// The answer was set locally and sent. Returns a postponed offer if one is wanted.
    pub fn local_answer_sent(&mut self) -> Option<Step> {
        self.state = SignalingState::Stable;
        self.rounds += 1;
        if std::mem::take(&mut self.offer_wanted) { Some(Step::CreateOffer) } else { None }
    }

    /// A remote ICE candidate arrived. Candidates are added even after an ignored offer (the
    /// peer's ICE credentials survive its rollback, so they stay valid); the driver should only
    /// log a failure to add one.
    pub fn remote_candidate(&mut self, candidate: Option<IceCandidate>) -> Step {
        if !self.has_remote {
            if self.held_candidates.len() < MAX_HELD_CANDIDATES {
                self.held_candidates.push(candidate);
                return Step::Ignore("held until the remote description is set");
            }
            return Step::Ignore("too many early candidates; dropped");
        }
        Step::AddCandidates(vec![candidate])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn cand(n: u8) -> Option<IceCandidate> {
        Some(IceCandidate {
            candidate: format!("candidate:{n} 1 udp 1 127.0.0.1 {n} typ host"),
            sdp_mid: None,
            sdp_mline_index: Some(0),
        })
    }

    /// A fake peer connection: just enough SDP state to check the driver contract. An offer's
    /// "sdp" is the list of local tracks; the remote side records what it has applied.
    #[derive(Debug, Default)]
    struct FakePc {
        local_tracks: Vec<&'static str>,
        remote_tracks: Vec<String>,
        pending_local: Option<String>,
        candidates: Vec<Option<IceCandidate>>,
    }

    #[derive(Debug)]
    enum Wire {
        Offer(String),
        Answer(String),
        Cand(Option<IceCandidate>),
    }

    struct Side {
        neg: Negotiator,
        pc: FakePc,
    }

    impl Side {
        fn new(polite: bool) -> Side {
            Side { neg: Negotiator::new(polite), pc: FakePc::default() }
        }

        /// Perform `step`, pushing what goes on the wire into `out`.
        fn perform(&mut self, step: Step, out: &mut VecDeque<Wire>) {
            match step {
                Step::CreateOffer => {
                    let sdp = self.pc.local_tracks.join(",");
                    self.pc.pending_local = Some(sdp.clone());
                    out.push_back(Wire::Offer(sdp));
                    self.neg.local_offer_sent();
                }
                Step::ApplyRemote { kind, sdp, rollback_first } => {
                    if rollback_first {
                        self.pc.pending_local = None;
                    }
                    if kind == SdpKind::Offer {
                        assert!(self.pc.pending_local.is_none(), "applied an offer in have-local-offer");
                    }
                    self.pc.remote_tracks =
                        sdp.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect();
                    for s in self.neg.remote_applied(kind) {
                        self.perform(s, out);
                    }
                }
                Step::CreateAnswer => {
                    out.push_back(Wire::Answer(self.pc.local_tracks.join(",")));
                    if let Some(s) = self.neg.local_answer_sent() {
                        self.perform(s, out);
                    }
                }
                Step::AddCandidates(c) => self.pc.candidates.extend(c),
                Step::RollbackLocal => self.pc.pending_local = None,
                Step::RollbackRemote | Step::Ignore(_) => {}
            }
        }

        fn receive(&mut self, w: Wire, out: &mut VecDeque<Wire>) {
            let step = match w {
                Wire::Offer(s) => self.neg.remote_description(SdpKind::Offer, s),
                Wire::Answer(s) => {
                    self.pc.pending_local = None;
                    self.neg.remote_description(SdpKind::Answer, s)
                }
                Wire::Cand(c) => self.neg.remote_candidate(c),
            };
            self.perform(step, out);
        }
    }

    /// Deliver everything in flight until both sides are quiet.
    fn settle(a: &mut Side, b: &mut Side, a_out: &mut VecDeque<Wire>, b_out: &mut VecDeque<Wire>) {
        for _ in 0..100 {
            if a_out.is_empty() && b_out.is_empty() {
                return;
            }
            if let Some(w) = a_out.pop_front() {
                b.receive(w, b_out);
            }
            if let Some(w) = b_out.pop_front() {
                a.receive(w, a_out);
            }
        }
        panic!("negotiation did not settle");
    }

    #[test]
    fn simple_offer_answer_with_early_candidates() {
        let (mut a, mut b) = (Side::new(false), Side::new(true));
        let (mut ao, mut bo) = (VecDeque::new(), VecDeque::new());
        a.pc.local_tracks = vec!["cam", "mic"];
        b.pc.local_tracks = vec!["cam", "mic"];
        // A candidate overtakes the offer.
        b.receive(Wire::Cand(cand(1)), &mut bo);
        assert!(b.pc.candidates.is_empty());
        let step = a.neg.negotiation_needed();
        a.perform(step, &mut ao);
        settle(&mut a, &mut b, &mut ao, &mut bo);
        assert_eq!(b.pc.candidates, vec![cand(1)]);
        assert_eq!(a.pc.remote_tracks, ["cam", "mic"]);
        assert_eq!(b.pc.remote_tracks, ["cam", "mic"]);
        assert_eq!((a.neg.state(), b.neg.state()), (SignalingState::Stable, SignalingState::Stable));
        b.receive(Wire::Cand(None), &mut bo);
        assert_eq!(b.pc.candidates.last(), Some(&None));
    }

    #[test]
    fn glare_resolves_and_both_changes_land() {
        for a_polite in [false, true] {
            let (mut a, mut b) = (Side::new(a_polite), Side::new(!a_polite));
            let (mut ao, mut bo) = (VecDeque::new(), VecDeque::new());
            a.pc.local_tracks = vec!["cam"];
            b.pc.local_tracks = vec!["cam"];
            let s = a.neg.negotiation_needed();
            a.perform(s, &mut ao);
            settle(&mut a, &mut b, &mut ao, &mut bo);
            // Both start screen sharing at the same instant: two offers cross.
            a.pc.local_tracks.push("screen-a");
            b.pc.local_tracks.push("screen-b");
            let s = a.neg.negotiation_needed();
            a.perform(s, &mut ao);
            let s = b.neg.negotiation_needed();
            b.perform(s, &mut bo);
            assert_eq!(ao.len(), 1);
            assert_eq!(bo.len(), 1);
            settle(&mut a, &mut b, &mut ao, &mut bo);
            assert_eq!(a.pc.remote_tracks, ["cam", "screen-b"], "a_polite={a_polite}");
            assert_eq!(b.pc.remote_tracks, ["cam", "screen-a"], "a_polite={a_polite}");
            assert_eq!((a.neg.state(), b.neg.state()), (SignalingState::Stable, SignalingState::Stable));
        }
    }

    #[test]
    fn renegotiation_requested_mid_exchange_is_replayed() {
        let (mut a, mut b) = (Side::new(true), Side::new(false));
        let (mut ao, mut bo) = (VecDeque::new(), VecDeque::new());
        a.pc.local_tracks = vec!["cam"];
        let s = a.neg.negotiation_needed();
        a.perform(s, &mut ao);
        // Before the answer arrives, A adds a screen: must not offer twice at once.
        a.pc.local_tracks.push("screen");
        assert!(matches!(a.neg.negotiation_needed(), Step::Ignore(_)));
        settle(&mut a, &mut b, &mut ao, &mut bo);
        assert_eq!(b.pc.remote_tracks, ["cam", "screen"]);
        assert_eq!(a.neg.rounds(), 2);
    }

    #[test]
    fn stray_answers_are_ignored_and_candidates_survive_glare() {
        let mut n = Negotiator::new(false);
        assert!(matches!(n.remote_description(SdpKind::Answer, "x".into()), Step::Ignore(_)));
        n.local_offer_sent();
        assert!(matches!(n.remote_description(SdpKind::Offer, "x".into()), Step::Ignore(_)));
        // Our answer arrives; the polite peer's candidates (from before and after its rollback)
        // must all be added.
        let _ = n.remote_description(SdpKind::Answer, "a".into());
        n.remote_applied(SdpKind::Answer);
        for i in 0..3 {
            assert_eq!(n.remote_candidate(cand(i)), Step::AddCandidates(vec![cand(i)]));
        }
        assert!(is_polite("a", "b") && !is_polite("b", "a"));
    }

    #[test]
    fn failures_roll_back_and_renegotiate() {
        let mut n = Negotiator::new(true);
        n.local_offer_sent();
        assert_eq!(n.remote_failed(SdpKind::Answer), vec![Step::RollbackLocal, Step::CreateOffer]);
        assert_eq!(n.state(), SignalingState::Stable);
        let mut n = Negotiator::new(true);
        let _ = n.remote_description(SdpKind::Offer, "o".into());
        n.remote_applied(SdpKind::Offer);
        assert_eq!(n.local_answer_failed(), vec![Step::RollbackRemote, Step::CreateOffer]);
        assert_eq!(n.state(), SignalingState::Stable);
        let mut n = Negotiator::new(true);
        assert_eq!(n.remote_failed(SdpKind::Offer), vec![Step::CreateOffer]);
    }
}
