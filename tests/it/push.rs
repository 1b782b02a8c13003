//! Push end to end, what arrives: each window of a run sent as it closes
//! to an OTLP or a Pyroscope receiver (tests/receivers/, the OTLP one
//! decoding with the official OpenTelemetry classes), with its time range,
//! its resource and sample attributes or labels, and the profile itself: a
//! 75/25 split with its call chain, off-CPU time by thread state.
//! How it is delivered (outages, rejections, TLS, credentials):
//! push_delivery.rs.

use std::{collections::BTreeMap, path::Path};

use integration_tests::{
    Folded, Workload, output_dir, pprof,
    push::{
        Span, accepted, assert_windows_tile, build_id, hostname, otlp_profiles, otlp_samples,
        otlp_window, push_counts, push_entry, push_run, sample_stack, sample_value,
        windows_with_samples,
    },
    receiver::{Backend, Receiver},
    require_bpf, workload,
};
use serde_json::{Value, json};

const FREQ: &str = "997";
/// A sample's CPU time at FREQ: round(1e9 / 997) ns.
const PERIOD_NS: u64 = 1_003_009;

#[test]
#[ignore = "needs root and BPF"]
fn otlp_gets_each_window_with_its_attributes_and_the_75_25_split() {
    let _bpf = require_bpf();
    let receiver = Receiver::start(Backend::Otlp, &output_dir("otlp-receiver"), &[]);
    let ratio = Workload::start("wl-ratio", &[]);
    let pid = ratio.pid();
    let url = receiver.url();
    let args = format!("--pid {pid} -d 6 --window 3 -F {FREQ} --otlp {url} --label env=test");
    let (run, span) = push_run("otlp", &args, &[]);
    run.assert_success();
    let requests = accepted(receiver.requests());
    let report = run.report();
    let entry = push_entry(&report, Backend::Otlp);
    let sent = requests.len() as u64;
    assert_eq!(push_counts(entry), (sent, 0, 0), "{entry}");
    assert_eq!(sent, windows_with_samples(&run.dir), "a request per window");
    assert!(entry["last_error"].is_null(), "{entry}");
    assert!(
        entry["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&receiver.url())),
        "{entry}"
    );

    let mut windows = Vec::new();
    let mut samples = Vec::new();
    for request in &requests {
        let profile = one_cpu_profile(request);
        windows.push(otlp_window(profile));
        samples.extend(otlp_samples(profile));
    }
    let sampled_secs = report["run"]["duration_secs"].as_f64().unwrap();
    assert_windows_tile(&windows, span, sampled_secs);
    for sample in &samples {
        assert_ratio_sample(sample, pid);
    }
    assert_75_25(&samples);
    // Every window's CPU time, and only theirs: the whole run's.
    let pushed: u64 = samples.iter().map(|s| sample_value(s)).sum();
    let processes = report["processes"].as_array().unwrap();
    let process = processes.iter().find(|p| p["pid"] == pid).unwrap();
    let reported = process["samples"].as_u64().unwrap() * PERIOD_NS;
    assert!(
        pushed.abs_diff(reported) * 50 <= reported,
        "{pushed} ns pushed, {reported} ns in report.json"
    );
    assert_workload_build_id(&requests);
}

/// The request's one profile, once the request is checked: its path and
/// headers, its one resource (wl-ratio's, on this host, env=test), and the
/// profile's types and period.
fn one_cpu_profile(request: &Value) -> &Value {
    assert_eq!(request["path"], "/v1development/profiles");
    let headers = &request["headers"];
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["otlp-profiles-development-version"], "1");
    let resources = request["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 1, "one service, wl-ratio");
    let attributes = &resources[0]["attributes"];
    assert_eq!(attributes["service.name"], "wl-ratio", "{attributes}");
    assert_eq!(attributes["host.name"], hostname(), "{attributes}");
    assert_eq!(attributes["env"], "test", "{attributes}");
    let profiles = resources[0]["profiles"].as_array().unwrap();
    let types: Vec<&Value> = profiles.iter().map(|p| &p["sample_type"]).collect();
    assert_eq!(types, ["cpu/nanoseconds"], "CPU time only");
    let profile = &profiles[0];
    assert_eq!(profile["scope"], "bpfprof");
    assert_eq!(profile["period_type"], "cpu/nanoseconds");
    assert_eq!(profile["period"], PERIOD_NS);
    profile
}

/// A wl-ratio sample: CPU time in whole periods, in its one thread.
fn assert_ratio_sample(sample: &Value, pid: u32) {
    let value = sample_value(sample);
    assert!(
        value > 0 && value.is_multiple_of(PERIOD_NS),
        "{value} ns, not whole periods of {PERIOD_NS} ns"
    );
    let binary = std::fs::canonicalize(workload("wl-ratio")).unwrap();
    let a = &sample["attributes"];
    assert_eq!(a["process.pid"], pid, "{a}");
    assert_eq!(a["thread.id"], pid, "wl-ratio's one thread: {a}");
    assert_eq!(a["thread.name"], "wl-ratio", "{a}");
    assert_eq!(a["process.executable.name"], "wl-ratio", "{a}");
    assert_eq!(
        a["process.executable.path"],
        binary.to_str().unwrap(),
        "{a}"
    );
    assert!(a.get("thread.state").is_none(), "on-CPU: no state: {a}");
}

/// hot_a has 75 ± 5% of the CPU time of hot_a and hot_b, with the whole
/// chain main → run_workload → hot_a above it (see on_cpu.rs).
fn assert_75_25(samples: &[&Value]) {
    let ns_where = |keep: &dyn Fn(&[&str]) -> bool| -> u64 {
        let kept = samples.iter().filter(|s| keep(&sample_stack(s)));
        kept.map(|s| sample_value(s)).sum()
    };
    let a = ns_where(&|stack| stack.last() == Some(&"hot_a"));
    let b = ns_where(&|stack| stack.last() == Some(&"hot_b"));
    assert!(
        (a + b) / PERIOD_NS >= 1000,
        "too few samples to judge: hot_a {a} ns, hot_b {b} ns"
    );
    let share = a as f64 / (a + b) as f64;
    assert!(
        (0.70..=0.80).contains(&share),
        "hot_a has {:.1}% of the split, expected 75 ± 5",
        share * 100.0
    );
    let chain = ns_where(&|stack| {
        stack.last() == Some(&"hot_a")
            && stack
                .windows(3)
                .any(|w| w == ["main", "run_workload", "hot_a"])
    });
    assert!(chain * 10 >= a * 9, "whole chain in {chain} of {a} ns");
}

/// wl-ratio's mappings carry its GNU build id.
fn assert_workload_build_id(requests: &[Value]) {
    let expected = build_id(&workload("wl-ratio"));
    let mappings = requests
        .iter()
        .flat_map(|r| r["mappings"].as_array().unwrap());
    let ours: Vec<&Value> = mappings
        .filter(|m| m["filename"].as_str().unwrap().ends_with("/wl-ratio"))
        .collect();
    assert!(!ours.is_empty(), "no mapping of wl-ratio");
    for mapping in ours {
        let id = &mapping["attributes"]["process.executable.build_id.gnu"];
        assert_eq!(id, expected.as_str(), "{mapping}");
    }
}

const STATES: [&str; 4] = ["sleeping", "uninterruptible", "preempted", "other"];

#[test]
#[ignore = "needs root and BPF"]
fn otlp_off_cpu_time_is_a_second_profile_by_thread_state() {
    let _bpf = require_bpf();
    let receiver = Receiver::start(Backend::Otlp, &output_dir("otlp-off-receiver"), &[]);
    let sleeper = Workload::start("wl-sleeps", &[]);
    let pid = sleeper.pid();
    let url = receiver.url();
    let args = format!("--pid {pid} --off-cpu -d 4 --window 2 --otlp {url}");
    let (run, span) = push_run("otlp-off-cpu", &args, &[]);
    run.assert_success();
    let requests = accepted(receiver.requests());
    let report = run.report();
    let entry = push_entry(&report, Backend::Otlp);
    assert_eq!(push_counts(entry), (requests.len() as u64, 0, 0), "{entry}");
    let (mut windows, mut off) = (Vec::new(), Vec::new());
    for request in &requests {
        let off_cpu = otlp_profiles(request, "off_cpu/nanoseconds");
        assert_eq!(off_cpu.len(), 1, "one off-CPU profile a window");
        windows.push(otlp_window(off_cpu[0]));
        off.extend(otlp_samples(off_cpu[0]));
        let cpu = otlp_profiles(request, "cpu/nanoseconds");
        let profiles = request["resources"][0]["profiles"].as_array().unwrap();
        assert_eq!(cpu.len() + 1, profiles.len(), "cpu and off_cpu only");
        for sample in cpu.into_iter().flat_map(otlp_samples) {
            assert!(sample["attributes"].get("thread.state").is_none());
        }
    }
    assert_windows_tile(
        &windows,
        span,
        report["run"]["duration_secs"].as_f64().unwrap(),
    );
    let mut by_state = BTreeMap::<String, u64>::new();
    for sample in &off {
        let a = &sample["attributes"];
        assert_eq!(a["process.pid"], pid, "{a}");
        let state = a["thread.state"].as_str().unwrap_or_default();
        assert!(STATES.contains(&state), "thread.state: {a}");
        *by_state.entry(state.to_string()).or_default() += sample_value(sample);
    }
    let total: u64 = by_state.values().sum();
    assert!(by_state["sleeping"] * 10 >= total * 9, "{by_state:?}");
    // The windows hold the whole run's off-CPU time (off-cpu.folded, µs).
    let folded = Folded::read(&run.dir.join("off-cpu.folded")).samples_of("wl-sleeps") * 1000;
    assert!(
        total.abs_diff(folded) * 50 <= folded,
        "{total} ns pushed, {folded} ns in the run"
    );
    let sleeping_under = |function: &str| -> f64 {
        let under = off.iter().filter(|s| {
            s["attributes"]["thread.state"] == "sleeping" && sample_stack(s).contains(&function)
        });
        under.map(|s| sample_value(s)).sum::<u64>() as f64
    };
    let ratio = sleeping_under("sleep_long") / sleeping_under("sleep_short");
    assert!(
        (1.8..=2.2).contains(&ratio),
        "sleep_long / sleep_short {ratio:.2}, expected 2 ± 10%"
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn pyroscope_gets_each_window_as_pprof_under_its_name_and_labels() {
    let _bpf = require_bpf();
    let receiver = Receiver::start(Backend::Pyroscope, &output_dir("pyroscope-receiver"), &[]);
    let ratio = Workload::start("wl-ratio", &[]);
    let pid = ratio.pid();
    // The URL's own path is kept, /ingest after it.
    let url = format!("{}/pyroscope", receiver.url());
    let args = format!("--pid {pid} -d 6 --window 3 -F {FREQ} --pyroscope {url} --label env=test");
    let (run, span) = push_run("pyroscope", &args, &[]);
    run.assert_success();
    let requests = accepted(receiver.requests());
    let report = run.report();
    let entry = push_entry(&report, Backend::Pyroscope);
    let sent = requests.len() as u64;
    assert_eq!(push_counts(entry), (sent, 0, 0), "{entry}");
    assert_eq!(sent, windows_with_samples(&run.dir), "a request per window");
    let mut ranges = Vec::new();
    let [mut a, mut b, mut count] = [0; 3];
    for request in &requests {
        ranges.push(ingest_range(request));
        let body = Path::new(request["body_file"].as_str().unwrap());
        let [ra, rb, rcount] = ratio_split(&pprof::Profile::read(body), pid);
        [a, b, count] = [a + ra, b + rb, count + rcount];
    }
    assert_consecutive_seconds(ranges, span);
    assert!(count >= 1000, "too few samples to judge: {count}");
    let share = a as f64 / (a + b) as f64;
    assert!(
        (0.70..=0.80).contains(&share),
        "hot_a has {:.1}% of the split, expected 75 ± 5",
        share * 100.0
    );
}

/// An /ingest request's (from, until), once its path, headers and query
/// are checked: wl-ratio{hostname=HOST,env=test}, pprof at FREQ.
fn ingest_range(request: &Value) -> (u64, u64) {
    let path = request["path"].as_str().unwrap();
    assert!(path.starts_with("/pyroscope/ingest?"), "{path}");
    assert_eq!(
        request["headers"]["content-type"],
        "application/octet-stream"
    );
    assert_eq!(request["app"], "wl-ratio");
    assert_eq!(
        request["labels"],
        json!({"hostname": hostname(), "env": "test"})
    );
    let query = &request["query"];
    assert_eq!(query["format"], "pprof", "{query}");
    assert_eq!(query["sampleRate"], FREQ, "{query}");
    assert_eq!(query["spyName"], "bpfprof", "{query}");
    let secs = |key: &str| -> u64 {
        let value = query[key].as_str().and_then(|v| v.parse().ok());
        value.unwrap_or_else(|| panic!("{key} is not whole seconds: {query}"))
    };
    (secs("from"), secs("until"))
}

/// (from, until) in whole seconds lie in the run and follow each other:
/// each starts in the second the one before ends in.
fn assert_consecutive_seconds(mut ranges: Vec<(u64, u64)>, span: Span) {
    ranges.sort();
    let (first, last) = (ranges[0], ranges[ranges.len() - 1]);
    assert!(
        first.0 >= span.start_ns / 1_000_000_000 && last.1 <= span.end_ns.div_ceil(1_000_000_000),
        "{ranges:?} outside the run {span:?}"
    );
    for pair in ranges.windows(2) {
        let [(from, until), (next, _)] = [pair[0], pair[1]];
        assert!(from < next && from <= until, "{ranges:?}");
        assert!(
            (until.saturating_sub(1)..=until).contains(&next),
            "{ranges:?}"
        );
    }
}

/// [hot_a ns, hot_b ns, their sample count] in a window's pprof, whose
/// sample types are samples/count and cpu/nanoseconds and whose samples
/// are all wl-ratio's.
fn ratio_split(profile: &pprof::Profile, pid: u32) -> [u64; 3] {
    let types: Vec<(&str, &str)> = profile
        .sample_types
        .iter()
        .map(|(t, u)| (t.as_str(), u.as_str()))
        .collect();
    assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
    let mut split = [0; 3];
    for sample in &profile.samples {
        assert_eq!(sample.label("pid").map(|l| l.num), Some(i64::from(pid)));
        assert_eq!(
            sample.label("process").map(|l| l.str.as_str()),
            Some("wl-ratio")
        );
        let leaf = profile.stack(sample).last().copied();
        let slot = match leaf {
            Some("hot_a") => 0,
            Some("hot_b") => 1,
            _ => continue,
        };
        split[slot] += sample.values[1] as u64;
        split[2] += sample.values[0] as u64;
    }
    split
}
