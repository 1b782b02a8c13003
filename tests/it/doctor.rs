//! `bpfprof doctor` as root and as `nobody` (through setpriv, without
//! capabilities): its lines on what the user can reach (kernel symbols,
//! tracefs, privileges) must be true for the user who ran it, as that
//! user's own reads of /proc/kallsyms and tracefs show.

use std::process::{Command, Stdio};

use integration_tests::{Workload, as_nobody, bpfprof_bin, require_bpf};

/// A tracepoint format bpfprof reads on every run.
const FORMAT: &str = "/sys/kernel/tracing/events/sched/sched_process_fork/format";

/// `program` run as root, or as nobody with no capabilities at all.
fn command_as(nobody: bool, program: &str) -> Command {
    if !nobody {
        return Command::new(program);
    }
    as_nobody(program)
}

/// What the user can reach, found without bpfprof.
struct Truth {
    kernel_addresses: bool,
    tracefs_mounted: bool,
    tracefs_readable: bool,
}

fn truth(nobody: bool) -> Truth {
    let stext = command_as(nobody, "grep")
        .args(["-m1", " _stext$", "/proc/kallsyms"])
        .output()
        .expect("running grep");
    let stext = String::from_utf8_lossy(&stext.stdout).into_owned();
    let address = stext.split(' ').next().unwrap_or("");
    let mounted = Command::new("findmnt")
        .args(["--types", "tracefs", "--mountpoint", "/sys/kernel/tracing"])
        .stdout(Stdio::null())
        .status()
        .expect("running findmnt (util-linux)");
    let readable = command_as(nobody, "cat")
        .arg(FORMAT)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running cat");
    Truth {
        kernel_addresses: u64::from_str_radix(address, 16).is_ok_and(|a| a != 0),
        tracefs_mounted: mounted.success(),
        tracefs_readable: readable.success(),
    }
}

fn sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .unwrap()
        .trim()
        .to_string()
}

/// The one line of `report` that mentions any of `about`.
fn line<'a>(report: &'a str, about: &[&str]) -> &'a str {
    let lines: Vec<&str> = report
        .lines()
        .filter(|l| about.iter().any(|a| l.contains(a)))
        .collect();
    assert_eq!(lines.len(), 1, "one line on {about:?}:\n{report}");
    lines[0]
}

fn check_doctor_as(nobody: bool) {
    let who = if nobody { "nobody" } else { "root" };
    let truth = truth(nobody);
    let output = command_as(nobody, bpfprof_bin().to_str().unwrap())
        .arg("doctor")
        .output()
        .expect("running bpfprof doctor");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let context = format!("as {who}:\n{report}");

    let symbols = line(&report, &["kallsyms", "kernel addresses"]);
    if truth.kernel_addresses {
        assert!(symbols.starts_with("ok "), "{context}");
    } else {
        assert!(
            !symbols.starts_with("ok ") && symbols.contains("hidden"),
            "{context}"
        );
    }
    // Advice never asks for the value a sysctl already has.
    for name in ["kptr_restrict", "perf_event_paranoid"] {
        let value = sysctl(name);
        let advice = symbols.split_once("): ").map_or("", |(_, advice)| advice);
        let sets_it = advice.contains(&format!("kernel.{name}={value}"));
        // ("set it to 0 or 1", after naming kernel.kptr_restrict = 0)
        let sets_it_in_words = symbols.contains(name) && advice.contains(&format!("to {value}"));
        assert!(
            !sets_it && !sets_it_in_words,
            "advises kernel.{name} = {value}, its value: {context}"
        );
    }

    let tracefs = line(&report, &["tracefs"]);
    assert_eq!(
        tracefs.contains("not mounted"),
        !truth.tracefs_mounted,
        "{context}"
    );
    assert_eq!(
        tracefs.starts_with("ok "),
        truth.tracefs_mounted && truth.tracefs_readable,
        "{context}"
    );
    if truth.tracefs_mounted && !truth.tracefs_readable {
        assert!(tracefs.contains("cannot read"), "{context}");
    }

    let privileges = line(&report, &["privileges", "needs root"]);
    assert_eq!(privileges.starts_with("ok "), !nobody, "{context}");

    let fixes = report.lines().filter(|l| l.starts_with("FIX ")).count();
    assert_eq!(output.status.success(), fixes == 0, "{context}");
}

#[test]
#[ignore = "needs root"]
fn doctor_is_right_as_root() {
    let _root = require_bpf();
    check_doctor_as(false);
}

#[test]
#[ignore = "needs root"]
fn doctor_is_right_as_nobody() {
    let _root = require_bpf();
    let truth = truth(true);
    // On a machine where nobody can read everything, this test could not
    // tell a right doctor from one that never looks: say so.
    assert!(
        !truth.kernel_addresses || !truth.tracefs_readable,
        "nobody reads kernel addresses and tracefs here: set kernel.perf_event_paranoid to 2 for this test"
    );
    check_doctor_as(true);
}

/// As root, on a running workload: the machine is ready, and each of the
/// process's binaries is judged for frame pointers.
#[test]
#[ignore = "needs root and BPF"]
fn doctor_checks_this_machine_and_a_process() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let doctor = Command::new(bpfprof_bin())
        .args(["doctor", "--pid", &spin.pid().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&doctor.stdout);
    assert!(doctor.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok    kernel BTF") && stdout.contains("Ready to profile."),
        "{stdout}"
    );
    let workload_line = stdout
        .lines()
        .find(|l| l.contains("/wl-spin:"))
        .expect("a line for the workload binary");
    assert!(
        workload_line.starts_with("ok") && workload_line.contains("frame pointers in"),
        "{workload_line}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("warn") && l.contains("libc.so.6")),
        "Debian's libc has no frame pointers: {stdout}"
    );
}
