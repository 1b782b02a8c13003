//! SIGINT, SIGTERM and SIGHUP (a closed terminal, a dropped ssh session)
//! stop a run the same way: the capture ends and every output is written.
//!
//! The handlers are installed as the process starts, before anything slow,
//! so a signal that arrives while the BPF object loads is not lost: it is
//! kept in a flag and a byte on a self-pipe, and the capture loop, which
//! watches the pipe, ends the run as soon as it starts. A second signal
//! ends bpfprof at once, whatever it is doing.
//!
//! SIGHUP that bpfprof was started with ignored (`nohup`) stays ignored.

use std::{
    os::fd::{AsRawFd, RawFd},
    sync::{
        Once,
        atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering},
    },
};

use tokio::io::unix::AsyncFd;

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The first stop signal received, 0 before any.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// bpfprof itself asked the capture to stop (`top`'s q), with no signal.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// The self-pipe: the handler writes its end, the capture loop reads the other.
static PIPE_READ: AtomicI32 = AtomicI32::new(-1);
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
/// Each signal's disposition before `install`, for `restore`.
static PREVIOUS: [AtomicUsize; 3] = [const { AtomicUsize::new(libc::SIG_DFL) }; 3];
static INSTALL: Once = Once::new();

extern "C" fn on_signal(signal: libc::c_int) {
    // Only async-signal-safe calls here: atomics, write, signal, raise.
    if RECEIVED
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // SAFETY: async-signal-safe; the raised signal is delivered once
        // this handler returns, with the default action: the process ends.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
        return;
    }
    let fd = PIPE_WRITE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: writes one byte from a static to a non-blocking pipe; a
        // full pipe already wakes the reader, so a failed write loses nothing.
        unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
    }
}

/// Installs the handlers (once; later calls do nothing).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let mut fds = [-1; 2];
        // SAFETY: pipe2 writes two fds into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } == 0 {
            PIPE_READ.store(fds[0], Ordering::SeqCst);
            PIPE_WRITE.store(fds[1], Ordering::SeqCst);
        }
        for (signal, previous) in SIGNALS.iter().zip(&PREVIOUS) {
            // SAFETY: sigaction with a zeroed struct, an empty mask and a
            // handler that only makes async-signal-safe calls.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(*signal, std::ptr::null(), &mut old);
                previous.store(old.sa_sigaction, Ordering::SeqCst);
                if *signal == libc::SIGHUP && old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(*signal, &action, std::ptr::null_mut());
            }
        }
    });
}

/// Gives the signals back their dispositions from before `install` (for
/// the subcommands, which Ctrl-C simply ends); a signal that came in the
/// meantime is acted on now.
pub(crate) fn restore() {
    for (signal, previous) in SIGNALS.iter().zip(&PREVIOUS) {
        // SAFETY: restores a disposition sigaction reported.
        unsafe { libc::signal(*signal, previous.load(Ordering::SeqCst)) };
    }
    let signal = RECEIVED.load(Ordering::SeqCst);
    if signal != 0 {
        // SAFETY: raising a signal at ourselves.
        unsafe { libc::raise(signal) };
    }
}

/// Ends the capture as a stop signal would, but quietly: the user asked,
/// from inside bpfprof.
pub(crate) fn request_stop() {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
    let fd = PIPE_WRITE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: one byte from a static to our non-blocking pipe.
        unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
    }
}

/// The stop signal received so far, if any.
pub(crate) fn received() -> Option<libc::c_int> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// The name of a stop signal, for messages.
pub(crate) fn name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

struct PipeEnd(RawFd);

impl AsRawFd for PipeEnd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The capture loop's view of the stop signals.
pub(crate) struct StopSignals {
    pipe: Option<AsyncFd<PipeEnd>>,
}

impl StopSignals {
    /// Watches the self-pipe; must be called inside the tokio runtime.
    pub(crate) fn watch() -> StopSignals {
        install();
        let fd = PIPE_READ.load(Ordering::SeqCst);
        // SAFETY: the pipe's read end stays open for the life of the process.
        let pipe = (fd >= 0)
            .then(|| unsafe { AsyncFd::register(PipeEnd(fd)) }.ok())
            .flatten();
        StopSignals { pipe }
    }

    /// Returns once a stop signal has been received (at once if one came
    /// before this was called), or a stop was requested (0).
    pub(crate) async fn recv(&self) -> libc::c_int {
        loop {
            if let Some(signal) = received() {
                return signal;
            }
            if STOP_REQUESTED.load(Ordering::SeqCst) {
                return 0;
            }
            let Some(pipe) = &self.pipe else {
                return std::future::pending().await;
            };
            let Ok(mut ready) = pipe.readable().await else {
                return std::future::pending().await;
            };
            let mut buf = [0u8; 64];
            // SAFETY: reads into a live buffer from our non-blocking pipe.
            let n = unsafe { libc::read(pipe.get_ref().0, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                ready.clear_ready();
            }
        }
    }
}
