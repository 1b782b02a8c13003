//! The comparisons, each run side by side with its baseline in one go,
//! because these machines are shared and noisy: off-CPU cost, sampling
//! cost, accuracy on known splits, time to report, and peak memory
//! (scale is in `scale`).

use std::{
    path::PathBuf,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{
    Bench,
    run::{Background, Series, measure, wait},
};

const SETTLE: Duration = Duration::from_millis(1500);

impl Bench {
    pub(super) fn workload(&self, name: &str) -> PathBuf {
        self.workloads.join(name)
    }

    pub(super) fn tmp(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// Seconds the ping-pong takes (it reports them itself).
    fn pingpong(&self) -> Result<f64> {
        let (_, out) = measure(Command::new(self.workload("wl-pingpong")).arg("200000"))?;
        out.trim().parse().context("wl-pingpong's output")
    }

    /// Off-CPU cost (item 4): the ping-pong alone and under each tracer.
    pub fn off_cpu_cost(&self) -> Result<Value> {
        std::fs::write(self.tmp("offcpu.bt"), BPFTRACE_OFF_CPU)?;
        let bpfprof = self.bpfprof.display().to_string();
        let bpfprof_out = self.tmp("offcpu-bpfprof").display().to_string();
        let perf_out = self.tmp("offcpu.perf").display().to_string();
        let script = self.tmp("offcpu.bt").display().to_string();
        // Each tracer: its name in the report, and the command that runs it.
        let tracers: [(&str, Vec<&str>); 4] = [
            (
                "bpfprof --off-cpu",
                vec![
                    &bpfprof,
                    "--off-cpu",
                    "--format",
                    "json",
                    "--force",
                    "-o",
                    &bpfprof_out,
                ],
            ),
            (
                "bpfprof --off-cpu --no-stack-reuse",
                vec![
                    &bpfprof,
                    "--off-cpu",
                    "--no-stack-reuse",
                    "--format",
                    "json",
                    "--force",
                    "-o",
                    &bpfprof_out,
                ],
            ),
            (
                "perf record -e sched:sched_switch -g",
                vec![
                    "perf",
                    "record",
                    "-q",
                    "-e",
                    "sched:sched_switch",
                    "-g",
                    "-a",
                    "-o",
                    &perf_out,
                ],
            ),
            ("bpftrace off-CPU script", vec!["bpftrace", &script]),
        ];
        let mut base = Series::default();
        let mut timed = vec![Series::default(); tracers.len()];
        for _ in 0..self.runs {
            base.push(self.pingpong()?);
            for ((_, argv), series) in tracers.iter().zip(timed.iter_mut()) {
                let tool = Background::start(Command::new(argv[0]).args(&argv[1..]), SETTLE)?;
                let seconds = self.pingpong();
                tool.stop()?;
                series.push(seconds?);
            }
        }
        let mut rows = vec![json!({ "tool": "none", "seconds": base.json() })];
        for ((name, _), series) in tracers.iter().zip(&timed) {
            rows.push(json!({ "tool": name, "seconds": series.json(), "slowdown": series.over(&base).json() }));
        }
        Ok(json!({ "switches": 400_000, "rows": rows }))
    }

    /// Runs the fixed load (one process per CPU) and returns its wall time.
    fn fixed_load(&self) -> Result<f64> {
        let started = Instant::now();
        let children: Vec<_> = (0..self.cpus)
            .map(|_| Command::new(self.workload("wl-fixed")).arg("3000").spawn())
            .collect::<Result<_, _>>()?;
        for child in children {
            wait(child, started)?;
        }
        Ok(started.elapsed().as_secs_f64())
    }

    /// Sampling cost (item 1) at each rate: the profiler's own CPU, with
    /// its post-processing to a flame graph; BPF time per sample; slowdown.
    pub fn sampling_cost(&self) -> Result<Value> {
        let mut out = Vec::new();
        for rate in [99u32, 999, 4999] {
            let (mut base, mut ours, mut perf) =
                (Series::default(), Series::default(), Series::default());
            let (mut our_cpu, mut perf_cpu, mut per_sample) =
                (Series::default(), Series::default(), Series::default());
            let mut per_sample_fp = Series::default();
            for _ in 0..self.runs {
                base.push(self.fixed_load()?);
                let mut cmd = Command::new(&self.bpfprof);
                cmd.args([
                    "-v",
                    "-F",
                    &rate.to_string(),
                    "--format",
                    "folded,svg",
                    "--force",
                    "-o",
                ])
                .arg(self.tmp("sampling-bpfprof"));
                let tool = Background::start(&mut cmd, SETTLE)?;
                ours.push(self.fixed_load()?);
                let (cost, stderr) = tool.stop()?;
                our_cpu.push(cost.cpu);
                if let Some(ns) = bpf_ns_per_run(&stderr, "on_cpu_sample") {
                    per_sample.push(ns);
                }
                // The same with frame-pointer walks only, for the BPF cost.
                let mut cmd = Command::new(&self.bpfprof);
                cmd.args(["-v", "--unwind", "fp", "-F", &rate.to_string()])
                    .args(["--format", "folded", "--force", "-o"])
                    .arg(self.tmp("sampling-bpfprof-fp"));
                let tool = Background::start(&mut cmd, SETTLE)?;
                self.fixed_load()?;
                let (_, stderr) = tool.stop()?;
                if let Some(ns) = bpf_ns_per_run(&stderr, "on_cpu_sample") {
                    per_sample_fp.push(ns);
                }
                let data = self.tmp("sampling.perf");
                let mut cmd = Command::new("perf");
                cmd.args(["record", "-q", "-F", &rate.to_string(), "-g", "-a", "-o"])
                    .arg(&data);
                let tool = Background::start(&mut cmd, SETTLE)?;
                perf.push(self.fixed_load()?);
                let (record, _) = tool.stop()?;
                let (post, _) = measure(Command::new("sh").arg("-c").arg(format!(
                    "perf script -i {} | inferno-collapse-perf | inferno-flamegraph > {}",
                    data.display(),
                    self.tmp("perf.svg").display()
                )))?;
                perf_cpu.push(record.cpu + post.cpu);
            }
            let cpu_ratio = our_cpu.over(&perf_cpu);
            out.push(json!({
                "freq_hz": rate,
                "load_seconds": base.json(),
                "bpfprof": { "slowdown": ours.over(&base).json(), "cpu_seconds": our_cpu.json(), "bpf_ns_per_sample": per_sample.json(), "bpf_ns_per_sample_fp": per_sample_fp.json() },
                "perf": { "slowdown": perf.over(&base).json(), "cpu_seconds": perf_cpu.json() },
                "bpfprof_cpu_over_perf_cpu": cpu_ratio.json(),
            }));
        }
        Ok(Value::Array(out))
    }

    /// Accuracy (item 5): the 75/25 split measured by both tools on the
    /// same process, and the 2:1 sleep split by bpfprof.
    pub fn accuracy(&self) -> Result<Value> {
        let mut ratio = Command::new(self.workload("wl-ratio"));
        let mut process = ratio.spawn()?;
        let pid = process.id().to_string();
        let (mut ours, mut perf) = (Series::default(), Series::default());
        for _ in 0..self.runs {
            let dir = self.tmp("accuracy-bpfprof");
            measure(
                Command::new(&self.bpfprof)
                    .args([
                        "--pid", &pid, "-F", "999", "-d", "3", "--format", "folded", "--force",
                        "-o",
                    ])
                    .arg(&dir),
            )?;
            ours.push(share(
                &std::fs::read_to_string(dir.join("on-cpu.folded"))?,
                "hot_a",
                "hot_b",
            ));
            let data = self.tmp("accuracy.perf");
            measure(
                Command::new("perf")
                    .args(["record", "-q", "-F", "999", "-g", "-p", &pid, "-o"])
                    .arg(&data)
                    .args(["--", "sleep", "3"]),
            )?;
            let (_, folded) = measure(Command::new("sh").arg("-c").arg(format!(
                "perf script -i {} | inferno-collapse-perf",
                data.display()
            )))?;
            perf.push(share(&folded, "hot_a", "hot_b"));
        }
        let _ = process.kill();
        let _ = process.wait();
        let mut sleeps = Command::new(self.workload("wl-sleeps")).spawn()?;
        let pid = sleeps.id().to_string();
        let mut off = Series::default();
        for _ in 0..self.runs {
            let dir = self.tmp("accuracy-offcpu");
            measure(
                Command::new(&self.bpfprof)
                    .args([
                        "--pid",
                        &pid,
                        "--off-cpu",
                        "-d",
                        "3",
                        "--format",
                        "folded",
                        "--force",
                        "-o",
                    ])
                    .arg(&dir),
            )?;
            let text = std::fs::read_to_string(dir.join("off-cpu.folded"))?;
            off.push(share(&text, "sleep_long", "sleep_short"));
        }
        let _ = sleeps.kill();
        let _ = sleeps.wait();
        let error =
            |s: &Series, truth: f64| Series(s.0.iter().map(|v| (v - truth).abs()).collect());
        Ok(json!({
            "on_cpu_75_25": { "bpfprof_share": ours.json(), "bpfprof_error_points": error(&ours, 75.0).json(),
                              "perf_share": perf.json(), "perf_error_points": error(&perf, 75.0).json() },
            "off_cpu_2_1": { "bpfprof_share": off.json(), "bpfprof_error_points": error(&off, 200.0 / 3.0).json(),
                             "perf": "not measured: Debian's perf 6.1 is built without BPF skeletons, so `perf record --off-cpu` is ignored" },
        }))
    }

    /// Time to report and memory (items 2 and 3): from the end of a
    /// system-wide capture to the last output written, and peak RSS with
    /// processes coming and going.
    pub fn report_time_and_memory(&self) -> Result<Value> {
        let (mut report_ms, mut rss_mb, mut perf_script_s) =
            (Series::default(), Series::default(), Series::default());
        let seconds = self.capture_seconds.to_string();
        for _ in 0..self.runs {
            let mut churn = Command::new("sh")
                .args(["-c", "while :; do ls /usr/bin >/dev/null; sh -c 'sort /etc/services >/dev/null'; done"])
                .spawn()?;
            let result = measure(
                Command::new(&self.bpfprof)
                    .args(["-d", &seconds, "--force", "-o"])
                    .arg(self.tmp("report-bpfprof")),
            );
            let _ = churn.kill();
            let _ = churn.wait();
            let (cost, _) = result?;
            rss_mb.push(cost.max_rss_kb as f64 / 1024.0);
            let output = Command::new(&self.bpfprof)
                .args([
                    "-v",
                    "-d",
                    &seconds,
                    "--format",
                    "folded,svg,json,pprof",
                    "--force",
                    "-o",
                ])
                .arg(self.tmp("report-time"))
                .output()?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if let Some(ms) = stderr
                .lines()
                .find_map(|l| l.strip_prefix("bpfprof: outputs written in "))
            {
                report_ms.push(
                    ms.split_whitespace()
                        .next()
                        .unwrap_or("")
                        .parse()
                        .context("the report time")?,
                );
            }
            let data = self.tmp("report.perf");
            measure(
                Command::new("perf")
                    .args(["record", "-q", "-F", "99", "-g", "-a", "-o"])
                    .arg(&data)
                    .args(["--", "sleep", &seconds]),
            )?;
            let (post, _) = measure(Command::new("sh").arg("-c").arg(format!(
                "perf script -i {} | inferno-collapse-perf | inferno-flamegraph > {}",
                data.display(),
                self.tmp("perf.svg").display()
            )))?;
            perf_script_s.push(post.wall);
            thread::sleep(Duration::from_millis(200));
        }
        Ok(json!({
            "capture_seconds": self.capture_seconds,
            "bpfprof_report_ms": report_ms.json(),
            "perf_script_to_flamegraph_seconds": perf_script_s.json(),
            "bpfprof_peak_rss_mib": rss_mb.json(),
        }))
    }
}

/// Percent of `a` in `a + b`, by leaf samples of a folded text.
fn share(folded: &str, a: &str, b: &str) -> f64 {
    let (mut na, mut nb) = (0u64, 0u64);
    for (stack, count) in super::run::folded_stacks(folded) {
        if stack.split(';').any(|f| f == a) {
            na += count;
        } else if stack.split(';').any(|f| f == b) {
            nb += count;
        }
    }
    na as f64 * 100.0 / (na + nb).max(1) as f64
}

/// The average ns per run of a BPF program, from `bpfprof -v`.
pub(super) fn bpf_ns_per_run(stderr: &str, program: &str) -> Option<f64> {
    stderr
        .lines()
        .find(|l| l.contains(&format!("BPF {program} ")))?
        .split("runs")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// offcputime with stacks taken at switch-out, as a bpftrace user would.
const BPFTRACE_OFF_CPU: &str = "tracepoint:sched:sched_switch
{
	@ts[args->prev_pid] = nsecs;
	@ks[args->prev_pid] = kstack;
	@us[args->prev_pid] = ustack;
	$start = @ts[args->next_pid];
	if ($start) {
		@off[@ks[args->next_pid], @us[args->next_pid]] = sum((nsecs - $start) / 1000);
		delete(@ts[args->next_pid]);
	}
}
";
