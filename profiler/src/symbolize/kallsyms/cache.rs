//! The on-disk copy of the core kernel's symbols: `ROOT/BOOT_ID/kallsyms`,
//! its first line a header saying which boot it is for, the range it
//! covers, how many symbols follow and their checksum:
//!
//! `# bpfprof-kallsyms v1 boot=ID start=HEX end=HEX symbols=N fnv64=HEX`
//!
//! (blazesym skips the line: `#` is no address). A copy is used only when
//! the header matches what follows, so a truncated or damaged copy is made
//! anew instead of naming frames wrongly.
//!
//! blazesym opens the copy by path after it was checked here. That holds
//! only if no one but the owner (root) can replace it in between: so the
//! copy must be a regular file of the owner's that others cannot write,
//! in directories checked as `private_dir` says; a check of the path made
//! once holds for the run. Where the check fails, the caller reads
//! /proc/kallsyms.

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::{CoreText, core_symbols};
pub(crate) use crate::private_dir::write_atomically;
use crate::{
    fnv::fnv64,
    private_dir::{PrivateDir, Unusable},
    untrusted_file,
};

/// Far above a real kernel's core text symbols (a few MiB): a larger copy
/// was not written by bpfprof.
const MAX_COPY_BYTES: u64 = 64 << 20;
const HEADER: &str = "# bpfprof-kallsyms v1";
const COPY: &str = "kallsyms";

/// Where the copies live, for which boot, and whose they must be.
pub(crate) struct Store {
    pub(crate) root: PathBuf,
    pub(crate) boot_id: String,
    /// The owner every directory and the copy must have: root, except in
    /// unit tests.
    pub(crate) owner: u32,
}

/// Why there is no copy to use.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoCopy {
    /// A directory on the path others could change (named, with what is
    /// wrong): worth a warning, as someone may have planted it.
    Unsafe(String),
    /// No copy could be read or made: no /run, a read-only file system,
    /// kernel addresses hidden.
    Unavailable,
}

impl Store {
    /// This boot's copy: checked and used, or made anew (from `kallsyms`,
    /// the text of /proc/kallsyms) when missing or invalid.
    pub(crate) fn core_text(
        &self,
        kallsyms: impl FnOnce() -> Option<String>,
    ) -> Result<CoreText, NoCopy> {
        let parent = self.root.parent().ok_or(NoCopy::Unavailable)?;
        self.check_dir(parent)?;
        let dir = self.root.join(&self.boot_id);
        self.ensure_dir(&self.root)?;
        self.ensure_dir(&dir)?;
        if let Some(text) = self.load(&dir) {
            return Ok(text);
        }
        kallsyms()
            .and_then(|all| self.make(&dir, &all))
            .ok_or(NoCopy::Unavailable)
    }

    fn ensure_dir(&self, dir: &Path) -> Result<(), NoCopy> {
        self.dirs()
            .ensure(dir, dir != self.root)
            .map_err(NoCopy::from)
    }

    fn check_dir(&self, dir: &Path) -> Result<(), NoCopy> {
        self.dirs().check(dir).map_err(NoCopy::from)
    }

    fn dirs(&self) -> PrivateDir {
        PrivateDir { owner: self.owner }
    }

    /// The copy in `dir`, if it is whole and for this boot. Special files
    /// are never opened for reading (a FIFO would block): not even a
    /// FIFO swapped in after the check, as it is opened non-blocking.
    fn load(&self, dir: &Path) -> Option<CoreText> {
        let path = dir.join(COPY);
        if !fs::symlink_metadata(&path).ok()?.is_file() {
            return None;
        }
        let file = untrusted_file::open(&path, false).ok()?;
        if self
            .dirs()
            .ownership_problem(&file.metadata().ok()?)
            .is_some()
        {
            return None;
        }
        let bytes = untrusted_file::read_whole(file, MAX_COPY_BYTES).ok()?;
        let (start, end) = self.verify(&bytes)?;
        Some(CoreText {
            kallsyms: path,
            start,
            end,
        })
    }

    /// The range of a copy whose header matches this boot and its body.
    fn verify(&self, bytes: &[u8]) -> Option<(u64, u64)> {
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let (header, body) = (&bytes[..newline], &bytes[newline + 1..]);
        let header = std::str::from_utf8(header).ok()?.strip_prefix(HEADER)?;
        let mut fields = header.split_ascii_whitespace();
        let mut field = |key: &str| fields.next()?.strip_prefix(key)?.strip_prefix('=');
        let boot = field("boot")?;
        let start = u64::from_str_radix(field("start")?, 16).ok()?;
        let end = u64::from_str_radix(field("end")?, 16).ok()?;
        let symbols: usize = field("symbols")?.parse().ok()?;
        let checksum = u64::from_str_radix(field("fnv64")?, 16).ok()?;
        let whole = boot == self.boot_id
            && start < end
            && body.last() == Some(&b'\n')
            && body.iter().filter(|&&b| b == b'\n').count() == symbols
            && fnv64(body) == checksum;
        whole.then_some((start, end))
    }

    fn make(&self, dir: &Path, all: &str) -> Option<CoreText> {
        let (text, start, end) = core_symbols(all)?;
        let header = format!(
            "{HEADER} boot={} start={start:x} end={end:x} symbols={} fnv64={:x}\n",
            self.boot_id,
            text.lines().count(),
            fnv64(text.as_bytes())
        );
        let path = dir.join(COPY);
        // A directory in its place would stop the rename.
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&path).ok()?;
        }
        write_atomically(&path, &[header.as_bytes(), text.as_bytes()])?;
        remove_other_boots(&self.root, dir);
        Some(CoreText {
            kallsyms: path,
            start,
            end,
        })
    }
}

/// Where /run is no tmpfs, earlier boots' copies would stay: drop them.
/// Everything in the root (checked: the owner's alone) is bpfprof's.
fn remove_other_boots(root: &Path, dir: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.path() != dir {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

impl From<Unusable> for NoCopy {
    fn from(unusable: Unusable) -> NoCopy {
        match unusable {
            Unusable::Unsafe(problem) => NoCopy::Unsafe(problem),
            Unusable::Unavailable => NoCopy::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests;
