//! One capture: a profiler started system-wide, the workload run once
//! from start to end under it, the profiler stopped with SIGINT. Each
//! capture holds the machine's capture lock, so that captures by others
//! sharing the machine (tests, other benchmarks) do not overlap ours.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::reference::{ReferenceCosts, References};
use crate::bench::run::{Cost, wait};

/// The lock the test suite's users take around a run on the real kernel.
const LOCK: &str = "/tmp/bpfprof-e2e.lock";

/// How long a profiler may take to start sampling.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// After the workload ends, before the profiler is stopped: the samples
/// of its last moments are in the capture.
const TAIL: Duration = Duration::from_millis(500);

/// Held for one capture; released when dropped (the file is closed).
pub(super) struct CaptureLock {
    _file: File,
}

impl CaptureLock {
    pub fn take() -> Result<CaptureLock> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(LOCK)
            .with_context(|| format!("opening {LOCK}"))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("flock {LOCK}: {}", std::io::Error::last_os_error());
        }
        Ok(CaptureLock { _file: file })
    }
}

/// When the profiler is sampling: the line it prints then, or a wait.
pub(super) enum Ready {
    Line(&'static str),
    After(Duration),
}

/// What one capture gave: the profiler's cost and stderr, the workload's
/// wall seconds and pid, and the reference programs' costs when they ran
/// beside the profiler.
pub(super) struct Captured {
    pub cost: Cost,
    pub references: Option<ReferenceCosts>,
    pub stderr: String,
    pub workload_seconds: f64,
    pub workload_pid: u32,
    pub profiler_pid: u32,
}

/// Runs `workload` under `profiler`, under the capture lock; `with_references`:
/// with bpftrace's reference programs beside it (see `reference`), read as
/// the workload ends. A reference that fails is said, and left out.
pub(super) fn capture(
    profiler: &mut Command,
    ready: Ready,
    workload: &mut Command,
    with_references: bool,
) -> Result<Captured> {
    let _lock = CaptureLock::take()?;
    let references = with_references
        .then(|| References::start().inspect_err(|e| said("reference programs", e)))
        .and_then(Result::ok);
    let started = Instant::now();
    let mut child = profiler
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {profiler:?}"))?;
    let profiler_pid = child.id();
    let stderr = child.stderr.take().context("the profiler's stderr")?;
    let (tx, rx) = mpsc::channel();
    let wanted = match ready {
        Ready::Line(line) => Some(line),
        Ready::After(_) => None,
    };
    // Reads all of stderr (so the profiler never blocks on a full pipe),
    // saying when the ready line went by.
    let reader = thread::spawn(move || {
        let (mut text, mut line) = (String::new(), Vec::new());
        let mut stderr = BufReader::new(stderr);
        while stderr.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let line_text = String::from_utf8_lossy(&line);
            if wanted.is_some_and(|w| line_text.contains(w)) {
                let _ = tx.send(());
            }
            text.push_str(&line_text);
            line.clear();
        }
        text
    });
    let is_ready = match ready {
        Ready::Line(_) => rx.recv_timeout(START_TIMEOUT).is_ok(),
        Ready::After(settle) => {
            thread::sleep(settle);
            true
        }
    };
    let run = if is_ready {
        run_workload(workload)
    } else {
        Err(anyhow::anyhow!("{profiler:?} did not start sampling"))
    };
    let reference_costs = references.as_ref().and_then(|r| {
        r.read()
            .inspect_err(|e| said("reading the reference programs", e))
            .ok()
    });
    drop(references);
    thread::sleep(TAIL);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let text = reader.join().unwrap_or_default();
    let (cost, code) = wait(child, started)?;
    let (workload_seconds, workload_pid) = run.with_context(|| text.clone())?;
    // perf record stops by raising again the SIGINT it was sent (-1:
    // killed by a signal); bpfprof exits.
    let stopped = match ready {
        Ready::Line(_) => code == 0,
        Ready::After(_) => code == 0 || code == -1,
    };
    if !stopped {
        bail!("{profiler:?} exited with {code}: {text}");
    }
    Ok(Captured {
        cost,
        references: reference_costs,
        stderr: text,
        workload_seconds,
        workload_pid,
        profiler_pid,
    })
}

fn said(what: &str, error: &anyhow::Error) {
    crate::progress(&format!("bench: {what}: {error:#} (left out)"));
}

/// Runs the workload to its end: its wall seconds and pid.
fn run_workload(workload: &mut Command) -> Result<(f64, u32)> {
    let started = Instant::now();
    let child = workload
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {workload:?}"))?;
    let pid = child.id();
    let (_, code) = wait(child, started)?;
    if code != 0 {
        bail!("{workload:?} exited with {code}");
    }
    Ok((started.elapsed().as_secs_f64(), pid))
}

/// Runs a post-processing command with its stdout to a file or nowhere,
/// killed after `limit`: its cost, or None when it did not finish.
pub(super) fn bounded(cmd: &mut Command, limit: Duration) -> Result<Option<Cost>> {
    let started = Instant::now();
    let child = Command::new("timeout")
        .arg(format!("{}", limit.as_secs()))
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting timeout")?;
    let (cost, code) = wait(child, started)?;
    match code {
        0 => Ok(Some(cost)),
        124 => Ok(None),
        _ => bail!("{cmd:?} exited with {code}"),
    }
}
