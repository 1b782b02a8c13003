//! The capture's side of `bpfprof top`: the view's thread (`top::run`),
//! fed a copy of each interval's profile, and stderr held while the view
//! owns the terminal, so that no message lands on its screen; what was
//! held is printed once the terminal is given back.

use std::{
    fs::File,
    io::{Read, Seek, Write},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::mpsc,
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};

use crate::{
    cli::Config,
    meta,
    profile::Profile,
    stop_signals,
    top::{self, Quit, TopSettings, Update},
};

/// The most of what was held of stderr that is printed afterwards.
const HELD_LIMIT: u64 = 1 << 20;
/// How long the end of the run waits for the view to end: past it the view
/// is left behind (it ends with the process) rather than holding the run.
const VIEW_END_LIMIT: Duration = Duration::from_secs(3);

pub(crate) struct View {
    updates: Option<mpsc::Sender<Update>>,
    thread: Option<JoinHandle<Result<Quit>>>,
    /// Closed when the view's thread ends.
    ended: mpsc::Receiver<()>,
    held: Option<HeldStderr>,
}

impl View {
    /// Takes the terminal: from here until [`View::close`], the screen is
    /// the view's.
    pub(crate) fn start(config: &Config) -> Result<View> {
        let settings = TopSettings {
            target: meta::describe_target(&config.target),
            freq_hz: config.freq,
            off_cpu: config.off_cpu.is_some(),
            interval: config.interval,
        };
        let held = HeldStderr::start().context("holding stderr for the live view")?;
        let (updates, receiver) = mpsc::channel();
        let (ending, ended) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("top".into())
            .spawn(move || {
                let _ending = ending;
                let quit = top::run(settings, receiver);
                // The user quit, or the view failed (its terminal hung
                // up): either way there is no one to show the capture to.
                if !matches!(quit, Ok(Quit::Capture)) {
                    stop_signals::request_stop();
                }
                quit
            })
            .context("starting the live view")?;
        Ok(View {
            updates: Some(updates),
            thread: Some(thread),
            ended,
            held: Some(held),
        })
    }

    /// Shows an interval's profile (a view that is gone takes nothing).
    pub(crate) fn show(&self, profile: &Profile, elapsed: Duration) {
        if let Some(updates) = &self.updates {
            let _ = updates.send(Update {
                profile: profile.clone(),
                elapsed,
            });
        }
    }

    /// Gives the terminal back, then prints what was held of stderr and
    /// what ended the view if it failed (as dropping it does).
    pub(crate) fn close(self) {}
}

impl Drop for View {
    fn drop(&mut self) {
        drop(self.updates.take());
        let ended = match self.ended.recv_timeout(VIEW_END_LIMIT) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.thread.take();
                Some(Ok(Err(anyhow::anyhow!("it did not end; left behind"))))
            }
            _ => self.thread.take().map(JoinHandle::join),
        };
        if let Some(held) = self.held.take() {
            held.release();
        }
        match ended {
            Some(Ok(Err(e))) => eprintln!("bpfprof: the live view failed: {e:#}"),
            Some(Err(_)) => eprintln!("bpfprof: the live view failed"),
            _ => {}
        }
    }
}

/// stderr redirected into an anonymous memory file.
struct HeldStderr {
    saved: OwnedFd,
    file: File,
}

impl HeldStderr {
    fn start() -> std::io::Result<HeldStderr> {
        // SAFETY: memfd_create with a static name; dup of our own stderr.
        let (memfd, saved) = unsafe {
            (
                libc::memfd_create(c"bpfprof-stderr".as_ptr(), libc::MFD_CLOEXEC),
                libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3),
            )
        };
        if memfd < 0 || saved < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors are ours and open.
        let (file, saved) = unsafe { (File::from_raw_fd(memfd), OwnedFd::from_raw_fd(saved)) };
        // SAFETY: replaces fd 2 with the memory file.
        if unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(HeldStderr { saved, file })
    }

    fn release(mut self) {
        // SAFETY: puts the saved stderr back on fd 2.
        unsafe { libc::dup2(self.saved.as_raw_fd(), 2) };
        let mut held = Vec::new();
        if self.file.rewind().is_ok() {
            let _ = (&mut self.file).take(HELD_LIMIT).read_to_end(&mut held);
        }
        let _ = std::io::stderr().write_all(&held);
    }
}
