//! Bad input: one line naming the problem, exit status 2, no panic, and
//! nothing attached or written, at once.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{as_nobody, bpfprof_bin, output_dir, require_bpf};

/// Bad input is refused before anything is loaded: well within this.
const REFUSED_WITHIN: Duration = Duration::from_secs(5);

/// Runs bpfprof and returns (exit code, stderr); fails the test if it has
/// not exited within `REFUSED_WITHIN` (then it is killed).
fn run(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(bpfprof_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting bpfprof");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > REFUSED_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: still running after {REFUSED_WITHIN:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code().unwrap_or(-1), stderr)
}

/// Checks the run failed with `code` and one line mentioning `expected`;
/// returns the line.
fn assert_one_line_error(args: &[&str], expected: &str, code: i32) -> String {
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
    lines[0].to_string()
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
        (
            &["--unwind-cache", "tables"],
            "--unwind-cache tables: must be `none` or an absolute path",
        ),
        (&["--unwind-cache", "/"], "--unwind-cache /: must be"),
        (&["--no-such-flag"], "--no-such-flag"),
        (
            &["--", "bpfprof-no-such-command"],
            "bpfprof-no-such-command: command not found",
        ),
        (&["--pid", "1", "--", "true"], "--pid"),
        (&["--min-width", "inf"], "--min-width"),
        (&["--min-width=NaN"], "--min-width"),
        (&["--min-width=-1"], "--min-width"),
        (&["--"], "`--` must be followed by the COMMAND to run"),
        (
            &["--", "./bpfprof-no-such-file"],
            "./bpfprof-no-such-file: no such file",
        ),
        (&["--", "/tmp"], "/tmp: is a directory, not a command"),
    ];
    for (args, expected) in cases {
        let mut with_output = args.to_vec();
        with_output.splice(0..0, ["--output", out]);
        let _ = assert_one_line_error(&with_output, expected, 2);
    }
    assert!(
        !dir.exists(),
        "a rejected run must not create its output directory"
    );
}

/// The push flags are checked with the rest, before capture (and before
/// privileges: no root needed); a URL is never printed with its password.
#[test]
fn bad_push_flags_get_one_line_and_exit_2() {
    let dir = output_dir("bad-push-flags");
    let out = dir.to_str().unwrap();
    let otlp = "http://127.0.0.1:4318";
    let cases: &[(&[&str], &str)] = &[
        (&["--otlp", "ftp://x"], "--otlp"),
        (&["--otlp", "http://"], "--otlp"),
        (&["--otlp", "http://user:secret@/"], "--otlp"),
        (&["--pyroscope", "notaurl"], "--pyroscope"),
        (
            &["--otlp", otlp, "--push-header", "NoEquals"],
            "--push-header",
        ),
        (&["--otlp", otlp, "--label", "bad key=v"], "--label"),
    ];
    for (args, expected) in cases {
        let mut with_output = vec!["--output", out, "-d", "1"];
        with_output.extend_from_slice(args);
        let line = assert_one_line_error(&with_output, expected, 2);
        assert!(!line.contains("secret"), "a password printed: {line}");
    }
    assert!(!dir.exists(), "a refused run must not create its output");
}

#[test]
fn top_without_a_terminal_gets_one_line_and_exit_2() {
    // The harness gives bpfprof no terminal: stdin and stdout are not one.
    assert_one_line_error(&["top", "--pid", "1"], "needs a terminal", 2);
}

/// clap's errors keep what completes them on their one line: the
/// arguments missing, the values a flag or argument takes.
#[test]
fn usage_errors_name_what_is_missing_or_allowed() {
    let cases: &[(&[&str], &str)] = &[
        (&["diff"], "not provided: <BASE> <NEW>"),
        (
            &["--format", "bogus"],
            "[possible values: folded, svg, json, pprof, speedscope]",
        ),
        (&["completions", "tcsh"], "[possible values: bash,"),
    ];
    for (args, expected) in cases {
        let _ = assert_one_line_error(args, expected, 2);
    }
}

/// Maps whose size could take more than half of the machine's memory are
/// refused before any is created (they used to stall the machine for tens
/// of seconds before the kernel refused them), naming the flag.
#[test]
#[ignore = "needs root and BPF"]
fn map_sizes_beyond_the_machine_are_refused_at_once() {
    let _bpf = require_bpf();
    let dir = output_dir("huge-maps");
    let out = dir.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--unwind-rows", "4294967295"],
            "--unwind-rows 4294967295: ",
        ),
        (
            &["--stack-map-size", "16777216"],
            "--stack-map-size 16777216: ",
        ),
        (
            &["--max-stacks", "16777216", "--stack-map-size", "16777216"],
            "--stack-map-size 16777216: ",
        ),
    ];
    for (args, expected) in cases {
        let mut with_output = vec!["--output", out, "-d", "1"];
        with_output.extend_from_slice(args);
        let line = assert_one_line_error(&with_output, expected, 2);
        assert!(
            line.contains("GiB") && line.contains("of memory"),
            "{args:?}: the size needed and the memory there is: {line}"
        );
    }
    assert!(!dir.exists(), "a refused run must not create its output");
}

/// `--pid` takes processes; a thread's id would match nothing in the BPF
/// filter, so it is refused with the process to use instead.
#[test]
#[ignore = "needs root and BPF"]
fn a_thread_id_given_as_pid_names_its_process() {
    let _bpf = require_bpf();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = done_rx.recv();
    });
    let tid = tid_rx.recv().unwrap().to_string();
    let pid = std::process::id();
    let dir = output_dir("thread-pid");
    assert_one_line_error(
        &[
            "--output",
            dir.to_str().unwrap(),
            "-d",
            "0.5",
            "--pid",
            &tid,
        ],
        &format!("--pid {tid} is a thread of process {pid}; use --pid {pid}"),
        2,
    );
    drop(done_tx);
    thread.join().unwrap();
    assert!(!dir.exists(), "a refused run must not create its output");
}

/// `--bpf-object` must be a regular file holding a BPF ELF object: anything
/// else is named for what it is, in one line, before the output directory
/// is made; a FIFO does not block bpfprof.
#[test]
#[ignore = "needs root and BPF"]
fn a_bpf_object_that_is_not_one_is_named() {
    let _bpf = require_bpf();
    let dir = output_dir("bad-object");
    std::fs::create_dir_all(dir.with_extension("inputs")).unwrap();
    let fifo = dir.with_extension("inputs").join("fifo");
    let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    let not_bpf = bpfprof_bin();
    let cases = [
        (
            "/dev/null".to_string(),
            "/dev/null: a device, not a BPF object file",
        ),
        (
            "/tmp".to_string(),
            "/tmp: a directory, not a BPF object file",
        ),
        (
            fifo.display().to_string(),
            "fifo: a FIFO, not a BPF object file",
        ),
        (
            "/nonexistent/bpf.o".to_string(),
            "/nonexistent/bpf.o: no such file",
        ),
        (
            not_bpf.display().to_string(),
            "an ELF file for another machine",
        ),
    ];
    for (path, expected) in &cases {
        let args = [
            "--output",
            dir.to_str().unwrap(),
            "-d",
            "0.5",
            "--bpf-object",
            path,
        ];
        let line = assert_one_line_error(&args, expected, 2);
        assert!(
            line.matches("BPF object").count() <= 1,
            "said twice: {line}"
        );
    }
    std::fs::remove_dir_all(dir.with_extension("inputs")).unwrap();
    assert!(!dir.exists(), "a refused run must not create its output");
}

/// A command that exists but cannot be run is named for why, not "not found".
#[test]
#[ignore = "needs root and BPF"]
fn a_command_that_cannot_run_says_why() {
    let _bpf = require_bpf();
    let dir = output_dir("not-executable");
    let script = dir.with_extension("sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let path = script.to_str().unwrap();
    assert_one_line_error(
        &["--output", dir.to_str().unwrap(), "-d", "0.5", "--", path],
        &format!("{path}: permission denied (not executable)"),
        2,
    );
    std::fs::remove_file(&script).unwrap();
    assert!(!dir.exists(), "a refused run must not create its output");
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
    let output = as_nobody(bpfprof_bin())
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
