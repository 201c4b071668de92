//! The embedded TURN relay's core on arbitrary input from clients and peers, over UDP and over a
//! TCP stream (split by the same `TurnStreamDecoder` the server uses). Never a panic; nothing
//! ever reaches a peer without an allocation (arbitrary bytes cannot carry valid credentials).
//!
//! Input: records of `[kind, len_hi, len_lo, payload; len]` until the bytes run out.
//! - kind bits 0-1: 0 a client datagram (UDP), 1 bytes on a client's TCP stream, 2 a datagram
//!   from a peer on a relayed port, 3 time passes (`len` seconds) and the relay ticks.
//! - kind bits 2-3: which of four clients / peers.
#![no_main]

use hearth_turn::relay::{BindFailed, ClientAddr, Family, Output, RelayPorts, Transport};
use hearth_turn::{Relay, RelayConfig, RelayMetrics};
use libfuzzer_sys::fuzz_target;
use rtc_shared::turn_framing::TurnStreamDecoder;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

struct Ports(u16);

impl RelayPorts for Ports {
    fn bind(&mut self, _family: Family) -> Result<SocketAddr, BindFailed> {
        self.0 = self.0.wrapping_add(1);
        Ok(SocketAddr::from(([0, 0, 0, 0], self.0)))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut config = RelayConfig::new("hearth", b"fuzz".to_vec());
    config.public_v4 = Some("203.0.113.7".parse().unwrap());
    let mut now = Instant::now();
    let mut relay = Relay::new(config, RelayMetrics::default(), now, 1_800_000_000);
    let mut ports = Ports(50000);
    let mut streams: Vec<TurnStreamDecoder> = (0..4).map(|_| TurnStreamDecoder::new()).collect();
    let mut rest = data;
    while rest.len() >= 3 {
        let kind = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let take = len.min(rest.len() - 3);
        let payload = &rest[3..3 + take];
        rest = &rest[3 + take..];
        let who = usize::from((kind >> 2) & 3);
        let server: SocketAddr = "10.0.0.1:3478".parse().unwrap();
        let client = SocketAddr::from(([10, 0, 1, 2], 4000 + who as u16));
        match kind & 3 {
            0 => relay.handle_client(
                ClientAddr { transport: Transport::Udp, server, client },
                payload,
                now,
                &mut ports,
            ),
            1 => {
                let from = ClientAddr { transport: Transport::Tcp, server, client };
                streams[who].extend_from_slice(payload);
                loop {
                    match streams[who].next_message() {
                        Ok(Some(message)) => relay.handle_client(from, &message, now, &mut ports),
                        Ok(None) => break,
                        Err(_) => {
                            relay.client_closed(from);
                            streams[who] = TurnStreamDecoder::new();
                            break;
                        }
                    }
                }
            }
            2 => {
                let at = SocketAddr::from(([0, 0, 0, 0], 50001 + who as u16));
                let peer = SocketAddr::from(([198, 51, 100, 9], 6000 + who as u16));
                relay.handle_peer(at, peer, payload, now);
            }
            _ => {
                now += Duration::from_secs(len as u64 % 4000);
                relay.tick(now);
            }
        }
        while let Some(out) = relay.poll_output() {
            assert!(!matches!(out, Output::ToPeer { .. }), "relayed without credentials");
        }
    }
    assert_eq!(relay.allocation_count(), 0, "an allocation without credentials");
});
