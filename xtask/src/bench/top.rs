//! The cost of `bpfprof top` (#19): the live view beside a capture of the
//! same process at the same rate, side by side, for the same time; the
//! ratio of their CPU times (the view's refreshes included) is its cost
//! over a capture's. The view gets a terminal of its own from script(1).

use std::{
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{
    Bench,
    run::{Series, wait},
};

impl Bench {
    pub fn top_cost(&self) -> Result<Value> {
        let seconds = if self.quick { 20 } else { 30 };
        let mut load = Command::new(self.workload("wl-ratio"))
            .arg((seconds * self.runs as u64 + 30).to_string())
            .spawn()?;
        let pid = load.id().to_string();
        let (mut capture, mut live, mut ratio) =
            (Series::default(), Series::default(), Series::default());
        let result = (|| -> Result<()> {
            for _ in 0..self.runs {
                let started = Instant::now();
                let view = format!(
                    "stty cols 80 rows 24; {} top --pid {pid} -F 999 -d {seconds}",
                    self.bpfprof.display()
                );
                let top = Command::new("script")
                    .args(["-qec", &view, "/dev/null"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()
                    .context("script(1) (util-linux) gives bpfprof top its terminal")?;
                let plain = Command::new(&self.bpfprof)
                    .args(["--pid", &pid, "-F", "999", "-d", &seconds.to_string()])
                    .args(["--format", "folded", "--force", "-o"])
                    .arg(self.tmp("top-capture"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?;
                let (top_cost, top_status) = wait(top, started)?;
                let (plain_cost, _) = wait(plain, started)?;
                if top_status != 0 {
                    bail!("bpfprof top exited with {top_status}");
                }
                capture.push(plain_cost.cpu);
                live.push(top_cost.cpu);
                ratio.push(top_cost.cpu / plain_cost.cpu);
            }
            Ok(())
        })();
        let _ = load.kill();
        let _ = load.wait();
        result?;
        Ok(json!({
            "freq_hz": 999,
            "seconds": seconds,
            "cpu_seconds_capture": capture.json(),
            "cpu_seconds_top": live.json(),
            "top_over_capture": ratio.json(),
        }))
    }
}

/// The top section of docs/benchmarks.md.
pub(super) fn section(out: &mut String, v: &Value) {
    use std::fmt::Write;

    use super::report::show;
    if v.is_null() {
        return;
    }
    let _ = writeln!(
        out,
        "## bpfprof top\n\n`bpfprof top --pid` of wl-ratio at {} Hz for {} s in an 80x24 terminal (script(1)), beside a capture of the same process at the same rate for the same time. bpfprof's own CPU time, the view's refreshes included; the refresh alone on 10,000 distinct stacks is in `cargo bench -p profiler` (\"top: count in an interval\").\n",
        v["freq_hz"], v["seconds"]
    );
    let _ = writeln!(
        out,
        "| CPU s, capture | CPU s, top | top / capture |\n|---|---|---|\n| {} | {} | {}x |\n",
        show(&v["cpu_seconds_capture"], 3),
        show(&v["cpu_seconds_top"], 3),
        show(&v["top_over_capture"], 2),
    );
}
