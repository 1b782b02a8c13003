//! What /proc tells about processes: which exist, their names, whether one
//! is a kernel thread, its threads blocked now, and which file an address
//! is mapped from.

use std::path::Path;

const PF_KTHREAD: u64 = 0x0020_0000;

pub(crate) fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Those of `pids` that no longer exist.
pub(crate) fn exited(pids: impl IntoIterator<Item = u32>) -> Vec<u32> {
    pids.into_iter().filter(|&pid| !exists(pid)).collect()
}

/// The process (thread group) task `pid` belongs to: itself for a
/// process, its process for a thread; None when there is no such task.
pub(crate) fn tgid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let tgid = status.lines().find_map(|l| l.strip_prefix("Tgid:"))?;
    tgid.trim().parse().ok()
}

/// The process name (its main thread's comm), if the process is alive.
pub(crate) fn process_name(tgid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{tgid}/comm")).ok()?;
    Some(comm.trim_end_matches('\n').to_string())
}

/// True for kernel threads, which have no user stack; None once gone.
pub(crate) fn is_kernel_thread(tgid: u32) -> Option<bool> {
    let stat = std::fs::read_to_string(format!("/proc/{tgid}/stat")).ok()?;
    let flags: u64 = fields_after_comm(&stat)?.nth(6)?.parse().ok()?;
    Some(flags & PF_KTHREAD != 0)
}

/// bpfprof's own peak resident memory (VmHWM), in KiB.
pub(crate) fn own_peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    kib.trim().strip_suffix("kB")?.trim().parse().ok()
}

pub(crate) fn thread_exists(tgid: u32, tid: u32) -> bool {
    Path::new(&format!("/proc/{tgid}/task/{tid}")).exists()
}

/// Every process id in /proc.
pub(crate) fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A thread as /proc shows it when it is not running.
#[derive(Debug, Clone)]
pub(crate) struct ThreadState {
    pub(crate) tid: u32,
    /// The state letter of /proc/PID/stat: R, S, D, T, t, I, Z, X.
    pub(crate) state: char,
    pub(crate) comm: [u8; 16],
    /// Kernel function names, innermost first (/proc/PID/task/TID/stack).
    pub(crate) kernel_stack: Vec<String>,
    /// The user-space PC where it entered the kernel (/proc/.../syscall).
    pub(crate) user_pc: Option<u64>,
}

/// The threads of a process that are not running, with where they wait.
pub(crate) fn blocked_threads(tgid: u32) -> Vec<ThreadState> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{tgid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|entry| {
            let tid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let dir = format!("/proc/{tgid}/task/{tid}");
            let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
            let state = fields_after_comm(&stat)?.next()?.chars().next()?;
            if state == 'R' {
                return None;
            }
            let mut comm = [0u8; 16];
            let name = std::fs::read_to_string(format!("{dir}/comm")).unwrap_or_default();
            let name = name.trim_end_matches('\n').as_bytes();
            let len = name.len().min(15);
            comm[..len].copy_from_slice(&name[..len]);
            Some(ThreadState {
                tid,
                state,
                comm,
                kernel_stack: parse_kernel_stack(
                    &std::fs::read_to_string(format!("{dir}/stack")).unwrap_or_default(),
                ),
                user_pc: parse_syscall_pc(
                    &std::fs::read_to_string(format!("{dir}/syscall")).unwrap_or_default(),
                ),
            })
        })
        .collect()
}

/// `[<0>] hrtimer_nanosleep+0xb5/0x130` lines to function names.
fn parse_kernel_stack(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let symbol = line.split_whitespace().nth(1)?;
            Some(symbol.split('+').next()?.to_string())
        })
        .collect()
}

/// The last field of /proc/.../syscall is the user PC (when blocked in one).
fn parse_syscall_pc(text: &str) -> Option<u64> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() < 3 {
        return None;
    }
    u64::from_str_radix(fields.last()?.trim_start_matches("0x"), 16).ok()
}

/// A process's effective user, and the pid it sees itself as (in its own
/// pid namespace); None once it is gone.
pub(crate) fn euid_and_ns_pid(tgid: u32) -> Option<(u32, u32)> {
    use std::io::Read;
    // Bounded: /proc files are the kernel's, but every read stays small.
    let mut status = String::new();
    std::fs::File::open(format!("/proc/{tgid}/status"))
        .ok()?
        .take(64 << 10)
        .read_to_string(&mut status)
        .ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
    };
    let euid: u32 = field("Uid:")?.get(1)?.parse().ok()?;
    let ns_pid = field("NSpid:")
        .and_then(|v| v.last()?.parse::<u32>().ok())
        .unwrap_or(tgid);
    Some((euid, ns_pid))
}

/// The fields of a /proc stat line after the comm, starting with the state.
/// The comm may hold spaces and parentheses: fields resume after the last ')'.
fn fields_after_comm(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace())
}

/// One file-backed mapping of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) file_offset: u64,
    pub(crate) path: String,
    pub(crate) executable: bool,
    /// Device and inode of the file: which file, whatever its path.
    pub(crate) file_id: (String, u64),
}

impl Mapping {
    /// The path through which the kernel opens this mapping's file for
    /// root, whatever mount namespace it is in (blazesym's cache key).
    pub(crate) fn map_files_path(&self, tgid: u32) -> std::path::PathBuf {
        format!("/proc/{tgid}/map_files/{:x}-{:x}", self.start, self.end).into()
    }

    /// Whether the file at this mapping's path, from bpfprof's mount
    /// namespace, is the one mapped: not when it was deleted or replaced,
    /// or lives in another mount namespace (a container).
    pub(crate) fn reachable(&self, tgid: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (Ok(by_path), Ok(mapped)) = (
            std::fs::metadata(&self.path),
            std::fs::metadata(self.map_files_path(tgid)),
        ) else {
            return false;
        };
        (by_path.dev(), by_path.ino()) == (mapped.dev(), mapped.ino())
    }

    /// The name perf and FlameGraph show for an unnamed address:
    /// the file name and the offset in the file.
    pub(crate) fn describe(&self, addr: u64) -> String {
        // Special mappings ([stack], [heap], [anon:...]) have no file.
        if let Some(special) = self
            .path
            .strip_prefix('[')
            .and_then(|p| p.strip_suffix(']'))
        {
            return format!("[{special}+{:#x}]", addr - self.start);
        }
        let name = self.path.rsplit('/').next().unwrap_or(&self.path);
        format!("[{name}+{:#x}]", addr - self.start + self.file_offset)
    }
}

/// The mappings of a live process, or empty once it has exited.
pub(crate) fn mappings(tgid: u32) -> Vec<Mapping> {
    std::fs::read_to_string(format!("/proc/{tgid}/maps"))
        .map(|text| parse_maps(&text))
        .unwrap_or_default()
}

/// The executable mappings of a live process, anonymous ones (JIT code)
/// included.
pub(crate) fn executable_mappings(tgid: u32) -> Vec<Mapping> {
    std::fs::read_to_string(format!("/proc/{tgid}/maps"))
        .map(|text| parse_all_maps(&text))
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.executable)
        .collect()
}

fn parse_maps(text: &str) -> Vec<Mapping> {
    parse_all_maps(text)
        .into_iter()
        .filter(|m| !m.path.is_empty())
        .collect()
}

fn parse_all_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let executable = fields.next()?.contains('x');
            let file_offset = u64::from_str_radix(fields.next()?, 16).ok()?;
            let dev = fields.next()?.to_string();
            let inode = fields.next()?.parse().ok()?;
            let path = fields.collect::<Vec<_>>().join(" ");
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                file_offset,
                path,
                executable,
                file_id: (dev, inode),
            })
        })
        .collect()
}

pub(crate) fn find_mapping(mappings: &[Mapping], addr: u64) -> Option<&Mapping> {
    mappings.iter().find(|m| (m.start..m.end).contains(&addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 fe:01 1234 /usr/bin/app
55d0c0a01000-55d0c0a05000 r-xp 00001000 fe:01 1234 /usr/bin/app
7f1e2a000000-7f1e2a100000 r-xp 00028000 fe:01 99 /usr/lib/libfoo.so (deleted)
7ffd1a000000-7ffd1a021000 rw-p 00000000 00:00 0 [stack]
7ffd1a100000-7ffd1a121000 rw-p 00000000 00:00 0
";

    #[test]
    fn unknown_addresses_keep_their_module_and_file_offset() {
        let maps = parse_maps(MAPS);
        assert_eq!(maps.len(), 4, "anonymous mappings are skipped");
        let stack = find_mapping(&maps, 0x7ffd1a000010).unwrap();
        assert_eq!(stack.describe(0x7ffd1a000010), "[stack+0x10]");
        let m = find_mapping(&maps, 0x55d0c0a01a2b).unwrap();
        assert_eq!(m.describe(0x55d0c0a01a2b), "[app+0x1a2b]");
        let lib = find_mapping(&maps, 0x7f1e2a000010).unwrap();
        assert_eq!(lib.path, "/usr/lib/libfoo.so (deleted)");
        assert!(find_mapping(&maps, 0x1000).is_none());
    }

    #[test]
    fn reads_where_a_blocked_thread_waits() {
        let stack = "[<0>] hrtimer_nanosleep+0xb5/0x130\n[<0>] do_syscall_64+0x71/0x280\n";
        assert_eq!(
            parse_kernel_stack(stack),
            ["hrtimer_nanosleep", "do_syscall_64"]
        );
        let syscall =
            "230 0x0 0x0 0x7ffd16dde4f0 0x7ffd16dde530 0x0 0x0 0x7ffd16dde4d8 0x7f5ada8c0503";
        assert_eq!(parse_syscall_pc(syscall), Some(0x7f5ada8c0503));
        assert_eq!(parse_syscall_pc("running"), None);
    }

    #[test]
    fn a_sleeping_child_is_seen_blocked() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let threads = blocked_threads(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(threads.len(), 1, "{threads:?}");
        assert_eq!(threads[0].state, 'S');
        assert_eq!(&threads[0].comm[..5], b"sleep");
        assert!(threads[0].user_pc.is_some());
        assert!(all_pids().contains(&std::process::id()));
    }

    #[test]
    fn our_own_process_is_a_user_process() {
        let me = std::process::id();
        assert_eq!(is_kernel_thread(me), Some(false));
        assert!(process_name(me).is_some());
        assert!(!mappings(me).is_empty());
    }
}
