//! Scheduling priority for the threads that keep media in real time.
//!
//! Audio and video threads wake every few milliseconds and must run soon after: on a busy
//! machine (a compile, a browser, a CI neighbour) a normal-priority thread can wait tens of
//! milliseconds for a core, which is heard as a gap and seen as a late frame. Like browsers and
//! native conferencing apps, Hearth raises these threads above ordinary work. It uses a higher
//! *nice* priority, not a real-time policy: a busy media thread can then never lock up the
//! machine. Raising priority needs permission (CAP_SYS_NICE, or an `RLIMIT_NICE` that allows it);
//! without it the thread keeps its normal priority and nothing else changes.
//!
//! Hearth's own threads are raised only after they opened their device: threads a device
//! backend starts inherit their creator's priority, and cpal's PulseAudio backend keeps one of
//! them busy (~80% of a core measured while playing); raised to the audio level, it starved the
//! network tasks and delayed received video by 50-150 ms. That backend thread is raised on its
//! own, a little ([`MediaThread::AudioBackend`]).

/// What a thread does, which decides how urgently it is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaThread {
    /// Capture, playout and mixing of audio: a gap is heard.
    Audio,
    /// Capture, encoding, decoding and presenting video.
    Video,
    /// The audio backend's thread that asks a speaker for samples. cpal 0.18's PulseAudio
    /// backend runs that callback on a thread that also busy-polls (~80% of a core while
    /// playing): raised like [`MediaThread::Audio`] it starved the tasks that receive RTP;
    /// left at 0, a CPU hog made it under-run (PulseAudio then skips what comes late). Raised
    /// a little, it wins against ordinary work and leaves the rest of the call its share.
    AudioBackend,
}

impl MediaThread {
    /// The nice value asked for (lower runs first; ordinary threads are 0).
    pub fn nice(self) -> i32 {
        match self {
            MediaThread::Audio => -15,
            MediaThread::Video => -10,
            MediaThread::AudioBackend => -5,
        }
    }
}

/// Raise the calling thread's scheduling priority for `kind`. Returns whether it took effect
/// (false without permission, or where the platform has no per-thread nice value).
pub fn raise_current_thread(kind: MediaThread) -> bool {
    set_nice(kind.nice())
}

#[cfg(target_os = "linux")]
fn set_nice(nice: i32) -> bool {
    // On Linux the nice value belongs to the thread: `who == 0` with PRIO_PROCESS means the
    // calling thread only.
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_nice: i32) -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice_now() -> i32 {
        // SAFETY: getpriority takes plain integers.
        #[allow(unsafe_code)]
        unsafe {
            libc::getpriority(libc::PRIO_PROCESS, 0)
        }
    }

    #[test]
    fn only_the_calling_thread_is_raised() {
        let before = nice_now();
        let (raised, inside) = std::thread::spawn(|| (raise_current_thread(MediaThread::Video), nice_now()))
            .join()
            .unwrap_or((false, 0));
        if raised {
            assert_eq!(inside, MediaThread::Video.nice());
        }
        assert_eq!(nice_now(), before, "other threads keep their priority");
    }
}
