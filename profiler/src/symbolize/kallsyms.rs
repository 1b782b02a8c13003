//! Where kernel addresses get their names. Reading /proc/kallsyms makes
//! the kernel format ~200k symbols, a quarter of a short run's CPU. The
//! core kernel's text does not change while the machine is up, so its
//! symbols are kept in /run/bpfprof/BOOT_ID/ (root-only, on tmpfs, gone at
//! reboot) for later runs. Addresses outside it (modules, BPF programs,
//! trampolines, which come and go) are always named from /proc/kallsyms.
//! Where a vmlinux image is installed, blazesym's own search (which
//! prefers it) is left alone.

use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use blazesym::{
    MaybeDefault,
    symbolize::source::{Kernel, Source},
};

const CACHE_ROOT: &str = "/run/bpfprof";

/// A copy of the core kernel's text symbols, in kallsyms' own format, and
/// the addresses it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreText {
    pub kallsyms: PathBuf,
    pub start: u64,
    pub end: u64,
}

impl CoreText {
    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
    }

    /// The copy as a blazesym source (no vmlinux: none is installed).
    pub fn source(&self) -> Source<'static> {
        Source::Kernel(Kernel {
            kallsyms: MaybeDefault::Some(self.kallsyms.clone()),
            vmlinux: MaybeDefault::None,
            ..Kernel::default()
        })
    }
}

/// The core kernel's symbols for this boot: the cached copy, or a new one
/// made from /proc/kallsyms. None where there is a vmlinux image or the
/// copy cannot be made; then /proc/kallsyms serves every address.
pub fn core_text() -> Option<CoreText> {
    if has_vmlinux() {
        return None;
    }
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let dir = Path::new(CACHE_ROOT).join(boot_id.trim());
    cached(&dir).or_else(|| make(&dir))
}

/// blazesym's vmlinux search (`kernel::resolver`), which wins over kallsyms.
fn has_vmlinux() -> bool {
    let Ok(release) = fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    ["/boot", "/usr/lib/debug/boot"].iter().any(|dir| {
        Path::new(dir)
            .join(format!("vmlinux-{}", release.trim()))
            .exists()
    })
}

fn cached(dir: &Path) -> Option<CoreText> {
    let kallsyms = dir.join("kallsyms");
    let range = dir.join("range");
    // Only what root wrote and only root can change is trusted.
    for path in [dir, &kallsyms, &range] {
        let meta = fs::metadata(path).ok()?;
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return None;
        }
    }
    let (start, end) = parse_range(&fs::read_to_string(&range).ok()?)?;
    Some(CoreText {
        kallsyms,
        start,
        end,
    })
}

fn make(dir: &Path) -> Option<CoreText> {
    let all = fs::read_to_string("/proc/kallsyms").ok()?;
    let (text, start, end) = core_symbols(&all)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ok()?;
    remove_other_boots(dir);
    let kallsyms = dir.join("kallsyms");
    write_atomically(&kallsyms, text.as_bytes())?;
    write_atomically(
        &dir.join("range"),
        format!("{start:x} {end:x}\n").as_bytes(),
    )?;
    Some(CoreText {
        kallsyms,
        start,
        end,
    })
}

/// Where /run is no tmpfs, earlier boots' copies would stay: drop them.
fn remove_other_boots(dir: &Path) {
    let Some(root) = dir.parent() else { return };
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.path() != dir {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The text symbols of the core kernel (lines with no `[module]`), and the
/// range `_stext`..`_etext` they cover. The `__pfx_` symbols of the
/// padding before each function (half of them, with CONFIG_CALL_PADDING)
/// are left out: no sample lands in padding, and every later run parses
/// this copy.
fn core_symbols(all: &str) -> Option<(String, u64, u64)> {
    let (mut start, mut end) = (None, None);
    let mut text = String::with_capacity(all.len() / 2);
    for line in all.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(addr), Some(kind), Some(name), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        match name {
            "_stext" => start = u64::from_str_radix(addr, 16).ok(),
            "_etext" => end = u64::from_str_radix(addr, 16).ok(),
            _ => {}
        }
        if matches!(kind, "t" | "T" | "w" | "W") && !name.starts_with("__pfx_") {
            text.push_str(line);
            text.push('\n');
        }
    }
    let (start, end) = (start?, end?);
    // Addresses hidden (kptr_restrict) read as zero: nothing to keep.
    (start != 0 && start < end).then_some((text, start, end))
}

fn parse_range(text: &str) -> Option<(u64, u64)> {
    let mut words = text.split_ascii_whitespace();
    let start = u64::from_str_radix(words.next()?, 16).ok()?;
    let end = u64::from_str_radix(words.next()?, 16).ok()?;
    (start < end).then_some((start, end))
}

/// Writes `path` whole or not at all: a concurrent run reads either the
/// old file or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Option<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .ok()?;
    let written = file.write_all(bytes).is_ok();
    if !written || fs::rename(&tmp, path).is_err() {
        let _ = fs::remove_file(&tmp);
        return None;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff8100000c t __pfx_do_one
ffffffff81000010 T do_one
ffffffff81000020 t helper
ffffffff81000030 D some_data
ffffffff81200000 T _etext
ffffffffc0000000 t mod_func\t[some_mod]
ffffffffc1000000 t bpf_prog_abc_f\t[bpf]
";

    #[test]
    fn keeps_core_text_symbols_and_their_range() {
        let (text, start, end) = core_symbols(KALLSYMS).unwrap();
        assert_eq!((start, end), (0xffffffff81000000, 0xffffffff81200000));
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "ffffffff81000000 T _stext",
                "ffffffff81000010 T do_one",
                "ffffffff81000020 t helper",
                "ffffffff81200000 T _etext",
            ]
        );
    }

    #[test]
    fn hidden_addresses_give_no_copy() {
        let hidden = "0000000000000000 T _stext\n0000000000000000 T _etext\n";
        assert_eq!(core_symbols(hidden), None);
        assert_eq!(core_symbols("ffffffff81000010 T do_one\n"), None);
    }

    /// The copy must name core kernel addresses as /proc/kallsyms does.
    /// Needs the real addresses (root): `cargo xtask test` runs it as root.
    #[test]
    #[ignore = "needs root"]
    fn the_copy_names_addresses_as_proc_kallsyms_does() {
        use blazesym::{
            MaybeDefault,
            symbolize::{Input, Symbolizer, source::Kernel, source::Source},
        };
        let all = fs::read_to_string("/proc/kallsyms").unwrap();
        let (text, start, end) =
            core_symbols(&all).expect("/proc/kallsyms hides its addresses: this test needs root");
        let dir = std::env::temp_dir().join(format!("bpfprof-kallsyms-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("kallsyms");
        write_atomically(&copy, text.as_bytes()).unwrap();
        // A byte inside every 97th core function of /proc/kallsyms (the
        // padding before functions is left out of the copy by design).
        let addrs: Vec<u64> = all
            .lines()
            .filter(|l| l.contains(" t ") || l.contains(" T "))
            .filter(|l| !l.contains("__pfx_"))
            .step_by(97)
            .filter_map(|l| u64::from_str_radix(l.split(' ').next()?, 16).ok())
            .map(|a| a + 1)
            .filter(|&a| (start..end).contains(&a))
            .collect();
        assert!(addrs.len() > 100, "{} addresses", addrs.len());
        // A kernel can have several symbols at one address (a section
        // start and a function's padding): any of them is a right name, as
        // long as the symbol starts where /proc/kallsyms says.
        let mut names_at: HashMap<u64, Vec<&str>> = HashMap::new();
        for line in all.lines() {
            let mut fields = line.split_ascii_whitespace();
            if let (Some(addr), Some(_), Some(name)) = (fields.next(), fields.next(), fields.next())
                && let Ok(addr) = u64::from_str_radix(addr, 16)
            {
                names_at.entry(addr).or_default().push(name);
            }
        }
        let symbolizer = Symbolizer::new();
        let named = |kallsyms: MaybeDefault<PathBuf>| -> Vec<Option<(String, u64)>> {
            let source = Source::Kernel(Kernel {
                kallsyms,
                vmlinux: MaybeDefault::None,
                ..Kernel::default()
            });
            symbolizer
                .symbolize(&source, Input::AbsAddr(&addrs))
                .unwrap()
                .iter()
                .map(|s| s.as_sym().map(|s| (s.name.to_string(), s.addr)))
                .collect()
        };
        let from_copy = named(MaybeDefault::Some(copy));
        let from_proc = named(MaybeDefault::Some("/proc/kallsyms".into()));
        let _ = fs::remove_dir_all(&dir);
        let wrong: Vec<_> = addrs
            .iter()
            .zip(from_copy.iter().zip(&from_proc))
            .filter(|(_, (copy, proc))| {
                let (Some((name, start)), Some((_, proc_start))) = (copy, proc) else {
                    return true;
                };
                start != proc_start
                    || !names_at
                        .get(start)
                        .is_some_and(|names| names.contains(&name.as_str()))
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "{} of {} named wrongly (address, (copy, /proc/kallsyms)): {wrong:x?}",
            wrong.len(),
            addrs.len()
        );
    }
}
