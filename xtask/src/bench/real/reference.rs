//! Reference BPF programs, run beside bpfprof on the same captures so that
//! its BPF cost per sample reads against what this machine charges any
//! perf_event program (bpftrace counting samples by process name: the
//! floor) and what a bpftrace user pays for stacks (the kernel's unwinder
//! and frame-pointer user stacks). The machine is shared, and its cost of
//! a memory access varies severalfold from day to day; a ratio taken
//! within one capture does not.
//!
//! Their run times are counted while bpfprof `-v` holds the kernel's BPF
//! statistics enabled, so both cover the same window.

use std::{
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Two programs on the CPU clock at the rate the profilers sample at.
const SCRIPT: &str = "profile:hz:99 { @floor[comm] = count(); }
profile:hz:99 { @stacks[kstack, ustack, comm] = count(); }";
/// bpftrace names a `profile:hz:N` program after N.
const PROGRAM_NAME: &str = "99";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The two programs' BPF ns per run.
#[derive(Clone, Copy)]
pub(super) struct ReferenceCosts {
    pub floor_ns: f64,
    pub stacks_ns: f64,
}

/// bpftrace running the reference programs; killed when dropped.
pub(super) struct References {
    bpftrace: Child,
    /// Program ids: the floor has one map (its counts), the stacks program
    /// more (its counts and the stack map).
    floor: u64,
    stacks: u64,
}

impl References {
    /// Starts bpftrace and waits until both programs are loaded.
    pub fn start() -> Result<References> {
        let before = perf_event_programs()?
            .iter()
            .map(|p| p.id)
            .max()
            .unwrap_or(0);
        let bpftrace = Command::new("bpftrace")
            .args(["-e", SCRIPT])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting bpftrace")?;
        let mut references = References {
            bpftrace,
            floor: 0,
            stacks: 0,
        };
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            let ours: Vec<Program> = perf_event_programs()?
                .into_iter()
                .filter(|p| p.id > before && p.name == PROGRAM_NAME)
                .collect();
            let with_maps = |n: bool| ours.iter().find(|p| (p.maps == 1) == n).map(|p| p.id);
            if let (2, Some(floor), Some(stacks)) = (ours.len(), with_maps(true), with_maps(false))
            {
                (references.floor, references.stacks) = (floor, stacks);
                return Ok(references);
            }
            if let Some(status) = references.bpftrace.try_wait()? {
                bail!("bpftrace exited with {status} before loading its programs");
            }
            thread::sleep(Duration::from_millis(200));
        }
        bail!("bpftrace did not load its programs within {START_TIMEOUT:?}")
    }

    /// Each program's average run time so far.
    pub fn read(&self) -> Result<ReferenceCosts> {
        let programs = perf_event_programs()?;
        let ns = |id: u64| -> Result<f64> {
            let p = programs
                .iter()
                .find(|p| p.id == id)
                .with_context(|| format!("bpftrace's program {id} is gone"))?;
            anyhow::ensure!(
                p.runs > 0,
                "bpftrace's program {id} has no run counted (are BPF statistics on?)"
            );
            Ok(p.run_time_ns as f64 / p.runs as f64)
        };
        Ok(ReferenceCosts {
            floor_ns: ns(self.floor)?,
            stacks_ns: ns(self.stacks)?,
        })
    }
}

impl Drop for References {
    fn drop(&mut self) {
        let _ = self.bpftrace.kill();
        let _ = self.bpftrace.wait();
    }
}

struct Program {
    id: u64,
    name: String,
    maps: usize,
    run_time_ns: u64,
    runs: u64,
}

/// The loaded perf_event programs, as `bpftool prog show` lists them.
fn perf_event_programs() -> Result<Vec<Program>> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .stderr(Stdio::null())
        .output()
        .context("running bpftool")?;
    anyhow::ensure!(out.status.success(), "bpftool prog show: {}", out.status);
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).context("bpftool's JSON")?;
    let number = |p: &Value, key: &str| p[key].as_u64().unwrap_or(0);
    Ok(all
        .iter()
        .filter(|p| p["type"] == "perf_event")
        .map(|p| Program {
            id: number(p, "id"),
            name: p["name"].as_str().unwrap_or("").to_string(),
            maps: p["map_ids"].as_array().map_or(0, Vec::len),
            run_time_ns: number(p, "run_time_ns"),
            runs: number(p, "run_cnt"),
        })
        .collect())
}
