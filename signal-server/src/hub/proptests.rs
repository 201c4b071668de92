//! Property tests: random sequences of join / leave / chat / relay / drop / resume / time on a
//! few clients and rooms, checking after every step that
//! - no message crosses rooms,
//! - private chat reaches only its sender and addressee,
//! - each member receives room chat in strictly increasing `seq` order, and by the end (after
//!   every dropped client has resumed) has received every room message sent while it was a member.

use super::*;
use hearth_proto::Resume;
use proptest::prelude::*;
use std::collections::BTreeMap;

const CLIENTS: usize = 5;
const ROOMS: [&str; 2] = ["red", "blue"];

#[derive(Debug, Clone)]
enum Op {
    Join { client: usize, room: usize },
    Leave { client: usize },
    Chat { client: usize, to: Option<usize> },
    Relay { client: usize, to: usize },
    Drop { client: usize },
    Resume { client: usize },
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS;
    prop_oneof![
        3 => (c.clone(), 0..ROOMS.len()).prop_map(|(client, room)| Op::Join { client, room }),
        1 => c.clone().prop_map(|client| Op::Leave { client }),
        4 => (c.clone(), proptest::option::weighted(0.3, 0..CLIENTS)).prop_map(|(client, to)| Op::Chat { client, to }),
        2 => (c.clone(), 0..CLIENTS).prop_map(|(client, to)| Op::Relay { client, to }),
        2 => c.clone().prop_map(|client| Op::Drop { client }),
        2 => c.prop_map(|client| Op::Resume { client }),
        1 => (0u64..40_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Debug, Default, Clone)]
struct Client {
    conn: Option<ConnId>,
    peer: Option<PeerId>,
    token: Option<String>,
    room: Option<String>,
    last_seq: u64,
}

struct World {
    hub: Hub,
    now: Instant,
    next_conn: u64,
    clients: Vec<Client>,
    conn_peer: BTreeMap<ConnId, PeerId>,
    peer_room: BTreeMap<PeerId, String>,
    received: BTreeMap<PeerId, Vec<u64>>,
    expected: BTreeMap<PeerId, BTreeSet<u64>>,
    seen_chat_ids: BTreeSet<String>,
}

impl World {
    fn new() -> World {
        let now = Instant::now();
        // One address for every client, and no per-address or room-creation limits: the model
        // checks delivery, not those limits (tested on their own).
        let cfg = HubConfig {
            max_room_size: 4,
            log_len: 10_000,
            max_sessions_per_ip: 0,
            max_rooms_created_per_min: 0,
            // A few relays each, so the byte bounds refuse some and their sums are exercised.
            held_relay_bytes_per_peer: 600,
            held_relay_bytes_per_room: 900,
            held_relay_bytes_total: 1200,
            ..HubConfig::default()
        };
        World {
            hub: Hub::new(cfg, Some(1), now, 1_800_000_000_000),
            now,
            next_conn: 0,
            clients: vec![Client::default(); CLIENTS],
            conn_peer: BTreeMap::new(),
            peer_room: BTreeMap::new(),
            received: BTreeMap::new(),
            expected: BTreeMap::new(),
            seen_chat_ids: BTreeSet::new(),
        }
    }

    fn open(&mut self, client: usize) -> ConnId {
        if let Some(c) = self.clients[client].conn {
            return c;
        }
        self.next_conn += 1;
        let c = ConnId(self.next_conn);
        self.hub.connect(c, std::net::Ipv4Addr::new(192, 0, 2, 1).into());
        self.clients[client].conn = Some(c);
        c
    }

    fn client_of(&self, conn: ConnId) -> Option<usize> {
        self.clients.iter().position(|c| c.conn == Some(conn))
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Join { client, room } => {
                let c = self.open(client);
                // A name of its own per connection: a client that joins afresh while its old
                // session still waits out its grace period must not look like that session.
                self.hub.message(
                    self.now,
                    c,
                    ClientMessage::Join(Join::new(ROOMS[room], format!("c{client}n{}", c.0))),
                );
            }
            Op::Leave { client } => {
                if let Some(c) = self.clients[client].conn {
                    self.hub.message(self.now, c, ClientMessage::Leave);
                    self.forget_session(client);
                }
            }
            Op::Chat { client, to } => {
                if let Some(c) = self.clients[client].conn {
                    let to = to.and_then(|t| self.clients[t].peer.clone());
                    self.hub.message(self.now, c, ClientMessage::Chat { text: "hi".into(), to });
                }
            }
            Op::Relay { client, to } => {
                if let (Some(c), Some(to)) = (self.clients[client].conn, self.clients[to].peer.clone()) {
                    self.hub.message(self.now, c, ClientMessage::Offer { to, sdp: "v=0".into() });
                }
            }
            Op::Drop { client } => {
                if let Some(c) = self.clients[client].conn.take() {
                    self.hub.disconnect(self.now, c);
                    self.conn_peer.remove(&c);
                }
            }
            Op::Resume { client } => {
                // A client resumes on a fresh connection, or on an open one that is not in a
                // room (e.g. after a fresh join was refused).
                let joined = self.clients[client].conn.is_some_and(|c| self.conn_peer.contains_key(&c));
                if let (false, Some(token), Some(room)) =
                    (joined, self.clients[client].token.clone(), self.clients[client].room.clone())
                {
                    let last_seq = self.clients[client].last_seq;
                    let c = self.open(client);
                    let mut j = Join::new(room, format!("c{client}"));
                    j.resume = Some(Resume { token, last_seq });
                    self.hub.message(self.now, c, ClientMessage::Join(j));
                }
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(ms);
                self.hub.tick(self.now);
            }
        }
        self.pump()?;
        check_accounting(&self.hub)
    }

    fn forget_session(&mut self, client: usize) {
        let cl = &mut self.clients[client];
        if let Some(c) = cl.conn {
            self.conn_peer.remove(&c);
        }
        cl.peer = None;
        cl.token = None;
        cl.room = None;
        cl.last_seq = 0;
    }

    fn pump(&mut self) -> Result<(), TestCaseError> {
        while let Some(out) = self.hub.poll_output() {
            let Output::Deliver { to, msg } = out else { continue };
            // Record new room chat as expected by every current member of its room.
            if let ServerMessage::Chat { message } = &msg
                && self.seen_chat_ids.insert(message.id.clone())
                && message.to.is_none()
            {
                let room = self.peer_room.get(&message.from).cloned();
                prop_assert!(room.is_some(), "chat from unknown peer");
                let room = room.unwrap_or_default();
                for member in self.hub.rooms.get(&room).map(|r| r.members.clone()).unwrap_or_default() {
                    self.expected.entry(member).or_default().insert(message.seq);
                }
            }
            for conn in to {
                self.receive(conn, &msg)?;
            }
        }
        Ok(())
    }

    fn receive(&mut self, conn: ConnId, msg: &ServerMessage) -> Result<(), TestCaseError> {
        if let ServerMessage::Welcome(w) = msg {
            let Some(client) = self.client_of(conn) else {
                return Err(TestCaseError::fail("welcome to a closed connection"));
            };
            self.conn_peer.insert(conn, w.peer_id.clone());
            self.peer_room.insert(w.peer_id.clone(), w.room.clone());
            let cl = &mut self.clients[client];
            cl.peer = Some(w.peer_id.clone());
            cl.token = Some(w.resume_token.clone());
            cl.room = Some(w.room.clone());
            if !w.resumed {
                cl.last_seq = 0; // chat positions belong to one session's room
            }
            for m in &w.history {
                self.note_chat(client, &w.peer_id, m)?;
            }
            for p in &w.peers {
                prop_assert_eq!(
                    self.peer_room.get(&p.id),
                    Some(&w.room),
                    "welcome lists a peer of another room"
                );
            }
            return Ok(());
        }
        let Some(me) = self.conn_peer.get(&conn).cloned() else {
            // Not joined: only errors, pongs and shutdowns may arrive.
            prop_assert!(matches!(msg, ServerMessage::Error { .. }), "unjoined conn got {:?}", msg);
            return Ok(());
        };
        let my_room = self.peer_room.get(&me).cloned();
        let about = match msg {
            ServerMessage::PeerJoined { peer } => Some(peer.id.clone()),
            ServerMessage::PeerLeft { peer_id, .. }
            | ServerMessage::PeerReconnecting { peer_id }
            | ServerMessage::PeerReconnected { peer_id }
            | ServerMessage::MediaState { peer_id, .. }
            | ServerMessage::RaiseHand { peer_id, .. } => Some(peer_id.clone()),
            ServerMessage::Offer { from, .. }
            | ServerMessage::Answer { from, .. }
            | ServerMessage::IceCandidate { from, .. }
            | ServerMessage::Reaction { from, .. } => Some(from.clone()),
            ServerMessage::Chat { message } => Some(message.from.clone()),
            _ => None,
        };
        if let Some(about) = about {
            prop_assert_eq!(self.peer_room.get(&about), my_room.as_ref(), "message crossed rooms: {:?}", msg);
        }
        if let ServerMessage::Chat { message } = msg {
            if let Some(to) = &message.to {
                prop_assert!(*to == me || message.from == me, "private chat leaked to {}", me);
            }
            let Some(client) = self.client_of(conn) else { return Ok(()) };
            self.note_chat(client, &me, message)?;
        }
        Ok(())
    }

    fn note_chat(&mut self, client: usize, me: &PeerId, m: &ChatMessage) -> Result<(), TestCaseError> {
        let cl = &mut self.clients[client];
        cl.last_seq = cl.last_seq.max(m.seq);
        if m.to.is_none() {
            let got = self.received.entry(me.clone()).or_default();
            if let Some(last) = got.last() {
                prop_assert!(m.seq > *last, "room chat out of order or repeated: {} after {}", m.seq, last);
            }
            got.push(m.seq);
        }
        Ok(())
    }

    /// Resume every dropped client still within its grace period, then check completeness.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        for client in 0..CLIENTS {
            self.apply(&Op::Resume { client })?;
        }
        // Sessions a client abandoned (it joined afresh after a drop) just wait for their
        // timeout; every session a client still holds must be live and complete.
        for cl in &self.clients {
            let Some(peer) = &cl.peer else { continue };
            let Some(session) = self.hub.sessions.get(peer) else { continue };
            prop_assert!(session.conn.is_some(), "a resumable session stayed unresumed");
            let expected = self.expected.get(peer).cloned().unwrap_or_default();
            let got: BTreeSet<u64> =
                self.received.get(peer).map(|v| v.iter().copied().collect()).unwrap_or_default();
            let missing: Vec<_> = expected.difference(&got).collect();
            prop_assert!(missing.is_empty(), "{} missed room chat {:?}", peer, missing);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rooms_keep_their_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op)?;
        }
        // Advance past no deadline: sessions whose grace passed are gone, the rest resume.
        w.finish()?;
    }
}

/// A fixed scenario through the same model: chat before, during and after a drop and resume.
#[test]
fn drop_chat_resume_loses_nothing() {
    let mut w = World::new();
    for op in [
        Op::Join { client: 0, room: 0 },
        Op::Join { client: 1, room: 0 },
        Op::Chat { client: 0, to: None },
        Op::Drop { client: 1 },
        Op::Chat { client: 0, to: None },
        Op::Resume { client: 1 },
        Op::Chat { client: 0, to: None },
    ] {
        w.apply(&op).unwrap();
    }
    w.finish().unwrap();
}

/// The byte and per-address counts the hub keeps agree with what it holds.
fn check_accounting(hub: &Hub) -> Result<(), TestCaseError> {
    let mut per_room: HashMap<&str, usize> = HashMap::new();
    let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
    let mut total = 0;
    for s in hub.sessions.values() {
        let held: usize = s.pending.iter().map(held_bytes).sum();
        prop_assert_eq!(held, s.pending_bytes, "a session's held bytes");
        *per_room.entry(s.room.as_str()).or_default() += held;
        total += held;
        if let Some(ip) = s.ip {
            *per_ip.entry(ip).or_default() += 1;
        }
    }
    prop_assert_eq!(total, hub.pending_bytes, "held bytes in total");
    for (name, room) in &hub.rooms {
        prop_assert_eq!(
            per_room.get(name.as_str()).copied().unwrap_or(0),
            room.pending_bytes,
            "room {}",
            name
        );
    }
    prop_assert_eq!(&per_ip, &hub.sessions_per_ip, "sessions per address");
    hub.chat.check().map_err(TestCaseError::fail)
}
