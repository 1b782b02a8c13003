//! Output directories, written so that root never writes, truncates or
//! chowns through a link someone else planted. bpfprof runs as root and
//! often writes where other users can create files (/tmp, a shared
//! directory), so:
//!
//! - the directory is created here (a default or derived name that is taken
//!   gets a suffix, -1, -2...), and then used only through a descriptor
//!   opened without following links;
//! - an existing one is refused unless it is empty and ours, or `--force`;
//! - every file is created next to its final name under a temporary one
//!   that must not exist (O_EXCL|O_NOFOLLOW), written whole, then renamed
//!   into place: a rename replaces a link instead of following it, and a
//!   failed write leaves no partial file;
//! - under sudo, only what was created here is handed to the invoking user,
//!   by descriptor.

use std::{
    ffi::CString,
    fs::{DirBuilder, File, OpenOptions},
    io::{self, BufWriter, Write},
    os::{
        fd::{AsRawFd, FromRawFd},
        unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// How many suffixed names a new directory tries before giving up.
const NAME_TRIES: u32 = 100;

/// A directory outputs are written into, held open.
pub(crate) struct OutDir {
    dir: File,
    path: PathBuf,
    /// Who gets what is created here: the user who ran sudo.
    owner: Option<(u32, u32)>,
}

impl OutDir {
    /// A new directory named `base`, or `base-1`, `base-2`... when that is
    /// taken: a name someone else created first is never used.
    pub(crate) fn create_new(base: &Path, owner: Option<(u32, u32)>) -> io::Result<OutDir> {
        let base = &without_trailing_slash(base);
        if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut last = None;
        for n in 0..NAME_TRIES {
            let path = suffixed(base, n);
            match DirBuilder::new().mode(0o755).create(&path) {
                Ok(()) => return OutDir::open_created(path, owner),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into()))
    }

    /// The directory `path` named on the command line: created, or an
    /// existing one that is empty and belongs to root or the invoking user;
    /// with `force`, any existing directory. A link is refused either way.
    /// The error is the line to print.
    pub(crate) fn named(
        path: &Path,
        force: bool,
        owner: Option<(u32, u32)>,
    ) -> Result<OutDir, String> {
        // `link/` would resolve the link: the last component is looked at
        // as itself.
        let path = &without_trailing_slash(path);
        let name = path.display();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("--output {name}: cannot create: {e}"))?;
        }
        let out = match DirBuilder::new().mode(0o755).create(path) {
            Ok(()) => OutDir::open_created(path.to_path_buf(), owner),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return OutDir::existing(path, force, owner);
            }
            Err(e) => return Err(format!("--output {name}: cannot create: {e}")),
        };
        let out = out.map_err(|e| format!("--output {name}: {e}"))?;
        out.check_writable()
            .map_err(|e| format!("--output {name}: not writable: {e}"))?;
        Ok(out)
    }

    fn existing(path: &Path, force: bool, owner: Option<(u32, u32)>) -> Result<OutDir, String> {
        let name = path.display();
        let meta = std::fs::symlink_metadata(path).map_err(|e| format!("--output {name}: {e}"))?;
        if meta.file_type().is_symlink() {
            return Err(format!(
                "--output {name}: is a symbolic link; name the directory itself"
            ));
        }
        if !meta.is_dir() {
            return Err(format!("--output {name}: exists and is not a directory"));
        }
        let dir = open_dir(libc::AT_FDCWD, path).map_err(|e| format!("--output {name}: {e}"))?;
        let out = OutDir {
            dir,
            path: path.to_path_buf(),
            owner,
        };
        if !force {
            let uid = out
                .dir
                .metadata()
                .map_err(|e| format!("--output {name}: {e}"))?
                .uid();
            if uid != euid() && Some(uid) != owner.map(|(u, _)| u) {
                return Err(format!(
                    "--output {name}: belongs to uid {uid}; use --force to write into it anyway"
                ));
            }
            let empty = out
                .is_empty()
                .map_err(|e| format!("--output {name}: {e}"))?;
            if !empty {
                return Err(format!(
                    "--output {name}: exists and is not empty; use --force to write into it anyway"
                ));
            }
        }
        out.check_writable()
            .map_err(|e| format!("--output {name}: not writable: {e}"))?;
        Ok(out)
    }

    /// Opens a directory this process just made, and makes sure it is that
    /// one (ours, not a link or a directory put in its place since).
    fn open_created(path: PathBuf, owner: Option<(u32, u32)>) -> io::Result<OutDir> {
        let dir = open_dir(libc::AT_FDCWD, &path)?;
        OutDir::adopt(dir, path, owner)
    }

    fn adopt(dir: File, path: PathBuf, owner: Option<(u32, u32)>) -> io::Result<OutDir> {
        let uid = dir.metadata()?.uid();
        if uid != euid() {
            return Err(io::Error::other(format!(
                "is not the directory just created (it belongs to uid {uid})"
            )));
        }
        give(&dir, owner)?;
        Ok(OutDir { dir, path, owner })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The device and inode, to recognize this directory later.
    pub(crate) fn identity(&self) -> io::Result<(u64, u64)> {
        let meta = self.dir.metadata()?;
        Ok((meta.dev(), meta.ino()))
    }

    /// The subdirectory `name`: created here, or used when it exists (in a
    /// directory taken with `--force`), never through a link.
    pub(crate) fn subdir(&self, name: &str) -> io::Result<OutDir> {
        let path = self.path.join(name);
        match mkdirat(&self.dir, name) {
            Ok(()) => OutDir::adopt(
                open_dir(self.dir.as_raw_fd(), Path::new(name))?,
                path,
                self.owner,
            ),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(OutDir {
                dir: open_dir(self.dir.as_raw_fd(), Path::new(name))?,
                path,
                owner: self.owner,
            }),
            Err(e) => Err(e),
        }
    }

    /// A new subdirectory `base`, or `base-1`... when that is taken.
    pub(crate) fn new_subdir(&self, base: &str) -> io::Result<OutDir> {
        let mut last = None;
        for n in 0..NAME_TRIES {
            let name = suffixed(Path::new(base), n).to_string_lossy().into_owned();
            match mkdirat(&self.dir, &name) {
                Ok(()) => {
                    let dir = open_dir(self.dir.as_raw_fd(), Path::new(&name))?;
                    return OutDir::adopt(dir, self.path.join(name), self.owner);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into()))
    }

    /// Writes the file `name` whole, or not at all: `render` fills a fresh
    /// temporary file, which then replaces `name` (a link there is
    /// replaced, not followed). The error names the file.
    pub(crate) fn write(
        &self,
        name: &str,
        render: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let path = self.path.join(name);
        self.write_file(name, render)
            .with_context(|| format!("writing {}", path.display()))
    }

    fn write_file(
        &self,
        name: &str,
        render: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let (tmp, file) = self.create_temporary(name)?;
        let written = (|| {
            let mut out = BufWriter::new(file);
            render(&mut out)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            give(&file, self.owner)?;
            drop(file);
            renameat(&self.dir, &tmp, name)?;
            Ok(())
        })();
        if written.is_err() {
            let _ = unlinkat(&self.dir, &tmp, 0);
        }
        written
    }

    /// `.NAME.tmp.PID`, or with a further `.N` when that exists.
    fn create_temporary(&self, name: &str) -> io::Result<(String, File)> {
        let mut last = None;
        for n in 0..NAME_TRIES {
            let tmp = match n {
                0 => format!(".{name}.tmp.{}", std::process::id()),
                n => format!(".{name}.tmp.{}.{n}", std::process::id()),
            };
            let flags =
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            match openat(&self.dir, &tmp, flags, 0o644) {
                Ok(file) => return Ok((tmp, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into()))
    }

    /// Proves a file can be created here, without touching any that exist.
    fn check_writable(&self) -> io::Result<()> {
        let (tmp, file) = self.create_temporary("bpfprof-write-test")?;
        drop(file);
        unlinkat(&self.dir, &tmp, 0)
    }

    fn is_empty(&self) -> io::Result<bool> {
        // The descriptor's own entry in /proc names this very directory,
        // whatever happened to its path.
        let fd_path = format!("/proc/self/fd/{}", self.dir.as_raw_fd());
        Ok(std::fs::read_dir(fd_path)?.next().is_none())
    }

    /// Removes the files `names` and then the subdirectory `name` itself,
    /// if it is still the directory `identity` (one this run made). A
    /// directory holding anything else is left (the error says so).
    pub(crate) fn remove_subdir(
        &self,
        name: &str,
        identity: (u64, u64),
        names: &[String],
    ) -> io::Result<()> {
        let sub = open_dir(self.dir.as_raw_fd(), Path::new(name))?;
        let meta = sub.metadata()?;
        if (meta.dev(), meta.ino()) != identity {
            return Err(io::Error::other("is no longer the directory bpfprof wrote"));
        }
        for file in names {
            match unlinkat(&sub, file, 0) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        unlinkat(&self.dir, name, libc::AT_REMOVEDIR)
    }
}

fn without_trailing_slash(path: &Path) -> PathBuf {
    path.components().collect()
}

fn suffixed(base: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return base.to_path_buf();
    }
    let mut name = base.as_os_str().to_owned();
    name.push(format!("-{n}"));
    PathBuf::from(name)
}

fn euid() -> u32 {
    unsafe { libc::geteuid() }
}

/// Hands a file or directory this process created to the invoking user.
fn give(file: &File, owner: Option<(u32, u32)>) -> io::Result<()> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    check(unsafe { libc::fchown(file.as_raw_fd(), uid, gid) })
}

fn open_dir(at: libc::c_int, path: &Path) -> io::Result<File> {
    if at == libc::AT_FDCWD {
        return OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path);
    }
    let name = c_name(path.to_str().unwrap_or_default())?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags) };
    check(fd)?;
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn openat(dir: &File, name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<File> {
    let name = c_name(name)?;
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode as libc::c_uint) };
    check(fd)?;
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn mkdirat(dir: &File, name: &str) -> io::Result<()> {
    let name = c_name(name)?;
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) })
}

fn renameat(dir: &File, from: &str, to: &str) -> io::Result<()> {
    let (from, to) = (c_name(from)?, c_name(to)?);
    let fd = dir.as_raw_fd();
    check(unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) })
}

fn unlinkat(dir: &File, name: &str, flags: libc::c_int) -> io::Result<()> {
    let name = c_name(name)?;
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })
}

/// A single path component: names here never climb out of the directory.
fn c_name(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is not a file name"),
        ));
    }
    CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a file name"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
