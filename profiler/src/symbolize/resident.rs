//! Keeps the files blazesym maps from adding up in bpfprof's resident
//! memory. It maps each binary and debug file it reads whole, read-only and
//! shared, for the whole run, and indexing a library touches all of its
//! symbol table: with a compiler's libraries in use (each with symbol and
//! string tables of tens of megabytes), those pages alone would be most of
//! bpfprof's RSS. After each batch they are given back: they stay in the
//! page cache, and a later lookup maps the few it needs again from there.

/// Drops the pages of every read-only shared mapping of a file from
/// bpfprof's resident set.
pub(crate) fn release_mapped_files() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for (start, end) in maps.lines().filter_map(releasable) {
        // SAFETY: a read-only shared mapping of a file: its pages come back
        // from the same file on the next access, so no reader of it sees
        // other bytes than before. Nothing else is touched.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// The range of a /proc/self/maps line that can be released: mapped
/// read-only and shared from a file (not memfd, a device, or kernel memory
/// such as a BPF ring buffer, which is not a path and is never faulted in
/// again).
fn releasable(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let path = fields.nth(3)?;
    let file = path.starts_with('/') && !path.starts_with("/memfd:") && !path.starts_with("/dev/");
    if perms != "r--s" || !file {
        return None;
    }
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (end > start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn only_read_only_shared_file_mappings_are_released() {
        let line = |perms: &str, path: &str| format!("7f00-7f10 {perms} 00000000 08:01 42 {path}");
        assert_eq!(
            releasable(&line("r--s", "/usr/lib/libLLVM.so")),
            Some((0x7f00, 0x7f10))
        );
        for (perms, path) in [
            ("r--p", "/usr/lib/libc.so.6"),
            ("r-xp", "/usr/bin/bpfprof"),
            ("rw-s", "/tmp/shared"),
            ("r--s", "anon_inode:bpf-map"),
            ("r--s", "/memfd:sealed"),
            ("r--s", "/dev/mem"),
            ("r--s", ""),
        ] {
            assert_eq!(releasable(&line(perms, path)), None, "{perms} {path}");
        }
    }

    /// Resident KiB of the mapping that starts at `addr`.
    fn rss_kib(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{addr:x}-");
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
        lines
            .find_map(|l| l.strip_prefix("Rss:"))
            .and_then(|kib| kib.trim().strip_suffix("kB")?.trim().parse().ok())
            .expect("the mapping is in smaps")
    }

    #[test]
    fn released_pages_read_back_the_same() {
        let path = std::env::temp_dir().join(format!("bpfprof-resident-{}", std::process::id()));
        let bytes: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: a fresh read-only shared mapping of our own file, unmapped below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes.len(),
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED);
        // SAFETY: the mapping is bytes.len() long and readable.
        let mapped = unsafe { std::slice::from_raw_parts(addr as *const u8, bytes.len()) };
        assert!(mapped == &bytes[..]);
        assert!(rss_kib(addr as usize) >= 4096);
        release_mapped_files();
        assert_eq!(rss_kib(addr as usize), 0);
        assert!(mapped == &bytes[..]);
        // SAFETY: unmapping what was mapped above, no longer borrowed.
        unsafe { libc::munmap(addr, bytes.len()) };
        let _ = std::fs::remove_file(&path);
    }
}
