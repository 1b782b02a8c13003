//! JIT perf maps (`/tmp/perf-PID.map`), read by bpfprof itself rather than
//! by blazesym: any user can plant a file in /tmp, so a map is used only
//! if it is a regular file owned by the process's user, reached without
//! following a link, opened without blocking, and read up to a bound; a
//! line that does not parse is skipped, not the whole map. Where a map is
//! and whose it must be is settled while the process is alive, so a map
//! written just before the process exited is still read after it.

use std::{
    collections::HashMap,
    ffi::CString,
    fs::File,
    io::Read,
    os::{
        fd::{AsRawFd, FromRawFd},
        unix::fs::MetadataExt,
    },
};

use crate::profile::PerfMapLosses;

/// The most of a perf map that is read: far above what a JIT writes for a
/// long run, far below what would hurt to hold.
const MAX_PERF_MAP_BYTES: u64 = 64 << 20;

/// Longer lines are not JIT symbols: skipped.
const MAX_LINE: usize = 4096;

/// The perf maps of the processes seen, kept after they exit.
#[derive(Default)]
pub(crate) struct PerfMaps {
    by_tgid: HashMap<u32, Tracked>,
    losses: PerfMapLosses,
    /// Our own root directory's (device, inode), looked up once.
    our_root: std::cell::OnceCell<Option<(u64, u64)>>,
}

struct Tracked {
    place: Place,
    /// The last map read, and the file it came from.
    map: Option<(FileId, PerfMap)>,
    /// Counted once per process, however often it is looked at.
    refused: bool,
}

/// Where a process's perf map is, and whose it must be.
#[derive(Clone, PartialEq, Eq)]
struct Place {
    /// The pid the process sees itself as: the file is named after it.
    ns_pid: u32,
    /// Its effective user: the only owner trusted.
    euid: u32,
    /// Its root is ours, so the file is reachable by our /tmp after exit.
    shares_our_root: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
}

impl PerfMaps {
    /// Reads (or rereads, if it changed) the perf map of a live process.
    pub(crate) fn refresh(&mut self, tgid: u32) {
        let our_root = *self.our_root.get_or_init(|| {
            let ours = std::fs::metadata("/").ok()?;
            Some((ours.dev(), ours.ino()))
        });
        let Some(place) = Place::of(tgid, our_root) else {
            return; // gone: keep what was read
        };
        let tracked = self.by_tgid.entry(tgid).or_insert_with(|| Tracked {
            place: place.clone(),
            map: None,
            refused: false,
        });
        if tracked.place != place {
            // An exec with another user, or a move to another root.
            tracked.place = place;
            tracked.map = None;
            tracked.refused = false;
        }
        let root = format!("/proc/{tgid}/root");
        tracked.read(&root, &mut self.losses);
    }

    /// After exit: reads a map written since the last refresh, where the
    /// process shared our root (elsewhere its /tmp is out of reach).
    pub(crate) fn refresh_exited(&mut self, tgid: u32) {
        let Some(tracked) = self.by_tgid.get_mut(&tgid) else {
            return;
        };
        if tracked.place.shares_our_root {
            tracked.read("/", &mut self.losses);
        }
    }

    /// The JIT symbol covering `addr`, if the process has a usable map.
    pub(crate) fn lookup(&self, tgid: u32, addr: u64) -> Option<&str> {
        self.by_tgid.get(&tgid)?.map.as_ref()?.1.lookup(addr)
    }

    pub(crate) fn forget(&mut self, tgid: u32) {
        self.by_tgid.remove(&tgid);
    }

    pub(crate) fn take_losses(&mut self) -> PerfMapLosses {
        std::mem::take(&mut self.losses)
    }
}

impl Tracked {
    fn refuse(&mut self, losses: &mut PerfMapLosses) {
        if !self.refused {
            self.refused = true;
            losses.ignored += 1;
        }
    }

    fn read(&mut self, root: &str, losses: &mut PerfMapLosses) {
        let path = format!("tmp/perf-{}.map", self.place.ns_pid);
        let file = match open_beneath(root, &path) {
            Ok(file) => file,
            // A link on the way: refused, like a file of another user.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return self.refuse(losses),
            Err(_) => return, // none (yet)
        };
        let Ok(meta) = file.metadata() else { return };
        if !meta.file_type().is_file() || meta.uid() != self.place.euid {
            return self.refuse(losses);
        }
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        };
        if self.map.as_ref().is_some_and(|(known, _)| *known == id) {
            return;
        }
        let mut bytes = Vec::new();
        if file
            .take(MAX_PERF_MAP_BYTES)
            .read_to_end(&mut bytes)
            .is_err()
        {
            return;
        }
        if meta.size() > MAX_PERF_MAP_BYTES {
            losses.cut += 1;
        }
        let (map, skipped) = PerfMap::parse(&bytes);
        losses.lines_skipped += skipped;
        self.map = Some((id, map));
    }
}

impl Place {
    fn of(tgid: u32, our_root: Option<(u64, u64)>) -> Option<Place> {
        let (euid, ns_pid) = crate::procfs::euid_and_ns_pid(tgid)?;
        let theirs = std::fs::metadata(format!("/proc/{tgid}/root")).ok()?;
        let shares_our_root = our_root == Some((theirs.dev(), theirs.ino())) && ns_pid == tgid;
        Some(Place {
            ns_pid,
            euid,
            shares_our_root,
        })
    }
}

/// The kernel's `struct open_how` (libc's cannot be built outside libc).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` below `root` as if `root` were `/`, refusing every symbolic
/// link on the way (a planted `/tmp/perf-N.map -> /etc/shadow` is refused,
/// not followed), and without blocking on a FIFO or device.
fn open_beneath(root: &str, path: &str) -> std::io::Result<File> {
    let root = File::open(root)?;
    let path = CString::new(path)?;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 reads `how` and the NUL-terminated path, both live.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

/// One process's JIT symbols, sorted by start address.
#[derive(Debug, Default)]
pub(crate) struct PerfMap {
    entries: Vec<(u64, u64, String)>,
}

impl PerfMap {
    /// Parses `START SIZE NAME` lines (hex), returning the map and how many
    /// lines were skipped. Where two entries start at one address, the
    /// later wins, as a JIT reusing memory writes it last.
    pub(crate) fn parse(bytes: &[u8]) -> (PerfMap, u64) {
        let mut entries = Vec::new();
        let mut skipped = 0;
        for line in bytes.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            match parse_line(line) {
                Some(entry) => entries.push(entry),
                None => skipped += 1,
            }
        }
        entries.reverse();
        entries.sort_by_key(|e: &(u64, u64, String)| e.0);
        entries.dedup_by_key(|e| e.0);
        (PerfMap { entries }, skipped)
    }

    pub(crate) fn lookup(&self, addr: u64) -> Option<&str> {
        let i = self
            .entries
            .partition_point(|e| e.0 <= addr)
            .checked_sub(1)?;
        let (start, size, name) = &self.entries[i];
        (addr - start < *size).then_some(name.as_str())
    }
}

fn parse_line(line: &[u8]) -> Option<(u64, u64, String)> {
    if line.len() > MAX_LINE {
        return None;
    }
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let (start, rest) = line.split_once(' ')?;
    let (size, name) = rest.split_once(' ')?;
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let (start, size) = (hex(start)?, hex(size)?);
    let name = name.trim();
    (size > 0 && !name.is_empty() && start.checked_add(size).is_some())
        .then(|| (start, size, name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_lines_and_skips_bad_ones() {
        let text = b"1000 10 first\nnot a line\n2000 zz bad_size\n3000 8 name with spaces\n\n\
                     4000 0 empty\n1000 10 replaced\n";
        let (map, skipped) = PerfMap::parse(text);
        assert_eq!(skipped, 3);
        assert_eq!(map.lookup(0x1000), Some("replaced"));
        assert_eq!(map.lookup(0x100f), Some("replaced"));
        assert_eq!(map.lookup(0x1010), None);
        assert_eq!(map.lookup(0x3004), Some("name with spaces"));
        assert_eq!(map.lookup(0xfff), None);
        assert_eq!(map.lookup(0x4000), None);
    }

    #[test]
    fn an_over_long_line_is_skipped() {
        let mut text = b"1000 10 ".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE));
        text.extend(b"\n2000 10 ok\n");
        let (map, skipped) = PerfMap::parse(&text);
        assert_eq!((skipped, map.lookup(0x2000)), (1, Some("ok")));
    }

    #[test]
    fn links_are_refused_and_fifos_do_not_block() {
        let dir = std::env::temp_dir().join(format!("bpfprof-perfmap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(dir.join("tmp/perf-1.map"), "1000 10 real\n").unwrap();
        std::os::unix::fs::symlink(dir.join("tmp/perf-1.map"), dir.join("tmp/perf-2.map")).unwrap();
        let fifo = CString::new(dir.join("tmp/perf-3.map").to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let root = dir.to_str().unwrap();
        assert!(open_beneath(root, "tmp/perf-1.map").is_ok());
        let link = open_beneath(root, "tmp/perf-2.map").unwrap_err();
        assert_eq!(link.raw_os_error(), Some(libc::ELOOP));
        // Opened without blocking; refused later as not a regular file.
        let fifo = open_beneath(root, "tmp/perf-3.map").unwrap();
        assert!(!fifo.metadata().unwrap().file_type().is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
