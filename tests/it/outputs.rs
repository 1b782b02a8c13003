//! The ecosystem's formats, the analyses, and the commands around a run:
//! pprof and speedscope files, --json, diff, report, continuous windows,
//! ownership under sudo, doctor, completions and the man page.

use std::{
    io::Read,
    os::unix::fs::MetadataExt,
    process::Command,
    time::{Duration, Instant},
};

use integration_tests::{
    Workload, bpfprof_bin, output_dir, profile, require_bpf, schemas, spawn_profiler, speedscope,
    workload,
};

fn bpfprof(args: &[&str]) -> std::process::Output {
    Command::new(bpfprof_bin())
        .args(args)
        .output()
        .expect("starting bpfprof")
}

#[test]
#[ignore = "needs root and BPF"]
fn writes_pprof_and_speedscope_and_json_on_stdout() {
    let _bpf = require_bpf();
    let ratio = Workload::start("wl-ratio", &[]);
    let pid = ratio.pid().to_string();
    let run = profile(
        "formats",
        &[
            "--pid",
            &pid,
            "-d",
            "1",
            "--format",
            "folded,pprof,speedscope,json",
            "--json",
        ],
    );
    run.assert_success();
    let report: serde_json::Value =
        serde_json::from_slice(&run.output.stdout).expect("--json prints report.json");
    assert!(
        report["recommendations"][0]
            .as_str()
            .unwrap()
            .starts_with("hot_a takes"),
        "{report}"
    );
    assert_eq!(report["call_paths"][0]["caller"], "__libc_start_call_main");
    assert_eq!(
        report["outputs"],
        serde_json::json!([
            "on-cpu.folded",
            "profile.pb.gz",
            "speedscope.json",
            "report.json"
        ])
    );
    assert!(
        !run.dir.join("on-cpu.svg").exists(),
        "svg was not asked for"
    );
    let pprof = std::fs::read(run.dir.join("profile.pb.gz")).unwrap();
    assert_eq!(&pprof[..2], &[0x1f, 0x8b], "gzip");
    // speedscope: the stacks of on-cpu.folded, each sample weighing its
    // period in nanoseconds (as pprof's cpu values).
    let doc = speedscope::read(&run.dir.join("speedscope.json"));
    let (unit, stacks) = speedscope::stacks(&doc, "On-CPU time");
    assert_eq!(unit, "nanoseconds");
    let period_ns = (1e9 / report["run"]["freq_hz"].as_f64().unwrap()).round() as u64;
    assert!(stacks.keys().any(|s| s.ends_with(&["hot_a".to_string()])));
    assert_eq!(stacks, speedscope::from_folded(&run.folded(), period_ns));
    // A frame's file is its function's source file from DWARF, never a
    // module's name.
    let frames = doc["shared"]["frames"].as_array().unwrap();
    let hot_a = frames.iter().find(|f| f["name"] == "hot_a").unwrap();
    assert!(
        hot_a["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("tests/workloads/ratio.c")),
        "{hot_a}"
    );
    let modules = ["wl-ratio", "libc.so.6", "[kernel]"];
    assert!(
        frames
            .iter()
            .all(|f| !modules.contains(&f["file"].as_str().unwrap_or_default())),
        "{frames:?}"
    );
}

/// pprof's mappings carry each binary's build id, read from its notes: a
/// binary of hundreds of megabytes (as libLLVM is) is not read whole.
#[test]
#[ignore = "needs root and BPF"]
fn pprof_build_ids_are_read_without_reading_whole_binaries() {
    let _bpf = require_bpf();
    let dir = output_dir("big-binary");
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("wl-spin-big");
    // A sparse tail, which the loader ignores and a whole read would not.
    // Written by other processes: an executable this one held open for
    // writing while another test forks could not be run (ETXTBSY).
    let sh = format!(
        "cp {} {big} && truncate -s +256M {big}",
        workload("wl-spin").display(),
        big = big.display()
    );
    let status = Command::new("sh").args(["-c", &sh]).status().unwrap();
    assert!(status.success(), "{sh}");
    let readelf = Command::new("readelf")
        .arg("-n")
        .arg(&big)
        .output()
        .unwrap();
    let notes = String::from_utf8_lossy(&readelf.stdout);
    let build_id = notes
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .expect("the workload has a build id")
        .to_string();
    // Frame pointers: the unwind tables are read another way.
    let run = profile(
        "build-ids",
        &[
            "-v",
            "--unwind",
            "fp",
            "--format",
            "pprof",
            "--",
            big.to_str().unwrap(),
            "1",
        ],
    );
    run.assert_success();
    let mut pprof = Vec::new();
    flate2::read::GzDecoder::new(&std::fs::read(run.dir.join("profile.pb.gz")).unwrap()[..])
        .read_to_end(&mut pprof)
        .unwrap();
    assert!(
        pprof
            .windows(build_id.len())
            .any(|w| w == build_id.as_bytes()),
        "no mapping carries the build id {build_id}"
    );
    let stderr = run.stderr();
    let peak: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bpfprof: peak memory "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|mib| mib.parse().ok())
        .unwrap_or_else(|| panic!("-v names the peak memory:\n{stderr}"));
    assert!(peak < 128.0, "peak memory {peak} MiB:\n{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root and BPF"]
fn diff_compares_two_runs_and_rejects_malformed_input() {
    let _bpf = require_bpf();
    let ratio = Workload::start("wl-ratio", &[]);
    let pid = ratio.pid().to_string();
    let base = profile("diff-base", &["--pid", &pid, "-d", "1"]);
    base.assert_success();
    let new = profile("diff-new", &["--pid", &pid, "-d", "1"]);
    new.assert_success();
    let out = output_dir("diff-out");
    let diff = bpfprof(&[
        "diff",
        base.dir.to_str().unwrap(),
        new.dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    let text = String::from_utf8_lossy(&diff.stdout);
    assert!(
        text.contains("Regressions") && text.contains("Net change"),
        "{text}"
    );
    assert!(out.join("diff.svg").is_file() && out.join("diff.folded").is_file());

    let bad = out.join("bad.folded");
    std::fs::write(&bad, "app;main 3\napp;main;work three\n").unwrap();
    let diff = bpfprof(&["diff", bad.to_str().unwrap(), base.dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&diff.stderr);
    assert_eq!(diff.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("bad.folded:2:") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let missing = bpfprof(&["diff", "/nonexistent/base", base.dir.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/base: no such file"));
}

#[test]
#[ignore = "needs root and BPF"]
fn report_rerenders_a_saved_run() {
    let _bpf = require_bpf();
    let ratio = Workload::start("wl-ratio", &[]);
    let run = profile(
        "report",
        &["--pid", &ratio.pid().to_string(), "-d", "1", "--off-cpu"],
    );
    run.assert_success();
    let report = bpfprof(&[
        "report",
        run.dir.to_str().unwrap(),
        "--top",
        "2",
        "--format",
        "svg",
    ]);
    let stdout = String::from_utf8_lossy(&report.stdout);
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let redrawn = std::path::PathBuf::from(format!("{}-report", run.dir.display()));
    assert!(
        redrawn.join("on-cpu.svg").is_file() && redrawn.join("wall.svg").is_file(),
        "the graphs are drawn again, next to the saved run"
    );
    let _ = std::fs::remove_dir_all(&redrawn);
    let self_table = stdout
        .split("by self time")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    assert_eq!(
        self_table.lines().count(),
        4,
        "a header and --top 2 rows:\n{stdout}"
    );
    assert!(
        self_table.contains("hot_a") && self_table.contains("wl-ratio"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Off-CPU"),
        "off-CPU tables come back too: {stdout}"
    );
    let not_a_run = bpfprof(&["report", "/tmp"]);
    assert_eq!(not_a_run.status.code(), Some(2));
}

/// --min-width is pixels of the graph's 1180-pixel frame area (its 1200
/// less padding), as in flamegraph.pl: with 11800 samples, 10 a pixel.
#[test]
#[ignore = "needs root and BPF"]
fn min_width_is_in_pixels() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let run = profile("min-width", &["--pid", &spin.pid().to_string(), "-d", "1"]);
    run.assert_success();
    std::fs::write(
        run.dir.join("on-cpu.folded"),
        "app;main;wide 11700\napp;main;above_threshold 51\napp;main;below_threshold 49\n",
    )
    .unwrap();
    let drawn = |min_width: &str| {
        let out = output_dir(&format!("min-width-{min_width}"));
        let report = bpfprof(&[
            "report",
            run.dir.to_str().unwrap(),
            "--format",
            "svg",
            "--min-width",
            min_width,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(
            report.status.success(),
            "{}",
            String::from_utf8_lossy(&report.stderr)
        );
        let svg = std::fs::read_to_string(out.join("on-cpu.svg")).unwrap();
        let _ = std::fs::remove_dir_all(&out);
        ["above_threshold", "below_threshold"].map(|name| svg.contains(name))
    };
    assert_eq!(drawn("5"), [true, false], "5.1 px drawn, 4.9 px left out");
    assert_eq!(drawn("4.8"), [true, true]);
    assert_eq!(drawn("0.42%"), [true, false], "49.6 samples");
    let _ = std::fs::remove_dir_all(&run.dir);
}

#[test]
#[ignore = "needs root and BPF"]
fn windows_are_written_while_the_capture_runs() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let dir = output_dir("windows");
    let started = Instant::now();
    let child = spawn_profiler(
        &dir,
        &[
            "--pid",
            &spin.pid().to_string(),
            "-d",
            "4.4",
            "--window",
            "1",
            "--keep",
            "2",
        ],
    );
    let windows = dir.join("windows");
    let mut first_seen = None;
    while started.elapsed() < Duration::from_secs(3) {
        let count = std::fs::read_dir(&windows).map_or(0, |d| d.count());
        if count > 0 {
            first_seen = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        first_seen.is_some(),
        "no window was written during the first 3 s of the capture"
    );
    schemas::check_outputs(&dir);
    let mut kept: Vec<_> = std::fs::read_dir(&windows)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    kept.sort();
    assert_eq!(kept.len(), 2, "--keep 2: {kept:?}");
    for window in &kept {
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(window.join("report.json")).unwrap())
                .unwrap();
        assert!(
            report["totals"]["samples"].as_u64().unwrap() > 0,
            "{}",
            window.display()
        );
    }
    let whole: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let samples = whole["totals"]["samples"].as_u64().unwrap();
    assert!(
        (390..=480).contains(&samples),
        "the whole run keeps every window's samples: {samples}"
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn outputs_belong_to_the_user_who_ran_sudo() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let dir = output_dir("sudo");
    let output = Command::new(bpfprof_bin())
        .args([
            "--pid",
            &spin.pid().to_string(),
            "-d",
            "0.5",
            "-o",
            dir.to_str().unwrap(),
        ])
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    schemas::check_outputs(&dir);
    for path in [dir.clone(), dir.join("on-cpu.svg"), dir.join("report.json")] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (65534, 65534),
            "{}",
            path.display()
        );
    }
}

#[test]
#[ignore = "needs root and BPF"]
fn completions_and_the_man_page_come_from_the_cli() {
    let _bpf = require_bpf();
    let bash = bpfprof(&["completions", "bash"]);
    assert!(bash.status.success() && String::from_utf8_lossy(&bash.stdout).contains("--off-cpu"));
    let man = bpfprof(&["man"]);
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.status.success()
            && page.contains(".TH bpfprof")
            && page.contains(".SS \"bpfprof diff\"")
            && page.contains("\\-\\-threshold"),
        "{page}"
    );
}
