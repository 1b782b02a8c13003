//! The command of `bpfprof -- COMMAND`: forked at once but held before
//! exec until the BPF filter knows its pid and the sampler is attached, so
//! its first instruction is already profiled.
//!
//! `std::process::Command::spawn` waits for exec to succeed, which a gate
//! before exec would deadlock; hence a plain fork, and a pidfd to wait on.

use std::{
    ffi::{CString, OsString},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
};

use anyhow::{Context, Result, bail};
use tokio::io::unix::AsyncFd;

pub(crate) struct GatedChild {
    pid: u32,
    /// Write end of the gate; writing a byte (or closing it) lets the child go on.
    gate: Option<OwnedFd>,
    pidfd: AsyncFd<OwnedFd>,
}

impl GatedChild {
    pub(crate) fn spawn(argv: &[OsString]) -> Result<GatedChild> {
        let program = argv
            .first()
            .context("no command to run")
            .and_then(|p| resolve_command(p).map_err(anyhow::Error::msg))?;
        let program =
            CString::new(program.as_os_str().as_bytes()).context("NUL in the command path")?;
        let args: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .context("the command contains a NUL byte")?;
        let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        arg_ptrs.push(std::ptr::null());
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            bail!("creating a pipe: {}", std::io::Error::last_os_error());
        }
        let (gate_read, gate_write) = (fds[0], fds[1]);
        // SAFETY: the child only makes async-signal-safe calls before exec.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            bail!("fork: {}", std::io::Error::last_os_error());
        }
        if pid == 0 {
            unsafe {
                libc::close(gate_write);
                let mut byte = 0u8;
                // Parent gone or gave up before releasing us: do not run.
                if libc::read(gate_read, (&raw mut byte).cast(), 1) != 1 {
                    libc::_exit(126);
                }
                libc::execv(program.as_ptr(), arg_ptrs.as_ptr());
                libc::_exit(127);
            }
        }
        // SAFETY: fds from pipe2 that this process owns from here on.
        let gate = unsafe {
            libc::close(gate_read);
            OwnedFd::from_raw_fd(gate_write)
        };
        let pidfd = pidfd_open(pid).context("pidfd_open for the command")?;
        Ok(GatedChild {
            pid: pid as u32,
            gate: Some(gate),
            // SAFETY: an OwnedFd keeps its one fd open until dropped.
            pidfd: unsafe { AsyncFd::register(pidfd) }
                .map_err(|e| anyhow::anyhow!("watching the command: {e}"))?,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Lets the command exec.
    pub(crate) fn release(&mut self) -> Result<()> {
        if let Some(gate) = self.gate.take() {
            // SAFETY: writing one byte from a live buffer to an owned fd.
            let written = unsafe { libc::write(gate.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
            if written != 1 {
                bail!("releasing the command: {}", std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Waits for the command to exit and reaps it; returns its exit code
    /// (128 + signal number when killed).
    pub(crate) async fn wait(&self) -> Result<i32> {
        let _ready = self.pidfd.readable().await?;
        let mut status = 0;
        // SAFETY: waitpid on our own child, which the pidfd says has exited.
        unsafe { libc::waitpid(self.pid as i32, &mut status, 0) };
        Ok(if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            libc::WEXITSTATUS(status)
        })
    }
}

fn pidfd_open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The executable `program` names, directly or through PATH (resolved
/// before fork: the child may not search PATH, which allocates); the error
/// is the one line to print.
pub(crate) fn resolve_command(program: &std::ffi::OsStr) -> Result<std::path::PathBuf, String> {
    let shown = program.to_string_lossy();
    if program.as_bytes().contains(&b'/') {
        let path = std::path::PathBuf::from(program);
        return match executable(&path) {
            Ok(()) => Ok(path),
            Err(why) => Err(format!("{shown}: {why}")),
        };
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    let mut refused = None;
    for path in std::env::split_paths(&paths).map(|dir| dir.join(program)) {
        match executable(&path) {
            Ok(()) => return Ok(path),
            Err(why) if path.exists() && refused.is_none() => {
                refused = Some(format!("{}: {why}", path.display()));
            }
            Err(_) => {}
        }
    }
    Err(refused.unwrap_or_else(|| format!("{shown}: command not found")))
}

/// Why `path` cannot be run, as exec would find it (no execute permission,
/// a noexec mount, not a regular file).
fn executable(path: &std::path::Path) -> Result<(), &'static str> {
    let meta = path.metadata().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "cannot be read",
    })?;
    if meta.is_dir() {
        return Err("is a directory, not a command");
    }
    if !meta.is_file() {
        return Err("not a regular file, not a command");
    }
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| "contains a NUL byte")?;
    // SAFETY: access reads a NUL-terminated path.
    if unsafe { libc::access(c_path.as_ptr(), libc::X_OK) } != 0 {
        return Err("permission denied (not executable)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_commands_on_path_and_by_path() {
        assert!(resolve_command("sh".as_ref()).is_ok_and(|p| p.ends_with("sh")));
        assert_eq!(resolve_command("/bin/sh".as_ref()), Ok("/bin/sh".into()));
        assert_eq!(
            resolve_command("bpfprof-no-such-command".as_ref()),
            Err("bpfprof-no-such-command: command not found".into())
        );
        assert_eq!(
            resolve_command("/tmp".as_ref()),
            Err("/tmp: is a directory, not a command".into())
        );
        let plain = std::env::temp_dir().join(format!("bpfprof-plain-{}", std::process::id()));
        std::fs::write(&plain, "").unwrap();
        let err = resolve_command(plain.as_os_str()).unwrap_err();
        assert!(err.ends_with("permission denied (not executable)"), "{err}");
        std::fs::remove_file(plain).unwrap();
    }

    #[tokio::test]
    async fn the_command_waits_for_release_then_runs() {
        let mut child = GatedChild::spawn(&["sh".into(), "-c".into(), "exit 7".into()]).unwrap();
        let held = tokio::time::timeout(std::time::Duration::from_millis(200), child.wait()).await;
        assert!(held.is_err(), "the command ran before it was released");
        child.release().unwrap();
        assert_eq!(child.wait().await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_dropped_gate_keeps_the_command_from_running() {
        let mut child = GatedChild::spawn(&["sh".into(), "-c".into(), "exit 0".into()]).unwrap();
        child.gate = None;
        assert_eq!(child.wait().await.unwrap(), 126);
    }
}
