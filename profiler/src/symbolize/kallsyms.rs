//! Where kernel addresses get their names. Reading /proc/kallsyms makes
//! the kernel format ~200k symbols, a quarter of a short run's CPU. The
//! core kernel's text does not change while the machine is up, so its
//! symbols are kept in /run/bpfprof/BOOT_ID/ (root-only, on tmpfs, gone at
//! reboot) for later runs, and checked before each use (`cache`).
//! Addresses outside it (modules, BPF programs, trampolines, which come
//! and go) are always named from /proc/kallsyms.
//! Where a vmlinux image is installed, blazesym's own search (which
//! prefers it) is left alone.

mod cache;

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Once,
};

use blazesym::{
    MaybeDefault,
    symbolize::source::{Kernel, Source},
};
use cache::{NoCopy, Store};

/// A copy of the core kernel's text symbols, in kallsyms' own format, and
/// the addresses it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CoreText {
    pub(crate) kallsyms: PathBuf,
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl CoreText {
    pub(crate) fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
    }

    /// The copy as a blazesym source (no vmlinux: none is installed).
    pub(crate) fn source(&self) -> Source<'static> {
        Source::Kernel(Kernel {
            kallsyms: MaybeDefault::Some(self.kallsyms.clone()),
            vmlinux: MaybeDefault::None,
            ..Kernel::default()
        })
    }
}

/// Where the per-boot copies are kept.
const CACHE_ROOT: &str = "/run/bpfprof";

/// The core kernel's symbols for this boot: the cached copy, or a new one
/// made from /proc/kallsyms. None where there is a vmlinux image or the
/// copy cannot be made or trusted; then /proc/kallsyms serves every
/// address.
pub(crate) fn core_text() -> Option<CoreText> {
    if has_vmlinux() {
        return None;
    }
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let store = Store {
        root: CACHE_ROOT.into(),
        boot_id: boot_id.trim().to_string(),
        owner: 0,
    };
    match store.core_text(|| fs::read_to_string("/proc/kallsyms").ok()) {
        Ok(text) => Some(text),
        Err(NoCopy::Unsafe(problem)) => {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                eprintln!(
                    "bpfprof: warning: {problem}: no copy of the kernel's symbols kept there; \
                     reading /proc/kallsyms instead"
                );
            });
            None
        }
        Err(NoCopy::Unavailable) => None,
    }
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
        cache::write_atomically(&copy, &[text.as_bytes()]).unwrap();
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
