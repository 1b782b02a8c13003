//! Every frame named, every loss counted: short-lived processes, other
//! mount namespaces, deleted binaries, inlined functions, demangling, and
//! draining without loss. JIT perf maps are in perf_maps.rs.

use std::process::Command;

use integration_tests::{Workload, function_ranges, profile, require_bpf, workload};

#[test]
#[ignore = "needs root and BPF"]
fn short_lived_processes_are_named_after_they_exit() {
    let _bpf = require_bpf();
    let (burst, short) = (workload("wl-burst"), workload("wl-short"));
    // 80 processes one after another, each 40 ms in short_lived_work.
    let run = profile(
        "burst",
        &["--", burst.to_str().unwrap(), short.to_str().unwrap(), "80"],
    );
    run.assert_success();
    let folded = run.folded();
    let total = folded.samples_of("wl-short");
    let named = folded.chain_samples("wl-short", &["main", "short_lived_work"]);
    assert!(
        total >= 200,
        "only {total} samples of the 80 short processes"
    );
    assert!(
        named * 10 >= total * 9,
        "{named} of {total} samples named with their caller"
    );
}

/// A stripped binary has no names, but its frames keep their file and
/// offset after it exits: `[wl-stripped+0x...]` at the offsets of
/// short_lived_work and main (read from the same code built unstripped).
#[test]
#[ignore = "needs root and BPF"]
fn a_short_lived_stripped_binary_keeps_its_file_and_offsets() {
    let _bpf = require_bpf();
    let (burst, stripped) = (workload("wl-burst"), workload("wl-stripped"));
    let run = profile(
        "burst-stripped",
        &[
            "--",
            burst.to_str().unwrap(),
            stripped.to_str().unwrap(),
            "40",
        ],
    );
    run.assert_success();
    let symbols = function_ranges(&workload("wl-short"));
    let at = |frame: &str| {
        let offset = frame.strip_prefix("[wl-stripped+0x")?.strip_suffix(']')?;
        let offset = u64::from_str_radix(offset, 16).ok()?;
        // A return address may be one past its call, at a function's end.
        symbols
            .iter()
            .find(|(_, range)| range.start < offset && offset <= range.end)
            .map(|(name, _)| name.as_str())
    };
    let folded = run.folded();
    let mut kept = 0;
    for (frames, count) in folded.of_process("wl-stripped") {
        let binary: Vec<_> = frames.iter().filter_map(|f| at(f)).collect();
        if binary.ends_with(&["main", "short_lived_work"]) {
            kept += count;
        }
    }
    let total = folded.samples_of("wl-stripped");
    // Each burns 40 ms of wall time: fewer samples on a busy machine.
    assert!(total >= 40, "only {total} samples of the 40 processes");
    assert!(
        kept * 10 >= total * 9,
        "{kept} of {total} samples kept main and short_lived_work as file and offset"
    );
}

/// A process that exited and that its parent has not reaped yet still has
/// a /proc entry, but no maps: the drain after it exits names its last
/// samples from the maps it had, not from none.
#[test]
#[ignore = "needs root and BPF"]
fn a_process_not_yet_reaped_is_named() {
    let _bpf = require_bpf();
    // The shell forks wl-spin and becomes sleep, which never reaps it:
    // it stays a zombie through the drains after it exits.
    let script = format!("{} 1.2 & exec sleep 2.2", workload("wl-spin").display());
    let run = profile(
        "zombie",
        &[
            "-F",
            "499",
            "--interval",
            "0.5",
            "--unwind",
            "fp",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    run.assert_success();
    let folded = run.folded();
    let total = folded.samples_of("wl-spin");
    let named = folded.chain_samples("wl-spin", &["main", "spin_loop", "spin_leaf"]);
    let unnamed: Vec<_> = folded
        .of_process("wl-spin")
        .filter(|(frames, _)| frames.iter().any(|f| f.starts_with("[unknown")))
        .collect();
    assert!(total >= 300, "only {total} samples of wl-spin");
    assert!(unnamed.is_empty(), "unnamed: {unnamed:?}");
    assert!(named * 10 >= total * 9, "{named} of {total} named");
}

/// A process that execs another program: what it ran before the exec and
/// was drained after it is never named by the new image's maps, where its
/// addresses mean nothing (or other code); it says whose code it was. The
/// rest of each image is named by its own maps.
#[test]
#[ignore = "needs root and BPF"]
fn samples_from_before_an_exec_are_not_named_by_the_new_image() {
    let _bpf = require_bpf();
    let (spin, short) = (workload("wl-spin"), workload("wl-short"));
    // One pid: 1 s in spin_leaf, then exec wl-short for 1 s. Drains come
    // every 0.3 s, so the exec falls between two of them and the second
    // brings samples of both images.
    let run = profile(
        "exec",
        &[
            "-F",
            "499",
            "--interval",
            "0.3",
            "--",
            spin.to_str().unwrap(),
            "1",
            short.to_str().unwrap(),
            "1",
        ],
    );
    run.assert_success();
    let folded = run.folded();
    // The process keeps the name it was first seen with.
    let total = folded.samples_of("wl-spin");
    let spin_named = folded.chain_samples("wl-spin", &["main", "spin_loop", "spin_leaf"]);
    let short_named = folded.chain_samples("wl-spin", &["main", "short_lived_work"]);
    let before_exec: u64 = folded
        .of_process("wl-spin")
        .filter(|(frames, _)| frames[1].ends_with(" before exec]"))
        .map(|(_, n)| n)
        .sum();
    let unnamed: Vec<_> = folded
        .of_process("wl-spin")
        .filter(|(frames, _)| frames.iter().any(|f| f.starts_with("[unknown")))
        .collect();
    assert!(unnamed.is_empty(), "unnamed: {unnamed:?}");
    assert!(spin_named >= 100, "{spin_named} samples named in wl-spin");
    assert!(
        short_named >= 100,
        "{short_named} samples named in wl-short"
    );
    // Start-up (the dynamic loader) and exit are the only other samples.
    let accounted = spin_named + short_named + before_exec;
    assert!(
        accounted * 100 >= total * 97,
        "{accounted} of {total} samples in either image's chain or before exec"
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn draining_loses_no_samples() {
    let _bpf = require_bpf();
    // wl-spin for 4 s under a shell that then prints its children's CPU
    // time: bpfprof samples the command from its first instruction to its
    // exit, so the samples must match the CPU time wl-spin was given, which
    // a busy machine lowers for both alike. 40 drains on the way.
    let script = format!("{} 4; times >&2", workload("wl-spin").display());
    let run = profile(
        "drain",
        &["-F", "199", "--interval", "0.1", "--", "sh", "-c", &script],
    );
    run.assert_success();
    let cpu_seconds = children_cpu_seconds(&run.stderr());
    assert!(cpu_seconds >= 1.0, "wl-spin ran {cpu_seconds} s of its 4");
    let expected = cpu_seconds * 199.0;
    let samples = run.folded().samples_of("wl-spin") as f64;
    assert!(
        (samples - expected).abs() <= expected * 0.05,
        "{samples} samples for {cpu_seconds:.2} CPU seconds at 199 Hz: expected {expected:.0} ± 5%"
    );
    assert_eq!(run.report()["errors"]["stacks_lost_in_drain"], 0);
}

/// User plus system seconds of the shell's children, from the second line
/// of the `times` builtin ("0m3.990000s 0m0.004000s").
fn children_cpu_seconds(stderr: &str) -> f64 {
    let seconds = |field: &str| -> Option<f64> {
        let (minutes, rest) = field.split_once('m')?;
        Some(minutes.parse::<f64>().ok()? * 60.0 + rest.strip_suffix('s')?.parse::<f64>().ok()?)
    };
    let times: Vec<f64> = stderr
        .lines()
        .filter_map(|line| {
            let (user, system) = line.trim().split_once(' ')?;
            Some(seconds(user)? + seconds(system)?)
        })
        .collect();
    assert_eq!(times.len(), 2, "no `times` output in:\n{stderr}");
    times[1]
}

#[test]
#[ignore = "needs root and BPF"]
fn binaries_in_another_mount_namespace_are_named() {
    let _bpf = require_bpf();
    let dir = std::env::temp_dir().join(format!("bpfprof-ns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join("wl-spin");
    let script = spin_in_private_tmpfs(&dir, &private, "");
    let mut unshare = Command::new("unshare");
    unshare.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let spin = Workload(unshare.spawn().expect("unshare (util-linux) is needed"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !private.exists(),
        "the binary must not be visible from the host namespace"
    );
    let run = profile("mountns", &["--pid", &spin.pid().to_string(), "-d", "1"]);
    drop(spin);
    let _ = std::fs::remove_dir(&dir);
    run.assert_success();
    let named = run
        .folded()
        .chain_samples("wl-spin", &["spin_loop", "spin_leaf"]);
    assert!(named >= 50, "{:?}", run.folded().stacks);
}

#[test]
#[ignore = "needs root and BPF"]
fn a_binary_deleted_after_start_is_named() {
    let _bpf = require_bpf();
    let copy = std::env::temp_dir().join(format!("wl-deleted-{}", std::process::id()));
    std::fs::copy(workload("wl-spin"), &copy).unwrap();
    let spin = Workload(Command::new(&copy).spawn().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::fs::remove_file(&copy).unwrap();
    let run = profile("deleted", &["--pid", &spin.pid().to_string(), "-d", "1"]);
    run.assert_success();
    // The process is named after the deleted file (comm keeps 15 bytes).
    let named: u64 = run
        .folded()
        .stacks
        .iter()
        .filter(|(f, _)| {
            f[0].starts_with("wl-deleted-")
                && f.ends_with(&["spin_loop".into(), "spin_leaf".into()])
        })
        .map(|(_, n)| n)
        .sum();
    assert!(named >= 50, "{:?}", run.folded().stacks);
}

/// A script (for `sh -c` under `unshare --mount`) that runs wl-spin, with
/// `args`, as `bin`, on a tmpfs at `dir` only its mount namespace sees.
fn spin_in_private_tmpfs(dir: &std::path::Path, bin: &std::path::Path, args: &str) -> String {
    format!(
        "mount -t tmpfs none {d} && cp {src} {bin} && exec {bin} {args}",
        d = dir.display(),
        src = workload("wl-spin").display(),
        bin = bin.display()
    )
}

/// A process whose binary lives in another mount namespace, and which
/// exits before any drain (the only drain comes after the command ends):
/// its binaries must be opened while it runs.
#[test]
#[ignore = "needs root and BPF"]
fn a_short_lived_process_in_another_mount_namespace_is_named() {
    let _bpf = require_bpf();
    let dir = std::env::temp_dir().join(format!("bpfprof-short-ns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join("wl-spin-ns");
    let script = spin_in_private_tmpfs(&dir, &private, "0.6");
    let run = profile(
        "mountns-short",
        &[
            "-F",
            "499",
            "--interval",
            "30",
            "--",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ],
    );
    let _ = std::fs::remove_dir(&dir);
    run.assert_success();
    let folded = run.folded();
    let whole: u64 = folded
        .stacks
        .iter()
        .filter(|(f, _)| {
            f[0] == "wl-spin-ns"
                && f.ends_with(&["main".into(), "spin_loop".into(), "spin_leaf".into()])
        })
        .map(|(_, n)| n)
        .sum();
    assert!(whole >= 100, "{:?}", folded.stacks);
}

#[test]
#[ignore = "needs root and BPF"]
fn inlined_functions_are_frames_of_their_own_unless_asked_not_to() {
    let _bpf = require_bpf();
    let inline = Workload::start("wl-inline", &[]);
    let pid = inline.pid().to_string();
    let run = profile("inline", &["--pid", &pid, "-d", "1"]);
    run.assert_success();
    let inlined = run
        .folded()
        .chain_samples("wl-inline", &["outer_function", "inline_helper_[i]"]);
    assert!(inlined >= 50, "{:?}", run.folded().stacks);
    let flat = profile("no-inline", &["--pid", &pid, "-d", "1", "--no-inline"]);
    flat.assert_success();
    let folded = flat.folded();
    assert!(
        folded.leaf_samples("wl-inline", "outer_function") >= 50,
        "{:?}",
        folded.stacks
    );
    assert!(
        folded
            .stacks
            .iter()
            .all(|(f, _)| !f.iter().any(|f| f.ends_with("_[i]")))
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn cpp_names_are_demangled_unless_raw_names_are_asked_for() {
    let _bpf = require_bpf();
    let cpp = Workload::start("wl-cpp", &[]);
    let pid = cpp.pid().to_string();
    let run = profile("demangled", &["--pid", &pid, "-d", "1"]);
    run.assert_success();
    assert!(
        run.folded()
            .leaf_samples("wl-cpp", "profiling::Worker::spin()")
            >= 50,
        "{:?}",
        run.folded().stacks
    );
    let raw = profile("raw-names", &["--pid", &pid, "-d", "1", "--raw-names"]);
    raw.assert_success();
    assert!(
        raw.folded()
            .leaf_samples("wl-cpp", "_ZN9profiling6Worker4spinEv")
            >= 50,
        "{:?}",
        raw.folded().stacks
    );
}
