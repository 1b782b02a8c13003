//! Every frame named, every loss counted: short-lived processes, JIT perf
//! maps (and planted ones refused), other mount namespaces, deleted
//! binaries, inlined functions, demangling, and draining without loss.

use std::{
    io::{BufRead, BufReader},
    os::unix::fs::chown,
    process::{Command, Stdio},
};

use integration_tests::{Workload, profile, require_bpf, workload};

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

#[test]
#[ignore = "needs root and BPF"]
fn draining_loses_no_samples() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let pid = spin.pid().to_string();
    // 40 drains in 4 s: one busy thread at 199 Hz gives 796 samples.
    let run = profile(
        "drain",
        &["--pid", &pid, "-F", "199", "-d", "4", "--interval", "0.1"],
    );
    run.assert_success();
    let samples = run.folded().samples_of("wl-spin");
    assert!(
        (756..=836).contains(&samples),
        "{samples} samples, expected 796 ± 5%"
    );
    assert_eq!(run.report()["errors"]["stacks_lost_in_drain"], 0);
}

/// Starts wl-jit and returns it with the address and size of its code.
fn start_jit(args: &[&str]) -> (Workload, u64, u64) {
    let mut child = Command::new(workload("wl-jit"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut fields = line
        .split_whitespace()
        .map(|f| u64::from_str_radix(f, 16).unwrap());
    let (addr, size) = (fields.next().unwrap(), fields.next().unwrap());
    (Workload(child), addr, size)
}

#[test]
#[ignore = "needs root and BPF"]
fn jit_code_is_named_from_its_perf_map() {
    let _bpf = require_bpf();
    let (jit, _, _) = start_jit(&["map"]);
    let run = profile("jit", &["--pid", &jit.pid().to_string(), "-d", "1"]);
    let _ = std::fs::remove_file(format!("/tmp/perf-{}.map", jit.pid()));
    run.assert_success();
    let named = run.folded().leaf_samples("wl-jit", "jit_spin_loop");
    assert!(
        named >= 50,
        "jit_spin_loop has {named} samples: {:?}",
        run.folded().stacks
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn the_perf_map_of_a_process_that_exited_is_still_used() {
    let _bpf = require_bpf();
    // wl-jit exits (killed by timeout) before the final drain names it.
    let jit = workload("wl-jit");
    let run = profile(
        "jit-exited",
        &["--", "timeout", "1", jit.to_str().unwrap(), "map"],
    );
    run.assert_success();
    let named = run.folded().leaf_samples("wl-jit", "jit_spin_loop");
    assert!(
        named >= 50,
        "jit_spin_loop has {named} samples: {:?}",
        run.folded().stacks
    );
    for pid in run.report()["processes"].as_array().unwrap() {
        let _ = std::fs::remove_file(format!("/tmp/perf-{}.map", pid["pid"]));
    }
}

#[test]
#[ignore = "needs root and BPF"]
fn a_perf_map_planted_by_another_user_is_ignored() {
    let _bpf = require_bpf();
    let (jit, addr, size) = start_jit(&[]);
    let map = format!("/tmp/perf-{}.map", jit.pid());
    std::fs::write(&map, format!("{addr:x} {size:x} planted_name\n")).unwrap();
    chown(&map, Some(65534), Some(65534)).unwrap();
    let run = profile("planted", &["--pid", &jit.pid().to_string(), "-d", "1"]);
    let _ = std::fs::remove_file(&map);
    run.assert_success();
    let folded = run.folded();
    assert!(folded.samples_of("wl-jit") >= 50);
    assert!(
        folded
            .stacks
            .iter()
            .all(|(f, _)| !f.iter().any(|f| f == "planted_name")),
        "{:?}",
        folded.stacks
    );
    let errors = &run.report()["errors"];
    assert_eq!(errors["perf_maps_ignored"], 1);
    assert!(
        errors["unknown_frames_by_module"]["[no file]"]
            .as_u64()
            .unwrap()
            >= 50,
        "{errors}"
    );
    let stdout = run.stdout();
    assert!(
        stdout.contains("Quality") && stdout.contains("warning:") && stdout.contains("perf map"),
        "{stdout}"
    );
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

#[test]
#[ignore = "needs root and BPF"]
fn node_jit_frames_are_named_with_perf_basic_prof() {
    let _bpf = require_bpf();
    let script = "function hotLoopForProfiler(n) { let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) | 0; return x; }\n\
                  const end = Date.now() + 30000; let s = 0; while (Date.now() < end) s += hotLoopForProfiler(1e6);\n";
    // node leaves a V8 log in its working directory: keep it out of the tree.
    let node = Command::new("node")
        .current_dir(std::env::temp_dir())
        .args(["--perf-basic-prof", "-e", script])
        .spawn()
        .expect("node is needed: apt-get install nodejs");
    let node = Workload(node);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let run = profile("node", &["--pid", &node.pid().to_string(), "-d", "2"]);
    let _ = std::fs::remove_file(format!("/tmp/perf-{}.map", node.pid()));
    let v8_log = format!("-{}-v8.log", node.pid());
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry.file_name().to_string_lossy().ends_with(&v8_log) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    run.assert_success();
    let folded = run.folded();
    let named: u64 = folded
        .stacks
        .iter()
        .filter(|(frames, _)| frames.iter().any(|f| f.contains("hotLoopForProfiler")))
        .map(|(_, n)| n)
        .sum();
    let total: u64 = folded.stacks.iter().map(|(_, n)| n).sum();
    assert!(
        named * 2 >= total,
        "hotLoopForProfiler in {named} of {total} samples: {:?}",
        folded.stacks
    );
}
