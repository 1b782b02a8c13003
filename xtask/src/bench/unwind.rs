//! Unwinding cost and completeness (#7): the same workloads profiled with
//! `--unwind fp`, `auto` and `dwarf` at 99 and 999 Hz. The workloads are
//! the test suite's unwinding ones: a C program without frame pointers, a
//! frameless leaf under frame pointers, a hot path inside Debian's libc
//! (qsort's callback) and a Rust release build.

use std::{
    io::Read,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{
    Bench,
    cases::bpf_ns_per_run,
    run::{Cost, Series, folded_stacks, user_frames, wait},
};

const WORKLOADS: [&str; 4] = ["wl-omitfp", "wl-leaf", "wl-qsort", "wl-rust-nofp"];

impl Bench {
    pub fn unwind_cost(&self) -> Result<Value> {
        let mut rows = Vec::new();
        for rate in [99u32, 999] {
            for mode in ["fp", "auto", "dwarf"] {
                let (mut ns, mut whole, mut depth, mut rss, mut cpu) = (
                    Series::default(),
                    Series::default(),
                    Series::default(),
                    Series::default(),
                    Series::default(),
                );
                for _ in 0..self.runs {
                    let (sample_ns, (whole_share, frames), cost) = self.unwind_run(rate, mode)?;
                    if let Some(n) = sample_ns {
                        ns.push(n);
                    }
                    whole.push(whole_share);
                    depth.push(frames);
                    rss.push(cost.max_rss_kb as f64 / 1024.0);
                    cpu.push(cost.cpu);
                }
                rows.push(json!({
                    "freq_hz": rate,
                    "unwind": mode,
                    "bpf_ns_per_sample": ns.json(),
                    "samples_reaching_main_percent": whole.json(),
                    "user_frames_per_sample": depth.json(),
                    "peak_rss_mib": rss.json(),
                    "cpu_seconds": cpu.json(),
                }));
            }
        }
        Ok(Value::Array(rows))
    }

    /// One 5 s profile of the four workloads: BPF ns per sample, the share
    /// of their samples whose stack reaches main, and bpfprof's cost.
    fn unwind_run(&self, rate: u32, mode: &str) -> Result<(Option<f64>, (f64, f64), Cost)> {
        let mut children = Vec::new();
        for name in WORKLOADS {
            children.push(Command::new(self.workload(name)).arg("8").spawn()?);
        }
        thread::sleep(Duration::from_millis(300));
        let pids: Vec<String> = children.iter().map(|c| c.id().to_string()).collect();
        let dir = self.tmp("unwind");
        let started = Instant::now();
        let mut profiler = Command::new(&self.bpfprof)
            .args(["-v", "--unwind", mode, "-F", &rate.to_string(), "-d", "5"])
            .args([
                "--format",
                "folded",
                "--force",
                "--pid",
                &pids.join(","),
                "-o",
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stderr = String::new();
        if let Some(mut pipe) = profiler.stderr.take() {
            pipe.read_to_string(&mut stderr)?;
        }
        let (cost, code) = wait(profiler, started)?;
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
        anyhow::ensure!(code == 0, "bpfprof --unwind {mode} failed: {stderr}");
        let folded = std::fs::read_to_string(dir.join("on-cpu.folded"))
            .context("bpfprof wrote no on-cpu.folded")?;
        Ok((
            bpf_ns_per_run(&stderr, "on_cpu_sample"),
            reaching_main(&folded),
            cost,
        ))
    }
}

/// Percent of the workloads' samples whose stack has a `main` frame, and
/// the user frames the walks found per sample (inlined frames aside).
fn reaching_main(folded: &str) -> (f64, f64) {
    let (mut all, mut whole, mut frames) = (0u64, 0u64, 0u64);
    for (stack, count) in folded_stacks(folded) {
        all += count;
        if stack.split(';').any(|f| f == "main" || f == "nofp::main") {
            whole += count;
        }
        frames += user_frames(stack).count() as u64 * count;
    }
    let all = all.max(1) as f64;
    (whole as f64 * 100.0 / all, frames as f64 / all)
}
