//! What /proc tells about a process: its name, whether it is a kernel
//! thread, and which file an address is mapped from.

use std::path::Path;

const PF_KTHREAD: u64 = 0x0020_0000;

pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The process name (its main thread's comm), if the process is alive.
pub fn process_name(tgid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{tgid}/comm")).ok()?;
    Some(comm.trim_end_matches('\n').to_string())
}

/// True for kernel threads, which have no user stack; None once gone.
pub fn is_kernel_thread(tgid: u32) -> Option<bool> {
    let stat = std::fs::read_to_string(format!("/proc/{tgid}/stat")).ok()?;
    // The comm field may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let flags: u64 = rest.split_whitespace().nth(6)?.parse().ok()?;
    Some(flags & PF_KTHREAD != 0)
}

/// One file-backed mapping of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub file_offset: u64,
    pub path: String,
}

impl Mapping {
    /// The name perf and FlameGraph show for an unnamed address:
    /// the file name and the offset in the file.
    pub fn describe(&self, addr: u64) -> String {
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
pub fn mappings(tgid: u32) -> Vec<Mapping> {
    std::fs::read_to_string(format!("/proc/{tgid}/maps"))
        .map(|text| parse_maps(&text))
        .unwrap_or_default()
}

fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let _perms = fields.next()?;
            let file_offset = u64::from_str_radix(fields.next()?, 16).ok()?;
            let _dev = fields.next()?;
            let _inode = fields.next()?;
            let path = fields.collect::<Vec<_>>().join(" ");
            if path.is_empty() {
                return None;
            }
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                file_offset,
                path,
            })
        })
        .collect()
}

pub fn find_mapping(mappings: &[Mapping], addr: u64) -> Option<&Mapping> {
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
    fn our_own_process_is_a_user_process() {
        let me = std::process::id();
        assert_eq!(is_kernel_thread(me), Some(false));
        assert!(process_name(me).is_some());
        assert!(!mappings(me).is_empty());
    }
}
