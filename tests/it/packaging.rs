//! packaging/bpfprof.service's command line, run as the unit runs it
//! (its OTLP endpoint swapped for a local receiver): it is accepted, samples
//! every process at 19 Hz and pushes; the unit restarts bpfprof on failure.

use std::path::Path;

use integration_tests::{
    Workload, output_dir,
    push::{accepted, push_counts, push_entry, push_run},
    receiver::{Backend, Receiver},
    require_bpf,
};

/// The unit's ExecStart, continuation lines joined, split into words.
fn exec_start(unit: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart");
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
#[ignore = "needs root and BPF"]
fn the_systemd_unit_samples_every_cpu_at_19_hz_and_pushes_over_otlp() {
    let _bpf = require_bpf();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/bpfprof.service");
    let unit = std::fs::read_to_string(&path).expect("packaging/bpfprof.service");
    for line in [
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} in {unit}");
    }
    let words = exec_start(&unit);
    assert_eq!(words[0], "/usr/local/bin/bpfprof");
    let args = words[1..].join(" ");
    assert!(args.contains("--freq 19"), "{args}");
    let endpoint = "--otlp http://localhost:4318";
    assert!(args.contains(endpoint), "{args}");

    let _spin = Workload::start("wl-spin", &[]);
    let receiver = Receiver::start(Backend::Otlp, &output_dir("unit-receiver"), &[]);
    let args = args.replace(endpoint, &format!("--otlp {}", receiver.url()));
    let (run, _) = push_run("unit", &format!("{args} -d 3"), &[]);
    run.assert_success();
    let report = run.report();
    assert_eq!(report["run"]["freq_hz"], 19);
    assert_eq!(report["run"]["target"], "all processes");
    let entry = push_entry(&report, Backend::Otlp);
    assert_eq!(push_counts(entry), (1, 0, 0), "one window in 3 s: {entry}");
    let requests = accepted(receiver.requests());
    assert_eq!(requests.len(), 1, "{requests:?}");
    let resources = requests[0]["resources"].as_array().expect("resources");
    // System-wide: the busy workload is among the services sent (what
    // else ran in 3 s at 19 Hz is up to the machine).
    let services: Vec<&str> = resources
        .iter()
        .filter_map(|r| r["attributes"]["service.name"].as_str())
        .collect();
    assert!(services.contains(&"wl-spin"), "services: {services:?}");
}
