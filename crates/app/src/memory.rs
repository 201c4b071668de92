//! Memory of a group of processes (the desktop benchmark's "RSS of all its processes").

/// Bytes of the distinct physical pages resident in any of `pids`: for every mapping with
/// resident pages (`/proc/PID/smaps`), the page frame numbers of its present pages
/// (`/proc/PID/pagemap`), as one set. A page that several processes map (a shared library's
/// code, a shared memory buffer) counts once, where a sum of RSS counts it once per process.
/// `None` when the frame numbers read as zero (the kernel hides them without CAP_SYS_ADMIN)
/// or a process cannot be read.
#[cfg(target_os = "linux")]
pub fn resident_pages_once(pids: &[i32]) -> Option<u64> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    const PAGE: u64 = 4096;
    let mut frames = std::collections::HashSet::new();
    let mut present = 0u64;
    for pid in pids {
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
        let mut pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap")).ok()?;
        let mut range: Option<(u64, u64)> = None;
        let mut buf = Vec::new();
        for line in smaps.lines() {
            let head = line.split_whitespace().next().unwrap_or("");
            if let Some((a, b)) = head.split_once('-')
                && let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
            {
                range = Some((a, b));
                continue;
            }
            let Some(kb) = line.strip_prefix("Rss:") else { continue };
            let resident = kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0);
            let Some((a, b)) = range.take() else { continue };
            // [vsyscall] lies outside what pagemap covers.
            if resident == 0 || a >= 0xffff_ffff_ff60_0000 {
                continue;
            }
            buf.resize(((b - a) / PAGE * 8) as usize, 0);
            pagemap.seek(SeekFrom::Start(a / PAGE * 8)).ok()?;
            pagemap.read_exact(&mut buf).ok()?;
            for entry in buf.chunks_exact(8) {
                let v = u64::from_le_bytes(entry.try_into().unwrap_or_default());
                if v >> 63 == 1 {
                    present += 1;
                    frames.insert(v & ((1 << 55) - 1));
                }
            }
        }
    }
    // Without the privilege every present page reads as frame 0.
    if present > 0 && frames.len() == 1 && frames.contains(&0) {
        return None;
    }
    Some(frames.len() as u64 * PAGE)
}

/// Page frame numbers are only readable on Linux.
#[cfg(not(target_os = "linux"))]
pub fn resident_pages_once(_pids: &[i32]) -> Option<u64> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::resident_pages_once;

    /// A process listed twice is counted once, where a sum of RSS counts it twice; and the
    /// figure is what the process holds resident (within what changed between the reads).
    #[test]
    fn pages_mapped_by_several_processes_count_once() {
        let me = std::process::id() as i32;
        let Some(once) = resident_pages_once(&[me]) else {
            eprintln!("page frame numbers are hidden (not root): nothing to check");
            return;
        };
        // Touch 8 MiB more, then both views must see them once.
        let extra = vec![1u8; 8 << 20];
        std::hint::black_box(&extra);
        let again = resident_pages_once(&[me]).unwrap();
        let twice = resident_pages_once(&[me, me]).unwrap();
        assert!(again >= once + (7 << 20), "8 MiB touched: {once} -> {again}");
        assert!(twice.abs_diff(again) < (2 << 20), "listed twice: {twice} vs once: {again}");
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        let rss = rss_kb * 1024;
        assert!(again.abs_diff(rss) < rss / 10 + (2 << 20), "pagemap {again} vs VmRSS {rss}");
    }
}
