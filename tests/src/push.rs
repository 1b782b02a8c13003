//! What the push tests read: a bpfprof run with the wall-clock span it
//! took, report.json's `push` entries, the windows the run wrote, and the
//! OTLP receiver's log as windows and samples.

use std::{
    path::Path,
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

use crate::{Run, bpfprof_bin, output_dir, receiver::Backend, run_within};

/// Windows that follow each other may be this far apart, or overlap by
/// this much, in their time stamps.
pub const WINDOW_TOLERANCE_NS: u64 = 100_000_000;

/// A run's whole time, from before bpfprof started to after it exited.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub start_ns: u64,
    pub end_ns: u64,
}

pub fn unix_ns() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    since.as_nanos() as u64
}

/// Runs bpfprof with `--output` a fresh directory, `args` (split at
/// white space) and `env`, to its end (killed after a minute and a half:
/// a run that pushes must still end, its last flush bounded).
pub fn push_run(test: &str, args: &str, env: &[(&str, &str)]) -> (Run, Span) {
    let dir = output_dir(test);
    let mut command = Command::new(bpfprof_bin());
    command
        .arg("--output")
        .arg(&dir)
        .args(args.split_whitespace());
    command.envs(env.iter().copied());
    let start_ns = unix_ns();
    let output = run_within(command, Duration::from_secs(90), test);
    let span = Span {
        start_ns,
        end_ns: unix_ns(),
    };
    (Run::new(output, dir), span)
}

/// report.json's `push` entry for `backend`, the only one for it.
pub fn push_entry(report: &Value, backend: Backend) -> &Value {
    let entries = report["push"]
        .as_array()
        .unwrap_or_else(|| panic!("no push array in report.json: {report}"));
    let mut of_backend = entries.iter().filter(|e| e["backend"] == backend.name());
    let entry = of_backend
        .next()
        .unwrap_or_else(|| panic!("no {} entry in {entries:?}", backend.name()));
    assert!(of_backend.next().is_none(), "two entries: {entries:?}");
    entry
}

/// (windows_sent, windows_dropped, windows_rejected) of a push entry.
pub fn push_counts(entry: &Value) -> (u64, u64, u64) {
    let count = |key: &str| {
        entry[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in {entry}"))
    };
    (
        count("windows_sent"),
        count("windows_dropped"),
        count("windows_rejected"),
    )
}

/// The windows a run wrote under DIR/windows/ that have on-CPU samples:
/// with a CPU-bound workload, every one of them is to be pushed.
pub fn windows_with_samples(dir: &Path) -> u64 {
    let windows = dir.join("windows");
    let entries = std::fs::read_dir(&windows)
        .unwrap_or_else(|e| panic!("reading {}: {e}", windows.display()));
    let mut count = 0;
    for entry in entries {
        let report = entry.unwrap().path().join("report.json");
        let text = std::fs::read_to_string(&report)
            .unwrap_or_else(|e| panic!("reading {}: {e}", report.display()));
        let report: Value = serde_json::from_str(&text).unwrap();
        if report["totals"]["samples"].as_u64().unwrap() > 0 {
            count += 1;
        }
    }
    count
}

/// Windows, (start, length) in ns, each once, follow each other (within
/// [`WINDOW_TOLERANCE_NS`]), lie in the run, and cover the time it sampled
/// (`sampled_secs`, report.json's `run.duration_secs`) within half a second.
pub fn assert_windows_tile(windows: &[(u64, u64)], span: Span, sampled_secs: f64) {
    let mut sorted = windows.to_vec();
    sorted.sort();
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        panic!("no window");
    };
    for pair in sorted.windows(2) {
        let [(start, length), (next, _)] = [pair[0], pair[1]];
        assert!(start != next, "a window sent twice: {sorted:?}");
        assert!(length > 0, "a window of no length: {sorted:?}");
        let end = start + length;
        assert!(
            end.abs_diff(next) <= WINDOW_TOLERANCE_NS,
            "a window ends at {end} and the next starts at {next} ({} ms apart): {sorted:?}",
            (next as i64 - end as i64) / 1_000_000
        );
    }
    let end = last.0 + last.1;
    assert!(
        span.start_ns <= first.0 && end <= span.end_ns,
        "windows from {} to {end}, the run from {} to {}",
        first.0,
        span.start_ns,
        span.end_ns
    );
    let covered = (end - first.0) as f64 / 1e9;
    assert!(
        (covered - sampled_secs).abs() <= 0.5,
        "the windows cover {covered:.3} s, the run sampled {sampled_secs} s: {sorted:?}"
    );
}

/// Every request answered 200 with nothing wrong found in it; at least one.
pub fn accepted(requests: Vec<Value>) -> Vec<Value> {
    assert!(!requests.is_empty(), "no request reached the receiver");
    for request in &requests {
        let errors = &request["errors"];
        assert!(
            request["status"] == 200 && errors.as_array().is_some_and(Vec::is_empty),
            "{} {}: status {}, error {}, errors {errors}",
            request["method"],
            request["path"],
            request["status"],
            request["error"]
        );
    }
    requests
}

/// The profiles of an OTLP request (across its resources) whose sample
/// type is `sample_type` ("cpu/nanoseconds").
pub fn otlp_profiles<'a>(request: &'a Value, sample_type: &str) -> Vec<&'a Value> {
    let resources = request["resources"].as_array().expect("resources");
    resources
        .iter()
        .flat_map(|r| r["profiles"].as_array().expect("profiles"))
        .filter(|p| p["sample_type"] == sample_type)
        .collect()
}

/// A profile's window: (time_unix_nano, duration_nano).
pub fn otlp_window(profile: &Value) -> (u64, u64) {
    let field = |key: &str| profile[key].as_u64().unwrap_or_else(|| panic!("{key}"));
    (field("time_unix_nano"), field("duration_nano"))
}

pub fn otlp_samples(profile: &Value) -> &[Value] {
    profile["samples"].as_array().expect("samples")
}

/// A sample's one value.
pub fn sample_value(sample: &Value) -> u64 {
    let values = sample["values"].as_array().expect("values");
    assert_eq!(values.len(), 1, "{sample}");
    values[0].as_u64().expect("a value of at least 0")
}

/// A sample's function names, root first.
pub fn sample_stack(sample: &Value) -> Vec<&str> {
    let stack = sample["stack"].as_array().expect("stack");
    stack.iter().map(|f| f.as_str().unwrap()).collect()
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// A binary's GNU build id, as readelf prints it (hex).
pub fn build_id(binary: &Path) -> String {
    let out = Command::new("readelf")
        .arg("-n")
        .arg(binary)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("{} has no build id", binary.display()))
        .to_string()
}
