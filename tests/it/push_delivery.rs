//! Push end to end, how it is delivered: through an outage of the backend
//! with no window lost or sent twice, a rejection (HTTP 401) named once
//! while the run goes on, a backend that never answers, TLS with and
//! without the CA given, extra headers and credentials (which no output
//! shows). What arrives is push.rs's.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus},
    thread,
    time::{Duration, Instant},
};

use integration_tests::{
    Sampling, Workload, output_dir,
    push::{
        Span, accepted, assert_windows_tile, otlp_profiles, otlp_window, push_counts, push_entry,
        push_run, unix_ns, windows_with_samples,
    },
    receiver::{Backend, Receiver, unused_port},
    require_bpf, schemas, spawn_profiler,
};
use serde_json::Value;

#[test]
#[ignore = "needs root and BPF"]
fn an_outage_loses_no_window_and_sends_none_twice() {
    let _bpf = require_bpf();
    let mut receiver = Receiver::start(Backend::Otlp, &output_dir("outage-receiver"), &[]);
    let url = receiver.url();
    let spin = Workload::start("wl-spin", &[]);
    let dir = output_dir("outage");
    let args = format!("--pid {} -d 30 --window 5 --otlp {url}", spin.pid());
    let start_ns = unix_ns();
    let mut child = spawn_profiler(&dir, &args.split_whitespace().collect::<Vec<_>>());
    let sampling = Sampling::wait(&mut child);
    let sampling_since = Instant::now();
    // Down from 8 s to 18 s of sampling: the windows closing at about 10
    // and 15 s wait for it.
    sleep_until(sampling_since + Duration::from_secs(8));
    let stopped_ns = unix_ns();
    receiver.stop();
    sleep_until(sampling_since + Duration::from_secs(18));
    receiver.restart();
    let restarted_ns = unix_ns();
    let status = wait_within(child, Duration::from_secs(90));
    let stderr = sampling.stderr();
    let span = Span {
        start_ns,
        end_ns: unix_ns(),
    };
    assert!(status.success(), "bpfprof failed ({status}): {stderr}");
    schemas::check_outputs(&dir);

    let requests = accepted(receiver.requests());
    let windows: Vec<(u64, u64)> = requests.iter().map(cpu_window).collect();
    let report = read_report(&dir);
    let sampled_secs = report["run"]["duration_secs"].as_f64().unwrap();
    // Each window once, one after the other, over the whole run.
    assert_windows_tile(&windows, span, sampled_secs);
    let sent = windows.len() as u64;
    assert_eq!(sent, windows_with_samples(&dir), "windows arrived");
    let entry = push_entry(&report, Backend::Otlp);
    assert_eq!(push_counts(entry), (sent, 0, 0), "{entry}");
    let held = windows
        .iter()
        .filter(|(start, length)| (stopped_ns..restarted_ns).contains(&(start + length)))
        .count();
    assert!(held >= 1, "no window closed during the outage: {windows:?}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("windows are kept and retried"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning for the outage:\n{stderr}");
    let named = format!("bpfprof: warning: --otlp {url}");
    assert!(warnings[0].starts_with(&named), "{stderr}");
}

/// The window of an OTLP request's one CPU profile.
fn cpu_window(request: &Value) -> (u64, u64) {
    let profiles = otlp_profiles(request, "cpu/nanoseconds");
    assert_eq!(profiles.len(), 1, "one CPU profile a request");
    otlp_window(profiles[0])
}

fn sleep_until(deadline: Instant) {
    thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

/// Waits for a bpfprof whose stderr `Sampling` reads, reading its stdout;
/// kills it and fails after `limit`.
fn wait_within(mut child: Child, limit: Duration) -> ExitStatus {
    let mut stdout = child.stdout.take().expect("a piped stdout");
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
    });
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            let _ = reader.join();
            return status;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("bpfprof still running after {limit:?}");
}

fn read_report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
#[ignore = "needs root and BPF"]
fn a_rejection_is_named_once_and_the_run_goes_on() {
    let _bpf = require_bpf();
    let body = "invalid token\nsecond line";
    let receiver_dir = output_dir("rejected-receiver");
    let receiver = Receiver::start(
        Backend::Otlp,
        &receiver_dir,
        &["--status", "401", "--body", body],
    );
    let url = receiver.url();
    let spin = Workload::start("wl-spin", &[]);
    let args = format!("--pid {} -d 4 --window 2 --otlp {url}", spin.pid());
    let (run, _) = push_run("rejected", &args, &[]);
    run.assert_success();
    let stderr = run.stderr();
    // The port may have 401 in it: look past the URL.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.replace(&url, "").contains("401"))
        .collect();
    assert_eq!(lines.len(), 1, "one line for HTTP 401:\n{stderr}");
    assert!(
        lines[0].starts_with(&format!("bpfprof: warning: --otlp {url}"))
            && lines[0].contains("HTTP 401: invalid token"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("second line"),
        "the body's first line only: {stderr}"
    );
    let report = run.report();
    let entry = push_entry(&report, Backend::Otlp);
    let windows = windows_with_samples(&run.dir);
    assert!(windows >= 2, "{windows} windows in 4 s");
    assert_eq!(
        push_counts(entry),
        (0, 0, windows),
        "each window rejected: {entry}"
    );
    let last_error = entry["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("401"), "{entry}");
    let requests = receiver.requests().len() as u64;
    assert_eq!(requests, windows, "a rejected window is not sent again");
}

#[test]
#[ignore = "needs root and BPF"]
fn a_backend_down_from_the_start_is_a_warning_and_its_windows_dropped() {
    let _bpf = require_bpf();
    let url = format!("http://127.0.0.1:{}", unused_port());
    let spin = Workload::start("wl-spin", &[]);
    let args = format!("--pid {} -d 4 --window 2 --otlp {url}", spin.pid());
    let (run, _) = push_run("unreachable", &args, &[]);
    run.assert_success();
    let stderr = run.stderr();
    let named = format!("bpfprof: warning: --otlp {url}");
    assert!(stderr.lines().any(|l| l.starts_with(&named)), "{stderr}");
    let report = run.report();
    let entry = push_entry(&report, Backend::Otlp);
    let windows = windows_with_samples(&run.dir);
    assert!(windows >= 2, "{windows} windows in 4 s");
    assert_eq!(push_counts(entry), (0, windows, 0), "all dropped: {entry}");
    assert!(entry["last_error"].is_string(), "{entry}");
}

#[test]
#[ignore = "needs root and BPF"]
fn https_delivers_with_the_ca_given_and_not_without() {
    let _bpf = require_bpf();
    let dir = output_dir("tls-receiver");
    let (cert, key) = self_signed_certificate(&dir);
    let tls = ["--tls", cert.to_str().unwrap(), key.to_str().unwrap()];
    let receiver = Receiver::start(Backend::Otlp, &dir, &tls);
    let url = format!("https://127.0.0.1:{}", receiver.port);
    let spin = Workload::start("wl-spin", &[]);
    let args = format!("--pid {} -d 2 --window 1 --otlp {url}", spin.pid());

    // Not trusted: nothing sent, and the warning says why.
    let (run, _) = push_run("tls-untrusted", &args, &[]);
    run.assert_success();
    let stderr = run.stderr();
    let named = format!("bpfprof: warning: --otlp {url}");
    let warning = stderr.lines().find(|l| l.starts_with(&named));
    let warning = warning.unwrap_or_else(|| panic!("no warning: {stderr}"));
    assert!(warning.to_lowercase().contains("certificate"), "{warning}");
    assert_eq!(receiver.requests().len(), 0, "sent to an untrusted server");
    let (sent, dropped, rejected) = push_counts(push_entry(&run.report(), Backend::Otlp));
    assert_eq!(
        (sent, dropped + rejected),
        (0, windows_with_samples(&run.dir))
    );

    // Trusted through --push-ca-file: every window arrives.
    let args = format!("{args} --push-ca-file {}", cert.display());
    let (run, _) = push_run("tls-trusted", &args, &[]);
    run.assert_success();
    let requests = accepted(receiver.requests()).len() as u64;
    assert_eq!(requests, windows_with_samples(&run.dir), "{}", run.stderr());
    let report = run.report();
    let entry = push_entry(&report, Backend::Otlp);
    assert_eq!(push_counts(entry), (requests, 0, 0), "{entry}");
}

/// A self-signed certificate for 127.0.0.1 and its key, in `dir`: a
/// server's (CA:FALSE, as rustls wants of the certificate it talks to).
fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed: `cargo xtask test` installs it");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openssl req: {stderr}");
    (cert, key)
}

#[test]
#[ignore = "needs root and BPF"]
fn headers_and_credentials_reach_both_backends_and_no_output() {
    let _bpf = require_bpf();
    let dir = output_dir("auth-receivers");
    // The OTLP one refuses, so that bpfprof names its URL on stderr.
    let otlp = Receiver::start(
        Backend::Otlp,
        &dir,
        &["--status", "401", "--body", "denied"],
    );
    let pyroscope = Receiver::start(Backend::Pyroscope, &dir, &[]);
    let spin = Workload::start("wl-spin", &[]);
    let args = format!(
        "--pid {} -d 2 --window 1 --otlp http://user:secret@127.0.0.1:{} --pyroscope {} \
         --push-header X-Scope-OrgID=tenant1",
        spin.pid(),
        otlp.port,
        pyroscope.url()
    );
    let env = [("BPFPROF_PYROSCOPE_BASIC_AUTH", "bob:hunter2")];
    let (run, _) = push_run("auth", &args, &env);
    run.assert_success();
    // Basic base64("user:secret"), and base64("bob:hunter2").
    let expected = [
        (accepted_or_401(otlp.requests()), "Basic dXNlcjpzZWNyZXQ="),
        (accepted(pyroscope.requests()), "Basic Ym9iOmh1bnRlcjI="),
    ];
    for (requests, authorization) in expected {
        for request in requests {
            let headers = &request["headers"];
            assert_eq!(headers["x-scope-orgid"], "tenant1", "{headers}");
            assert_eq!(headers["authorization"], authorization, "{headers}");
        }
    }
    let stderr = run.stderr();
    let port = format!("127.0.0.1:{}", otlp.port);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains(&port) && l.contains("HTTP 401: denied")),
        "{stderr}"
    );
    let report = std::fs::read_to_string(run.dir.join("report.json")).unwrap();
    for (what, text) in [("stderr", &stderr), ("report.json", &report)] {
        for secret in ["secret", "hunter2"] {
            assert!(!text.contains(secret), "{secret} in {what}: {text}");
        }
    }
}

/// Requests the fixed --status 401 receiver logged; at least one.
fn accepted_or_401(requests: Vec<Value>) -> Vec<Value> {
    assert!(!requests.is_empty(), "no request reached the receiver");
    assert!(requests.iter().all(|r| r["status"] == 401));
    requests
}
