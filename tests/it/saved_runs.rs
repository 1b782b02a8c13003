//! Saved runs that other users may have made, read by bpfprof running as
//! root (`nobody` plants the files): ones that never end (/dev/zero, a
//! FIFO, an over-long line, an over-large file) and counts that overflow.
//! Each is refused in one line, with exit status 2, and never hangs.

use std::{
    fs,
    os::unix::{fs::chown, process::CommandExt},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use integration_tests::{bpfprof_bin, output_dir, require_bpf, run_within};

const NOBODY: u32 = 65534;

/// Runs `bpfprof ARGS` on saved files within 30 s.
fn bpfprof_within(args: &[&Path]) -> (Option<i32>, String) {
    let mut command = Command::new(bpfprof_bin());
    command.args(args);
    let output = run_within(command, Duration::from_secs(30), &format!("{args:?}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_refused(args: &[&Path], expected: &str) {
    let (code, stderr) = bpfprof_within(args);
    assert_eq!(code, Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(
        stderr.starts_with("bpfprof: ") && stderr.contains(expected),
        "{args:?}: `{stderr}` does not say `{expected}`"
    );
}

/// A directory of `nobody`'s, for files another user made.
fn nobodys_dir(test: &str) -> PathBuf {
    let dir = output_dir(test);
    fs::create_dir_all(&dir).unwrap();
    chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    dir
}

fn as_nobody(script: &str, dir: &Path) {
    let status = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(dir)
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

#[test]
#[ignore = "needs root and BPF"]
fn saved_runs_that_never_end_are_refused_in_one_line() {
    let _bpf = require_bpf();
    let dir = nobodys_dir("endless");
    as_nobody(
        r#"cd "$1" && printf 'app;main 1\n' > ok.folded && mkfifo fifo.folded &&
           mkdir run && ln -s /dev/zero run/report.json && ln -s /dev/zero run/on-cpu.folded &&
           awk 'BEGIN { printf "app"; for (i = 0; i < 600000; i++) printf ";f"; print " 1" }' > long.folded &&
           truncate -s 1100M big.folded"#,
        &dir,
    );
    // Where a diff would write, were it to accept its input.
    let out = output_dir("endless-out");
    let o = Path::new("-o");
    let ok = dir.join("ok.folded");
    let zero = Path::new("/dev/zero");
    assert_refused(
        &[Path::new("diff"), zero, &ok, o, &out],
        "/dev/zero: not a regular file",
    );
    let fifo = dir.join("fifo.folded");
    assert_refused(
        &[Path::new("diff"), &ok, &fifo, o, &out],
        "fifo.folded: not a regular file",
    );
    let long = dir.join("long.folded");
    assert_refused(
        &[Path::new("diff"), &long, &ok, o, &out],
        "long.folded:1: line longer than 1 MiB",
    );
    let big = dir.join("big.folded");
    assert_refused(
        &[Path::new("diff"), &ok, &big, o, &out],
        "big.folded: larger than 1024 MiB",
    );
    let run = dir.join("run");
    assert_refused(
        &[Path::new("report"), &run],
        "run/report.json: not a regular file",
    );
    assert_refused(
        &[Path::new("diff"), &run, &ok, o, &out],
        "run/on-cpu.folded: not a regular file",
    );
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_dir_all(&out);
}

#[test]
#[ignore = "needs root and BPF"]
fn counts_that_would_overflow_are_refused_not_wrapped() {
    let _bpf = require_bpf();
    let dir = output_dir("overflow");
    fs::create_dir_all(&dir).unwrap();
    let huge = dir.join("huge.folded");
    fs::write(
        &huge,
        "app;a 18446744073709551615\napp;b 18446744073709551615\n",
    )
    .unwrap();
    let ok = dir.join("ok.folded");
    fs::write(&ok, "app;a 3\napp;b 1\n").unwrap();
    let out = dir.join("out");
    assert_refused(
        &[Path::new("diff"), &huge, &ok, Path::new("-o"), &out],
        "huge.folded:1: count too large",
    );
    // The most a file may hold compares with shares of at most 100%.
    let most = dir.join("most.folded");
    fs::write(&most, "app;a 9223372036854775806\napp;b 1\n").unwrap();
    let output = Command::new(bpfprof_bin())
        .args([Path::new("diff"), &ok, &most, Path::new("-o"), &out])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("(9223372036854775807 samples)") && text.contains("+25.0  "),
        "{text}"
    );
    let shares: Vec<f64> = text
        .split_whitespace()
        .filter_map(|w| w.strip_suffix('%')?.parse().ok())
        .collect();
    assert!(
        !shares.is_empty() && shares.iter().all(|s| (0.0..=100.0).contains(s)),
        "{text}"
    );
    let _ = fs::remove_dir_all(&dir);
}
