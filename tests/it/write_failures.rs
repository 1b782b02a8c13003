//! Runs that lose nothing: an output that cannot be written is named, the
//! others and the tables still come out whole, and the exit status says
//! so; a stdout that cannot be written is one line, not a panic.

use std::{
    fs::File,
    io::Read,
    os::fd::{FromRawFd, OwnedFd},
    path::Path,
    process::{Command, Output, Stdio},
};

use integration_tests::{
    Sampling, Workload, bpfprof_bin, output_dir, require_bpf, schemas, spawn_profiler,
};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn error_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("bpfprof: error: "))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root and BPF"]
fn a_failed_output_is_named_and_the_others_are_written_whole() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let dir = output_dir("one-fails");
    // A non-empty directory where on-cpu.svg goes: that file cannot be
    // put in place, whatever the disk.
    std::fs::create_dir_all(dir.join("on-cpu.svg")).unwrap();
    std::fs::write(dir.join("on-cpu.svg").join("keep"), "x").unwrap();
    let out = Command::new(bpfprof_bin())
        .args(["--pid", &spin.pid().to_string(), "-d", "1", "--force", "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{}", stderr(&out));
    let prefix = format!(
        "bpfprof: error: writing {}: ",
        dir.join("on-cpu.svg").display()
    );
    assert!(errors[0].starts_with(&prefix), "{}", errors[0]);
    assert!(!stderr(&out).contains("panicked"));

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("by self time"), "the tables: {stdout}");
    assert!(
        stdout.contains("Wrote on-cpu.folded, profile.pb.gz, report.json in"),
        "{stdout}"
    );
    let folded = std::fs::read_to_string(dir.join("on-cpu.folded")).unwrap();
    assert!(!folded.is_empty() && folded.ends_with('\n'));
    for line in folded.lines() {
        let count = line.rsplit_once(' ').map(|(_, n)| n.parse::<u64>());
        assert!(matches!(count, Some(Ok(_))), "a whole line: {line}");
    }
    schemas::check_outputs(&dir);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["outputs"],
        serde_json::json!(["on-cpu.folded", "profile.pb.gz", "report.json"])
    );
    let mut pprof = Vec::new();
    flate2::read::GzDecoder::new(File::open(dir.join("profile.pb.gz")).unwrap())
        .read_to_end(&mut pprof)
        .expect("a whole gzip stream");
    assert!(!pprof.is_empty());
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
    assert!(dir.join("on-cpu.svg").join("keep").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root and BPF"]
fn a_removed_output_directory_fails_each_file_by_name_and_keeps_the_tables() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let dir = output_dir("removed");
    let mut child = spawn_profiler(&dir, &["--pid", &spin.pid().to_string(), "-d", "2"]);
    // The directory is made, opened and proved writable before the capture
    // says it is sampling: removing it any earlier fails the start instead.
    let stderr_lines = Sampling::wait(&mut child);
    std::fs::remove_dir(&dir).unwrap_or_else(|e| panic!("removing {}: {e}", dir.display()));
    let mut out = child.wait_with_output().unwrap();
    out.stderr = stderr_lines.stderr().into_bytes();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let errors = error_lines(&out);
    for name in [
        "on-cpu.folded",
        "on-cpu.svg",
        "profile.pb.gz",
        "report.json",
    ] {
        let prefix = format!("bpfprof: error: writing {}: ", dir.join(name).display());
        assert!(
            errors.iter().any(|l| l.starts_with(&prefix)),
            "{name} not named: {}",
            stderr(&out)
        );
    }
    assert_eq!(errors.len(), 4, "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("by self time"), "the tables: {stdout}");
    assert!(!dir.exists());
}

/// A stdout that fails: /dev/full, or a pipe nobody reads.
fn failing_stdout(closed_pipe: bool) -> Stdio {
    if !closed_pipe {
        return File::options()
            .write(true)
            .open("/dev/full")
            .unwrap()
            .into();
    }
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { libc::close(fds[0]) };
    Stdio::from(unsafe { OwnedFd::from_raw_fd(fds[1]) })
}

fn with_failing_stdout(args: &[&str], closed_pipe: bool) -> Output {
    Command::new(bpfprof_bin())
        .args(args)
        .stdout(failing_stdout(closed_pipe))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn assert_one_line(args: &[&str], out: &Output, cause: &str) {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
    assert!(!text.contains("panicked"), "{args:?}: {text}");
    // A run also announces what it samples.
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("bpfprof: sampling "))
        .collect();
    assert_eq!(lines.len(), 1, "{args:?}: {text}");
    assert!(
        lines[0].starts_with("bpfprof: error: writing to stdout: ") && lines[0].contains(cause),
        "{args:?}: {text}"
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn a_failed_stdout_is_one_line_not_a_panic() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let saved = output_dir("stdout-full");
    let s = saved.to_str().unwrap();
    let pid = spin.pid().to_string();
    let run = ["--pid", &pid, "-d", "1", "--json", "-o", s];
    assert_one_line(
        &run,
        &with_failing_stdout(&run, false),
        "No space left on device",
    );
    assert!(
        Path::new(s).join("report.json").is_file(),
        "the files are written all the same"
    );
    schemas::check_outputs(&saved);
    let diff_dir = output_dir("stdout-full-diff");
    let report_dir = output_dir("stdout-full-report");
    let (d, r) = (diff_dir.to_str().unwrap(), report_dir.to_str().unwrap());
    let cases: [&[&str]; 5] = [
        &["diff", s, s, "-o", d],
        &["report", s, "-o", r],
        &["completions", "bash"],
        &["man"],
        &["doctor"],
    ];
    for args in cases {
        assert_one_line(
            args,
            &with_failing_stdout(args, false),
            "No space left on device",
        );
    }
    let args = ["diff", s, s, "-o", d];
    assert_one_line(&args, &with_failing_stdout(&args, true), "Broken pipe");
    for dir in [saved, diff_dir, report_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
