//! The BPF programs' own diagnostics with `-vv`: the rare failures they log
//! through aya-log (an unwind step that fails, a refused map update),
//! printed on stderr as `bpfprof: bpf: ...` by a thread that waits on the
//! log ring. Without `-vv` the programs' log level is 0, so the verifier
//! drops their logging code, and the ring is one page that nothing reads.

use std::{
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use anyhow::{Context, Result};
use aya::{Ebpf, EbpfLoader};
use aya_log::EbpfLogger;
use profiler_common::names;

/// The `-v` count from which the log is on.
const VERBOSE: u8 = 2;
/// Every record when on, none when off.
static ON: u8 = 0xff;
static OFF: u8 = 0;
/// The ring's size when on: aya-log-ebpf's own.
const RING_BYTES: u32 = 128 << 10;
/// How long the reader waits on a quiet ring before it looks at `stop`.
const POLL_MS: i32 = 100;

/// Sets the programs' log level, before the object is loaded.
pub(crate) fn configure(loader: &mut EbpfLoader, verbose: u8) {
    let level = if verbose >= VERBOSE { &ON } else { &OFF };
    loader.override_global(names::AYA_LOG_LEVEL, level, true);
}

/// The size of the log ring (`AYA_LOGS`): the smallest a ring can be when
/// the log is off.
pub(crate) fn ring_bytes(verbose: u8) -> u32 {
    if verbose >= VERBOSE {
        RING_BYTES
    } else {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u32::try_from(page).unwrap_or(4096)
    }
}

/// The reader of the log ring; dropping it prints what is left and stops.
pub(crate) struct BpfLog {
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

/// Starts printing the programs' log records, with `-vv` only.
pub(crate) fn start(ebpf: &mut Ebpf, verbose: u8) -> Result<Option<BpfLog>> {
    if verbose < VERBOSE {
        return Ok(None);
    }
    let mut logger = EbpfLogger::init_with_logger(ebpf, Stderr)
        .with_context(|| format!("reading the BPF log (map {})", names::AYA_LOGS))?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = std::thread::Builder::new()
        .name("bpf-log".into())
        .spawn({
            let stop = Arc::clone(&stop);
            move || read(&mut logger, &stop)
        })
        .context("starting the BPF log reader")?;
    Ok(Some(BpfLog {
        stop,
        reader: Some(reader),
    }))
}

/// Prints records as they come until `stop`, then what is left.
fn read(logger: &mut EbpfLogger<Stderr>, stop: &AtomicBool) {
    let fd = logger.as_raw_fd();
    loop {
        let last = stop.load(Ordering::Acquire);
        logger.flush();
        if last {
            return;
        }
        let mut ready = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the fd stays open while `logger` lives.
        unsafe { libc::poll(&mut ready, 1, POLL_MS) };
    }
}

impl Drop for BpfLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Each record as one line on stderr.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        eprintln!("bpfprof: bpf: {}", record.args());
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_global_is_aya_logs() {
        assert_eq!(names::AYA_LOG_LEVEL, aya_log::LEVEL);
    }

    #[test]
    fn the_ring_is_one_page_unless_the_log_is_on() {
        let page = ring_bytes(0);
        assert!(page.is_power_of_two() && page < RING_BYTES, "{page}");
        assert_eq!(ring_bytes(1), page);
        assert_eq!(ring_bytes(2), RING_BYTES);
    }
}
