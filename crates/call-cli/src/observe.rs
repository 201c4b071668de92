//! What a `hearth-call join` peer saw of the others during the call: each peer's media state and
//! raised hand over time, the chat and reactions it received. UI tests read it from the report
//! to check what the app under test did (`seen_peers`, `chat_received`, `reactions_received`).
//!
//! Times (`at_ms`) are milliseconds since our join.

use hearth_engine::{CallEvent, EngineEvent};
use hearth_proto::{MediaState, PeerId, PeerInfo, normalize_name};
use serde::Serialize;
use std::collections::HashSet;

/// A peer's announced media state from `at_ms` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MediaChange {
    pub at_ms: u64,
    pub audio_muted: bool,
    pub video_off: bool,
    pub screen_sharing: bool,
}

/// A peer raised (or lowered) its hand at `at_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HandChange {
    pub at_ms: u64,
    pub raised: bool,
}

/// One other peer as we saw it: its last state, and how it got there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeenPeer {
    pub peer_id: String,
    pub name: String,
    pub audio_muted: bool,
    pub video_off: bool,
    pub screen_sharing: bool,
    pub hand_raised: bool,
    /// It left the room (or timed out) before we did.
    pub left: bool,
    /// Its media state when we first saw it, then each change it announced.
    pub media_changes: Vec<MediaChange>,
    /// Each time it raised or lowered its hand (its state when we first saw it included when
    /// raised).
    pub hand_changes: Vec<HandChange>,
    #[serde(skip)]
    pub first_seen_us: u64,
}

/// A chat message from another peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatReceived {
    pub from_name: String,
    /// The sender's peer id.
    pub from: String,
    pub text: String,
    /// Sent to us alone.
    pub private: bool,
    pub at_ms: u64,
}

/// A reaction from another peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReactionReceived {
    pub from_name: String,
    pub from: String,
    pub emoji: String,
    pub at_ms: u64,
}

/// Follows the engine's events and keeps what we saw of the others.
#[derive(Debug, Clone)]
pub struct Observer {
    me: PeerId,
    joined_us: u64,
    /// In the order we first saw them.
    pub peers: Vec<SeenPeer>,
    pub chat: Vec<ChatReceived>,
    pub reactions: Vec<ReactionReceived>,
    chat_ids: HashSet<String>,
}

impl Observer {
    /// For peer `me`, which joined at `joined_us` (µs since the Unix epoch).
    pub fn new(me: PeerId, joined_us: u64) -> Self {
        Observer {
            me,
            joined_us,
            peers: Vec::new(),
            chat: Vec::new(),
            reactions: Vec::new(),
            chat_ids: HashSet::new(),
        }
    }

    /// Milliseconds since our join at `now_us`.
    pub fn at_ms(&self, now_us: u64) -> u64 {
        now_us.saturating_sub(self.joined_us) / 1000
    }

    /// Follow an engine event seen at `now_us`.
    pub fn observe(&mut self, ev: &EngineEvent, now_us: u64) {
        let EngineEvent::Call(ev) = ev else { return };
        let at_ms = self.at_ms(now_us);
        match ev {
            CallEvent::Joined { peers, .. } => {
                for p in peers {
                    self.present(p, now_us);
                }
            }
            CallEvent::PeerJoined(p) => self.present(p, now_us),
            CallEvent::PeerMedia { peer_id, state } => {
                if let Some(p) = self.peer_mut(peer_id) {
                    set_media(p, *state, at_ms);
                }
            }
            CallEvent::Hand { peer_id, raised } => {
                if let Some(p) = self.peer_mut(peer_id) {
                    set_hand(p, *raised, at_ms);
                }
            }
            CallEvent::PeerLeft { peer_id, .. } => {
                if let Some(p) = self.peer_mut(peer_id) {
                    p.left = true;
                }
            }
            CallEvent::Reaction { from, emoji } if *from != self.me => {
                let from_name = self.name_of(from).unwrap_or_default().to_owned();
                self.reactions.push(ReactionReceived {
                    from_name,
                    from: from.to_string(),
                    emoji: emoji.clone(),
                    at_ms,
                });
            }
            // The welcome replays the room's recent chat (again after a resume): keep each once.
            CallEvent::Chat(m) if m.from != self.me && self.chat_ids.insert(m.id.clone()) => {
                self.chat.push(ChatReceived {
                    from_name: m.from_name.clone(),
                    from: m.from.to_string(),
                    text: m.text.clone(),
                    private: m.to.is_some(),
                    at_ms,
                });
            }
            _ => {}
        }
    }

    fn present(&mut self, info: &PeerInfo, now_us: u64) {
        if info.id == self.me {
            return;
        }
        let at_ms = self.at_ms(now_us);
        match self.peer_mut(&info.id) {
            Some(p) => {
                p.name.clone_from(&info.name);
                p.left = false;
                set_media(p, info.media, at_ms);
                set_hand(p, info.hand_raised, at_ms);
            }
            None => self.peers.push(SeenPeer {
                peer_id: info.id.to_string(),
                name: info.name.clone(),
                audio_muted: info.media.audio_muted,
                video_off: info.media.video_off,
                screen_sharing: info.media.screen_sharing,
                hand_raised: info.hand_raised,
                left: false,
                media_changes: vec![change(info.media, at_ms)],
                hand_changes: if info.hand_raised {
                    vec![HandChange { at_ms, raised: true }]
                } else {
                    Vec::new()
                },
                first_seen_us: now_us,
            }),
        }
    }

    fn peer_mut(&mut self, id: &PeerId) -> Option<&mut SeenPeer> {
        self.peers.iter_mut().find(|p| p.peer_id == id.as_str())
    }

    /// The display name of a peer we saw.
    pub fn name_of(&self, id: &PeerId) -> Option<&str> {
        self.peers.iter().find(|p| p.peer_id == id.as_str()).map(|p| p.name.as_str())
    }

    /// A peer in the room now with this display name (compared as the server does).
    pub fn peer_named(&self, name: &str) -> Option<PeerId> {
        let name = normalize_name(name);
        self.peers
            .iter()
            .find(|p| !p.left && normalize_name(&p.name) == name)
            .map(|p| PeerId(p.peer_id.clone()))
    }

    /// When we first saw a peer (µs since the Unix epoch).
    pub fn first_seen_us(&self, id: &str) -> Option<u64> {
        self.peers.iter().find(|p| p.peer_id == id).map(|p| p.first_seen_us)
    }

    /// Whether a peer we saw left the room.
    pub fn has_left(&self, id: &str) -> bool {
        self.peers.iter().any(|p| p.peer_id == id && p.left)
    }
}

fn change(m: MediaState, at_ms: u64) -> MediaChange {
    MediaChange {
        at_ms,
        audio_muted: m.audio_muted,
        video_off: m.video_off,
        screen_sharing: m.screen_sharing,
    }
}

fn set_media(p: &mut SeenPeer, m: MediaState, at_ms: u64) {
    (p.audio_muted, p.video_off, p.screen_sharing) = (m.audio_muted, m.video_off, m.screen_sharing);
    let same = |c: &MediaChange| {
        (c.audio_muted, c.video_off, c.screen_sharing) == (m.audio_muted, m.video_off, m.screen_sharing)
    };
    if !p.media_changes.last().is_some_and(same) {
        p.media_changes.push(change(m, at_ms));
    }
}

fn set_hand(p: &mut SeenPeer, raised: bool, at_ms: u64) {
    if p.hand_raised != raised {
        p.hand_changes.push(HandChange { at_ms, raised });
    }
    p.hand_raised = raised;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hearth_proto::{ChatMessage, LeaveReason};

    const MS: u64 = 1000;

    fn info(id: &str, name: &str, media: MediaState) -> PeerInfo {
        PeerInfo { id: id.into(), name: name.into(), media, hand_raised: false, reconnecting: false }
    }

    fn call(e: CallEvent) -> EngineEvent {
        EngineEvent::Call(e)
    }

    fn chat(id: &str, from: &str, name: &str, to: Option<&str>, text: &str) -> CallEvent {
        CallEvent::Chat(ChatMessage {
            id: id.into(),
            seq: 1,
            ts_ms: 0,
            from: from.into(),
            from_name: name.into(),
            to: to.map(PeerId::from),
            text: text.into(),
        })
    }

    #[test]
    fn follows_media_hands_chat_and_reactions_of_others_only() {
        let mut o = Observer::new("me".into(), 1_000 * MS);
        let muted = MediaState { audio_muted: true, ..MediaState::default() };
        o.observe(
            &call(CallEvent::Joined {
                peer_id: "me".into(),
                room: "r".into(),
                name: "me".into(),
                peers: vec![info("p1", "ada", MediaState::default())],
                resumed: false,
            }),
            1_010 * MS,
        );
        o.observe(&call(CallEvent::PeerJoined(info("p2", "bob", muted))), 1_500 * MS);
        o.observe(&call(CallEvent::PeerMedia { peer_id: "p1".into(), state: muted }), 2_000 * MS);
        // The same state again (e.g. re-announced) is not a change.
        o.observe(&call(CallEvent::PeerMedia { peer_id: "p1".into(), state: muted }), 2_100 * MS);
        let sharing = MediaState { screen_sharing: true, ..muted };
        o.observe(&call(CallEvent::PeerMedia { peer_id: "p1".into(), state: sharing }), 3_000 * MS);
        o.observe(&call(CallEvent::PeerMedia { peer_id: "p1".into(), state: muted }), 5_000 * MS);
        o.observe(&call(CallEvent::Hand { peer_id: "p2".into(), raised: true }), 5_500 * MS);
        o.observe(&call(CallEvent::Hand { peer_id: "me".into(), raised: true }), 5_600 * MS);
        o.observe(&call(CallEvent::Reaction { from: "p2".into(), emoji: "👍".into() }), 6_000 * MS);
        o.observe(&call(CallEvent::Reaction { from: "me".into(), emoji: "🎉".into() }), 6_000 * MS);
        o.observe(&call(chat("m1", "p1", "ada", None, "hello")), 7_000 * MS);
        o.observe(&call(chat("m1", "p1", "ada", None, "hello")), 7_100 * MS); // replayed
        o.observe(&call(chat("m2", "p2", "bob", Some("me"), "psst")), 8_000 * MS);
        o.observe(&call(chat("m3", "me", "me", None, "mine")), 8_000 * MS);
        o.observe(&call(CallEvent::PeerLeft { peer_id: "p2".into(), reason: LeaveReason::Left }), 9_000 * MS);

        let ada = &o.peers[0];
        assert_eq!(
            (ada.name.as_str(), ada.audio_muted, ada.screen_sharing, ada.left),
            ("ada", true, false, false)
        );
        let timeline: Vec<(u64, bool, bool)> =
            ada.media_changes.iter().map(|c| (c.at_ms, c.audio_muted, c.screen_sharing)).collect();
        assert_eq!(
            timeline,
            [(10, false, false), (1_000, true, false), (2_000, true, true), (4_000, true, false)]
        );
        let bob = &o.peers[1];
        assert_eq!((bob.audio_muted, bob.hand_raised, bob.left), (true, true, true));
        assert_eq!(bob.hand_changes, [HandChange { at_ms: 4_500, raised: true }]);
        assert_eq!(o.peers.len(), 2);
        assert_eq!(
            o.reactions,
            [ReactionReceived {
                from_name: "bob".into(),
                from: "p2".into(),
                emoji: "👍".into(),
                at_ms: 5_000
            }]
        );
        let chat: Vec<(&str, &str, bool, u64)> =
            o.chat.iter().map(|c| (c.from_name.as_str(), c.text.as_str(), c.private, c.at_ms)).collect();
        assert_eq!(chat, [("ada", "hello", false, 6_000), ("bob", "psst", true, 7_000)]);
        // Private chat goes to a present peer by name; bob left.
        assert_eq!(o.peer_named(" ada"), Some("p1".into()));
        assert_eq!(o.peer_named("bob"), None);
        assert_eq!(o.first_seen_us("p2"), Some(1_500 * MS));
        assert!(o.has_left("p2") && !o.has_left("p1"));
    }

    #[test]
    fn a_peer_seen_again_after_a_resume_keeps_one_entry() {
        let mut o = Observer::new("me".into(), 0);
        o.observe(&call(CallEvent::PeerJoined(info("p1", "ada", MediaState::default()))), 1_000 * MS);
        let mut again = info("p1", "ada", MediaState { video_off: true, ..MediaState::default() });
        again.hand_raised = true;
        o.observe(
            &call(CallEvent::Joined {
                peer_id: "me".into(),
                room: "r".into(),
                name: "me".into(),
                peers: vec![again],
                resumed: true,
            }),
            2_000 * MS,
        );
        assert_eq!(o.peers.len(), 1);
        let p = &o.peers[0];
        assert_eq!((p.video_off, p.hand_raised), (true, true));
        assert_eq!(p.media_changes.len(), 2);
        assert_eq!(p.hand_changes, [HandChange { at_ms: 2_000, raised: true }]);
    }
}
