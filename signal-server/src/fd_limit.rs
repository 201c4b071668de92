//! The open-file limit: every WebSocket is a file descriptor, so `--max-connections` means
//! nothing above `RLIMIT_NOFILE`. At start the binary raises the soft limit to the hard limit
//! (the most an unprivileged process may take) and warns when the connection limit still does
//! not fit.

/// Descriptors kept for everything that is not a WebSocket: stdio, the listener, the runtime's
/// epoll and wake-up descriptors, HTTP requests in flight (`/metrics`, `/healthz`, upgrades not
/// yet counted), config and TLS files, DNS lookups, and whatever else shares the process (a TURN
/// server embedded beside it, a log shipper). Generous, because running out makes `accept` fail
/// for everyone.
pub const RESERVED_FDS: u64 = 256;

/// How many WebSocket connections fit under an open-file limit of `nofile`.
pub fn connections_allowed(nofile: u64) -> u64 {
    nofile.saturating_sub(RESERVED_FDS)
}

/// The warning to log when `max_connections` does not fit under `nofile`, if it does not.
pub fn check_max_connections(max_connections: usize, nofile: u64) -> Option<String> {
    let allowed = connections_allowed(nofile);
    let wanted = u64::try_from(max_connections).unwrap_or(u64::MAX);
    (wanted > allowed).then(|| {
        format!(
            "--max-connections {max_connections} exceeds what the open-file limit allows: {nofile} \
             descriptors leave room for about {allowed} connections ({RESERVED_FDS} are kept for \
             other files); beyond that accepts fail. Raise the hard limit (ulimit -Hn, systemd \
             LimitNOFILE=) or lower --max-connections"
        )
    })
}

/// The soft and hard `RLIMIT_NOFILE` after raising the soft limit to the hard one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Raise the soft open-file limit to the hard limit and return both as they are now.
#[cfg(unix)]
pub fn raise_nofile_limit() -> std::io::Result<NofileLimit> {
    let (soft, hard) = rlimit_nofile(None)?;
    if soft >= hard {
        return Ok(NofileLimit { soft, hard });
    }
    let (soft, hard) = rlimit_nofile(Some(hard))?;
    Ok(NofileLimit { soft, hard })
}

/// Not available on this platform.
#[cfg(not(unix))]
pub fn raise_nofile_limit() -> std::io::Result<NofileLimit> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "no RLIMIT_NOFILE on this platform"))
}

/// Read `RLIMIT_NOFILE`, after setting its soft limit to `new_soft` if given; returns
/// (soft, hard).
///
/// The one unsafe block of the crate: `getrlimit`/`setrlimit` are plain syscalls that read or
/// write the `rlimit` struct we pass by reference and keep no pointer to it; there is no safe
/// wrapper in std. The values are not changed in any other way.
#[cfg(unix)]
#[allow(unsafe_code)]
// rlim_t is u64 on Linux but not on every unix.
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn rlimit_nofile(new_soft: Option<u64>) -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if let Some(soft) = new_soft {
        lim.rlim_cur = soft.min(lim.rlim_max as u64) as libc::rlim_t;
        // SAFETY: `lim` is a valid rlimit; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((lim.rlim_cur as u64, lim.rlim_max as u64))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_under_the_limit_minus_the_reserve() {
        assert_eq!(connections_allowed(1024), 768);
        assert_eq!(connections_allowed(100), 0);
        assert_eq!(connections_allowed(1_048_576), 1_048_320);
        assert!(check_max_connections(768, 1024).is_none());
        let w = check_max_connections(20_000, 1024).unwrap();
        assert!(w.contains("20000") && w.contains("1024") && w.contains("768"), "{w}");
        assert!(check_max_connections(20_000, 65_536).is_none());
        assert!(check_max_connections(usize::MAX, u64::MAX).is_some());
    }

    #[cfg(unix)]
    #[test]
    fn raising_leaves_soft_at_hard() {
        let lim = raise_nofile_limit().unwrap();
        assert_eq!(lim.soft, lim.hard);
        assert_eq!(raise_nofile_limit().unwrap(), lim);
    }
}
