//! How a run ends, losing nothing: SIGHUP (a dropped ssh session) like
//! SIGINT and SIGTERM, a signal at any moment of start-up, SIGHUP left
//! ignored under nohup, and the command's exit status in report.json.

use std::{
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use integration_tests::{
    Folded, Sampling, Workload, bpfprof_bin, output_dir, profile, require_bpf, schemas,
    spawn_profiler,
};

/// Waits for bpfprof to exit, up to `limit`; kills it and fails past that.
fn wait_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{what}: bpfprof still running after {limit:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn assert_outputs(dir: &Path, output: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what}: exit {}: {stderr}",
        output.status
    );
    for file in [
        "on-cpu.folded",
        "on-cpu.svg",
        "report.json",
        "profile.pb.gz",
    ] {
        assert!(dir.join(file).is_file(), "{what}: no {file}: {stderr}");
    }
    schemas::check_outputs(dir);
}

/// Starts bpfprof as `spawn_profiler` does, with SIGHUP's disposition set
/// to `disposition` (`SIG_DFL` or `SIG_IGN`) whatever this test inherited.
fn spawn_with_sighup(dir: &Path, args: &[&str], disposition: libc::sighandler_t) -> Child {
    let mut command = Command::new(bpfprof_bin());
    command
        .arg("--output")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only signal(), which is async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            libc::signal(libc::SIGHUP, disposition);
            Ok(())
        });
    }
    command.spawn().expect("starting bpfprof")
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

#[test]
#[ignore = "needs root and BPF"]
fn sighup_stops_the_capture_and_keeps_the_outputs() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let dir = output_dir("sighup");
    // SIGHUP as a terminal leaves it, whatever this test was started with
    // (under nohup, bpfprof rightly keeps it ignored: the test below).
    let mut profiler = spawn_with_sighup(&dir, &["--pid", &spin.pid().to_string()], libc::SIG_DFL);
    let sampling = Sampling::wait(&mut profiler);
    thread::sleep(Duration::from_secs(1));
    signal(&profiler, libc::SIGHUP);
    let mut output = wait_within(profiler, Duration::from_secs(20), "SIGHUP");
    output.stderr = sampling.stderr().into_bytes();
    assert_outputs(&dir, &output, "SIGHUP");
    let samples = Folded::read(&dir.join("on-cpu.folded")).leaf_samples("wl-spin", "spin_leaf");
    assert!(samples >= 50, "only {samples} samples kept after SIGHUP");
}

/// Ctrl-C while bpfprof is still loading its BPF programs ends the run as
/// soon as it starts, with status 0 and every output: it is neither lost
/// nor fatal. The delays count from the output directory's creation, the
/// last step before loading, which takes longer than any of them.
#[test]
#[ignore = "needs root and BPF"]
fn a_signal_during_start_up_ends_the_run_cleanly() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let pid = spin.pid().to_string();
    for delay_ms in [0, 5, 10, 20, 30] {
        let what = format!("SIGINT {delay_ms} ms into loading");
        let dir = output_dir(&format!("early-sigint-{delay_ms}"));
        let profiler = spawn_profiler(&dir, &["--pid", &pid, "-d", "60"]);
        let started = Instant::now();
        while !dir.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{what}: no {}",
                dir.display()
            );
            thread::sleep(Duration::from_micros(200));
        }
        thread::sleep(Duration::from_millis(delay_ms));
        signal(&profiler, libc::SIGINT);
        let output = wait_within(profiler, Duration::from_secs(15), &what);
        assert_outputs(&dir, &output, &what);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("SIGINT: stopping"), "{what}: {stderr}");
    }
}

/// `nohup bpfprof ...` means to outlive the terminal: SIGHUP stays ignored.
#[test]
#[ignore = "needs root and BPF"]
fn sighup_stays_ignored_under_nohup() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let dir = output_dir("nohup");
    let mut profiler = spawn_with_sighup(
        &dir,
        &["--pid", &spin.pid().to_string(), "-d", "2"],
        libc::SIG_IGN,
    );
    let sampling = Sampling::wait(&mut profiler);
    signal(&profiler, libc::SIGHUP);
    let started = Instant::now();
    let mut output = wait_within(profiler, Duration::from_secs(20), "nohup");
    output.stderr = sampling.stderr().into_bytes();
    assert_outputs(&dir, &output, "nohup");
    assert!(
        started.elapsed() > Duration::from_millis(1500),
        "the run ended {:?} after SIGHUP, not at its duration",
        started.elapsed()
    );
}

/// The command's exit status goes to report.json; bpfprof's own status
/// stays about bpfprof.
#[test]
#[ignore = "needs root and BPF"]
fn the_commands_exit_status_is_recorded() {
    let _bpf = require_bpf();
    let run = profile("exit-status", &["--", "sh", "-c", "exit 3"]);
    run.assert_success();
    assert_eq!(
        run.report()["run"]["command_exit_status"],
        3,
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("the command exited with status 3"));
    let spin = Workload::start("wl-spin", &[]);
    let run = profile(
        "no-command",
        &["--pid", &spin.pid().to_string(), "-d", "0.3"],
    );
    run.assert_success();
    let status = &run.report()["run"]["command_exit_status"];
    assert!(status.is_null(), "no command, no status: {status}");
}
