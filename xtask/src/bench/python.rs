//! The cost of Python frames (#16): a Python process spinning under a
//! stack of a known Python depth, profiled by `--pid` with its Python
//! frames walked, beside a native program whose stack has as many frames
//! as the Python samples have in all (native and Python), in turn, and the
//! same Python process with `--no-python` (its native frames only). The
//! ratios of BPF ns per sample are taken within each run.

use std::{
    io::Read,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{
    Bench,
    cases::bpf_ns_per_run,
    run::{Series, folded_stacks, user_frames},
};

const PYTHON: &str = "/root/.pyenv/versions/3.12.1/bin/python3.12";
const DEPTHS: [u32; 2] = [10, 40];

impl Bench {
    pub fn python_cost(&self) -> Result<Value> {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/workloads/python/deep.py");
        let mut rows = Vec::new();
        for depth in DEPTHS {
            let (mut walked, mut native, mut ratio, mut frames) = (
                Series::default(),
                Series::default(),
                Series::default(),
                Series::default(),
            );
            let mut native_only = Series::default();
            for _ in 0..self.runs {
                let mut python = Command::new(PYTHON)
                    .arg(&script)
                    .args([depth.to_string(), "60".into()])
                    .spawn()
                    .with_context(|| format!("starting {PYTHON}"))?;
                thread::sleep(Duration::from_millis(500));
                let on = self.python_run(python.id(), &[]);
                let off = self.python_run(python.id(), &["--no-python"]);
                let _ = python.kill();
                let _ = python.wait();
                let ((on_ns, on_frames, all_frames), (off_ns, _, _)) = (on?, off?);
                // A native stack as deep as the Python samples' whole stack.
                let mut deep = Command::new(self.workload("wl-deep"))
                    .args([
                        (all_frames.round() as u32).saturating_sub(2).to_string(),
                        "60".into(),
                    ])
                    .spawn()?;
                thread::sleep(Duration::from_millis(300));
                let same_depth = self.python_run(deep.id(), &[]);
                let _ = deep.kill();
                let _ = deep.wait();
                let (native_ns, _, _) = same_depth?;
                walked.push(on_ns);
                native.push(native_ns);
                native_only.push(off_ns);
                ratio.push(on_ns / native_ns);
                frames.push(on_frames);
            }
            rows.push(json!({
                "python_depth": depth,
                "bpf_ns_per_sample_python": walked.json(),
                "bpf_ns_per_sample_native_same_depth": native.json(),
                "bpf_ns_per_sample_no_python": native_only.json(),
                "python_over_native": ratio.json(),
                "python_frames_per_sample": frames.json(),
            }));
        }
        Ok(Value::Array(rows))
    }

    /// BPF ns per sample of a 5 s profile of `pid` at 999 Hz, and the
    /// Python frames and all user frames per sample it found.
    fn python_run(&self, pid: u32, extra: &[&str]) -> Result<(f64, f64, f64)> {
        let dir = self.tmp("python");
        let started = Instant::now();
        let mut profiler = Command::new(&self.bpfprof)
            .args([
                "-v", "-F", "999", "-d", "5", "--format", "folded", "--force",
            ])
            .args(["--pid", &pid.to_string()])
            .args(extra)
            .arg("-o")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stderr = String::new();
        if let Some(mut pipe) = profiler.stderr.take() {
            pipe.read_to_string(&mut stderr)?;
        }
        let (_, code) = super::run::wait(profiler, started)?;
        anyhow::ensure!(code == 0, "bpfprof {extra:?} failed: {stderr}");
        let ns = bpf_ns_per_run(&stderr, "on_cpu_sample").context("no BPF cost in -v")?;
        let folded = std::fs::read_to_string(dir.join("on-cpu.folded"))?;
        let (python, all) = frames_per_sample(&folded);
        Ok((ns, python, all))
    }
}

/// Python frames (`function (file:line)`) and all user frames (inlined
/// ones aside) per sample.
fn frames_per_sample(folded: &str) -> (f64, f64) {
    let (mut samples, mut python, mut all) = (0u64, 0u64, 0u64);
    for (stack, count) in folded_stacks(folded) {
        samples += count;
        for frame in user_frames(stack) {
            all += count;
            python += count * u64::from(frame.contains(".py:"));
        }
    }
    let samples = samples.max(1) as f64;
    (python as f64 / samples, all as f64 / samples)
}
