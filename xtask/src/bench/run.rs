//! Running measured processes: wall time, CPU time (user + sys, children
//! included) and peak RSS from wait4's rusage, and the statistics of
//! repeated runs.

use std::{
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// What one finished process cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub wall: f64,
    pub cpu: f64,
    pub max_rss_kb: u64,
}

/// Waits for a child and returns its cost (its waited-for children included).
pub fn wait(child: Child, started: Instant) -> Result<(Cost, i32)> {
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, writing into locals.
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    if rc < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cost = Cost {
        wall: started.elapsed().as_secs_f64(),
        cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss as u64,
    };
    Ok((
        cost,
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
    ))
}

/// Runs a command to completion, with its stdout captured.
pub fn measure(cmd: &mut Command) -> Result<(Cost, String)> {
    let (cost, out) = measure_bytes(cmd)?;
    let out = String::from_utf8(out).with_context(|| format!("{cmd:?} wrote other than UTF-8"))?;
    Ok((cost, out))
}

/// The same, bytes that are not UTF-8 replaced (names in binaries need
/// not be UTF-8).
pub fn measure_lossy(cmd: &mut Command) -> Result<(Cost, String)> {
    let (cost, out) = measure_bytes(cmd)?;
    Ok((cost, String::from_utf8_lossy(&out).into_owned()))
}

fn measure_bytes(cmd: &mut Command) -> Result<(Cost, Vec<u8>)> {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let mut out = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read;
        stdout.read_to_end(&mut out)?;
    }
    let (cost, code) = wait(child, started)?;
    if code != 0 {
        bail!("{cmd:?} exited with {code}");
    }
    Ok((cost, out))
}

/// A tool running in the background around a workload: started, given
/// time to attach, stopped with SIGINT.
pub struct Background {
    child: Child,
    started: Instant,
}

impl Background {
    pub fn start(cmd: &mut Command, settle: Duration) -> Result<Background> {
        let started = Instant::now();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        thread::sleep(settle);
        Ok(Background { child, started })
    }

    /// Stops the tool; returns its cost and what it printed on stderr.
    pub fn stop(mut self) -> Result<(Cost, String)> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            use std::io::Read;
            stderr.read_to_string(&mut err)?;
        }
        let (cost, _) = wait(self.child, self.started)?;
        Ok((cost, err))
    }
}

/// Repeated measurements of one figure.
#[derive(Debug, Clone, Default)]
pub struct Series(pub Vec<f64>);

impl Series {
    pub fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    pub fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    pub fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    /// Each run's value over the baseline's value in the same run.
    pub fn over(&self, base: &Series) -> Series {
        Series(self.0.iter().zip(&base.0).map(|(v, b)| v / b).collect())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "median": self.median(), "min": self.min(), "max": self.max(), "runs": self.0 })
    }
}

/// The stacks of a folded text (`process;outermost;...;innermost count`),
/// each with its count; lines that are not one are skipped.
pub fn folded_stacks(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|line| {
        let (stack, count) = line.rsplit_once(' ')?;
        Some((stack, count.parse().unwrap_or(0)))
    })
}

/// A folded stack's user frames: the process name, inlined frames and
/// kernel frames aside.
pub fn user_frames(stack: &str) -> impl Iterator<Item = &str> {
    stack
        .split(';')
        .skip(1)
        .filter(|f| !f.ends_with("_[i]") && !f.ends_with("_[k]"))
}
