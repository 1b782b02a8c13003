//! Bad input: one line naming the problem, exit status 2, no panic, and
//! nothing attached or written.

use std::process::Command;

use integration_tests::{bpfprof_bin, output_dir, require_bpf};

/// Runs bpfprof and returns (exit code, stderr).
fn run(args: &[&str]) -> (i32, String) {
    let output = Command::new(bpfprof_bin())
        .args(args)
        .output()
        .expect("starting bpfprof");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_one_line_error(args: &[&str], expected: &str, code: i32) {
    let (status, stderr) = run(args);
    assert_eq!(
        status, code,
        "{args:?}: exit status {status}, stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected one line, got:\n{stderr}"
    );
    assert!(lines[0].starts_with("bpfprof: "), "{args:?}: {}", lines[0]);
    assert!(
        lines[0].contains(expected),
        "{args:?}: `{}` does not mention `{expected}`",
        lines[0]
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
}

#[test]
#[ignore = "needs root and BPF"]
fn bad_flags_get_one_line_and_exit_2() {
    let _bpf = require_bpf();
    let dir = output_dir("bad-flags");
    let out = dir.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--freq", "0"], "--freq 0"),
        (&["--freq", "100000000"], "perf_event_max_sample_rate"),
        (&["--duration", "0"], "--duration"),
        (&["--duration", "soon"], "soon"),
        (&["--pid", "999999999"], "--pid 999999999: no such process"),
        (&["--pid", "1,999999999"], "--pid 999999999"),
        (&["--pid", "x"], "--pid"),
        (&["--interval", "0"], "--interval"),
        (&["--top", "0"], "--top"),
        (&["--no-such-flag"], "--no-such-flag"),
        (
            &["--", "bpfprof-no-such-command"],
            "bpfprof-no-such-command: command not found",
        ),
        (&["--pid", "1", "--", "true"], "--pid"),
    ];
    for (args, expected) in cases {
        let mut with_output = args.to_vec();
        with_output.splice(0..0, ["--output", out]);
        assert_one_line_error(&with_output, expected, 2);
    }
    assert!(
        !dir.exists(),
        "a rejected run must not create its output directory"
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn an_unwritable_output_directory_is_refused_before_capture() {
    let _bpf = require_bpf();
    assert_one_line_error(
        &["--duration", "1", "--output", "/proc/bpfprof-out"],
        "--output /proc/bpfprof-out",
        2,
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn missing_privileges_are_named() {
    let _bpf = require_bpf();
    let Ok(setpriv) = which("setpriv") else {
        panic!("setpriv (util-linux) is needed to run bpfprof without privileges");
    };
    let output = Command::new(setpriv)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(bpfprof_bin())
        .args(["--duration", "1", "--output", "/tmp/bpfprof-never-written"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("needs root") && stderr.contains("sudo"),
        "{stderr}"
    );
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    let paths = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}
