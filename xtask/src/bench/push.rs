//! The cost of pushing (#18): two system-wide runs at 19 Hz with 15 s
//! windows side by side, identical but for `--otlp` and `--pyroscope` to a
//! local receiver that answers 200 to everything; the ratio of their CPU
//! times is pushing's cost (target: at most 1.05).

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{
    Bench,
    run::{Series, wait},
};

/// A receiver that reads each request whole and says 200: what it costs
/// bpfprof to encode and send is measured, not what a backend does.
const RECEIVER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

impl Bench {
    pub fn push_cost(&self) -> Result<Value> {
        let (receiver, port) = start_receiver()?;
        let _receiver = Killed(receiver);
        let seconds = if self.quick { 60 } else { 120 };
        let _load = Killed(
            Command::new(self.workload("wl-ratio"))
                .arg((seconds * self.runs as u64 + 30).to_string())
                .spawn()?,
        );
        let (mut plain, mut pushing, mut ratio) =
            (Series::default(), Series::default(), Series::default());
        let mut sent = 0;
        for _ in 0..self.runs {
            let url = format!("http://127.0.0.1:{port}");
            let base = self.push_run(seconds, "push-plain", &[])?;
            let with =
                self.push_run(seconds, "push-both", &["--otlp", &url, "--pyroscope", &url])?;
            let (base_cost, _) = wait(base.0, base.1)?;
            let (with_cost, _) = wait(with.0, with.1)?;
            sent += pushed_windows(&self.tmp("push-both"))?;
            plain.push(base_cost.cpu);
            pushing.push(with_cost.cpu);
            ratio.push(with_cost.cpu / base_cost.cpu);
        }
        if sent == 0 {
            bail!("the pushing runs sent no window to the receiver");
        }
        Ok(json!({
            "freq_hz": 19,
            "window_seconds": 15,
            "run_seconds": seconds,
            "cpu_seconds_without_push": plain.json(),
            "cpu_seconds_pushing": pushing.json(),
            "pushing_over_plain": ratio.json(),
            "windows_sent": sent,
        }))
    }

    /// Starts one system-wide run; both of a pair run at once.
    fn push_run(&self, seconds: u64, name: &str, extra: &[&str]) -> Result<(Child, Instant)> {
        let started = Instant::now();
        let child = Command::new(&self.bpfprof)
            .args(["-F", "19", "--window", "15", "-d", &seconds.to_string()])
            .args(["--format", "folded,json", "--force", "-o"])
            .arg(self.tmp(name))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.bpfprof.display()))?;
        Ok((child, started))
    }
}

/// A helper process, killed however the case ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_receiver() -> Result<(Child, u16)> {
    let mut child = Command::new("python3")
        .args(["-c", RECEIVER])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the bench's receiver (python3)")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("receiver stdout")?).read_line(&mut line)?;
    let port = line.trim().parse().context("the receiver's port")?;
    Ok((child, port))
}

/// Windows the pushing run's report.json says its backends took.
fn pushed_windows(dir: &std::path::Path) -> Result<u64> {
    let text = std::fs::read_to_string(dir.join("report.json"))?;
    let report: Value = serde_json::from_str(&text)?;
    Ok(report["push"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["windows_sent"].as_u64())
        .sum())
}

/// The push section of docs/benchmarks.md.
pub(super) fn section(out: &mut String, v: &Value) {
    use std::fmt::Write;

    use super::report::{show, verdict};
    if v.is_null() {
        return;
    }
    let _ = writeln!(
        out,
        "## Pushing to backends\n\nTwo system-wide runs of {} s at {} Hz with {} s windows, side by side (wl-ratio keeps a CPU busy): one writes its windows only; the other also sends each to a local receiver as OTLP and to Pyroscope's ingest API. bpfprof's own CPU time (user + system, its push threads included).\n",
        v["run_seconds"], v["freq_hz"], v["window_seconds"]
    );
    let _ = writeln!(
        out,
        "| CPU s, windows only | CPU s, pushing both | pushing / windows only | windows sent |\n|---|---|---|---|"
    );
    let _ = writeln!(
        out,
        "| {} | {} | {}x | {} |",
        show(&v["cpu_seconds_without_push"], 3),
        show(&v["cpu_seconds_pushing"], 3),
        show(&v["pushing_over_plain"], 3),
        v["windows_sent"]
    );
    let ratio = v["pushing_over_plain"]["median"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let _ = writeln!(
        out,
        "\nTarget: pushing adds at most 5% to bpfprof's CPU: {}.\n",
        verdict(ratio <= 1.05)
    );
}
