//! Directories of bpfprof's own, kept across runs (the kernel-symbol copy,
//! cached unwind tables), and how files in them are written. What is read
//! back from them is trusted only because no other user can have changed
//! it: every directory on the way must be a real directory (no link) of
//! the owner's (root) that no one else can write, and so must its parent.
//! Then no other user can rename, replace or link anything on the path,
//! nor change a file's content. A directory that fails the check is not
//! used and not deleted (another user's files may be in it).

use std::{
    fs::{self, Metadata},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt},
    path::Path,
};

/// Why a directory cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Others could change it (named, with what is wrong): worth a
    /// warning, as someone may have planted it.
    Unsafe(String),
    /// It is missing and could not be made (no such parent, a read-only
    /// file system).
    Unavailable,
}

/// Checks directories against their owner: root, except in unit tests.
pub(crate) struct PrivateDir {
    pub(crate) owner: u32,
}

impl PrivateDir {
    /// Checks `dir`, or makes it (mode 0700) when missing. `replace`: a
    /// file or link in its place is removed first (its parent is checked,
    /// so the owner made it).
    pub(crate) fn ensure(&self, dir: &Path, replace: bool) -> Result<(), Unusable> {
        match fs::symlink_metadata(dir) {
            Ok(meta) if !meta.is_dir() && replace => {
                fs::remove_file(dir).map_err(|_| Unusable::Unavailable)?;
            }
            Ok(_) => return self.check(dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => return Err(Unusable::Unavailable),
        }
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            // Another run made it first.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(_) => return Err(Unusable::Unavailable),
        }
        self.check(dir)
    }

    /// A real directory (not a link to one) of the owner's that no one
    /// else can write.
    pub(crate) fn check(&self, dir: &Path) -> Result<(), Unusable> {
        let meta = fs::symlink_metadata(dir).map_err(|_| Unusable::Unavailable)?;
        let problem = if meta.file_type().is_symlink() {
            Some("is a symbolic link".to_string())
        } else if !meta.is_dir() {
            Some("is not a directory".to_string())
        } else {
            self.ownership_problem(&meta)
        };
        match problem {
            Some(problem) => Err(Unusable::Unsafe(format!("{} {problem}", dir.display()))),
            None => Ok(()),
        }
    }

    /// What is wrong with a file's or directory's owner or mode, if anything.
    pub(crate) fn ownership_problem(&self, meta: &Metadata) -> Option<String> {
        if meta.uid() != self.owner {
            Some(format!("is owned by uid {}", meta.uid()))
        } else if meta.mode() & 0o022 != 0 {
            Some(format!(
                "can be written by others (mode {:o})",
                meta.mode() & 0o7777
            ))
        } else {
            None
        }
    }
}

/// Writes `path` whole or not at all: a concurrent run reads either the
/// old file or the new one. The rename replaces whatever was there (a
/// link itself, not what it points to).
pub(crate) fn write_atomically(path: &Path, parts: &[&[u8]]) -> Option<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .ok()?;
    let written = parts.iter().all(|part| file.write_all(part).is_ok());
    if !written || fs::rename(&tmp, path).is_err() {
        let _ = fs::remove_file(&tmp);
        return None;
    }
    Some(())
}
