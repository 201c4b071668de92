//! Arbitrary frames from a few connections, decoded and fed to the room hub with connects,
//! disconnects and time passing: the hub never panics and always drains.
//!
//! Input format: lines; each line is `<conn digit><op char><rest>`: op `c` connect, `d`
//! disconnect, `t` advance time by <rest> seconds, `m` message with JSON <rest> (a client frame,
//! so it may carry a `cseq`).
#![no_main]

use hearth_signal::hub::{ConnId, Hub, HubConfig};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut now = Instant::now();
    let cfg =
        HubConfig { max_room_size: 3, history_len: 4, log_len: 8, pending_limit: 4, ..HubConfig::default() };
    let mut hub = Hub::new(cfg, Some(0), now, 1_700_000_000_000);
    for line in text.lines().take(256) {
        let mut chars = line.chars();
        let (Some(c), Some(op)) = (chars.next(), chars.next()) else { continue };
        let conn = ConnId(u64::from(c.to_digit(10).unwrap_or(0)));
        let rest = chars.as_str();
        match op {
            'c' => hub.connect(conn, std::net::Ipv4Addr::new(192, 0, 2, 1).into()),
            'd' => hub.disconnect(now, conn),
            't' => {
                now += Duration::from_secs(rest.parse::<u64>().unwrap_or(1).min(3600));
                hub.tick(now);
            }
            _ => {
                if let Ok(frame) = hearth_proto::decode_client_frame(rest) {
                    hub.message(now, conn, frame);
                }
            }
        }
        while hub.poll_output().is_some() {}
    }
    assert!(hub.poll_timeout().is_none_or(|t| t >= now));
});
