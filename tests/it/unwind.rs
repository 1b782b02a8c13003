//! Whole user stacks without frame pointers, end to end on the real
//! kernel: binaries' unwind tables (.eh_frame) walked in BPF. Each test also
//! runs `--unwind fp` on the same workload, to show what frame pointers alone
//! lose there (and so that the test could fail).

use integration_tests::{Folded, Workload, profile, require_bpf};

/// Of `process`'s samples with `leaf` innermost (inlined and kernel frames
/// aside): how many, and how many of those have `chain` (outermost first,
/// each frame matched by its last `::` segment) in order, ending at the
/// leaf.
fn with_chain(folded: &Folded, process: &str, chain: &[&str]) -> (u64, u64) {
    let short = |frame: &str| frame.rsplit("::").next().unwrap_or(frame).to_string();
    let leaf = chain[chain.len() - 1];
    let mut total = 0;
    let mut whole = 0;
    for (frames, n) in folded.of_process(process) {
        // Inlined (_[i]) and kernel (_[k]) frames are not frames of the walk.
        let names: Vec<String> = frames
            .iter()
            .filter(|f| !f.ends_with("_[i]") && !f.ends_with("_[k]"))
            .map(|f| short(f))
            .collect();
        if names.last().map(String::as_str) != Some(leaf) {
            continue;
        }
        total += n;
        if names.ends_with(&chain.iter().map(|s| s.to_string()).collect::<Vec<_>>()) {
            whole += n;
        }
    }
    (whole, total)
}

/// Starts `workload` and profiles it for 2 s at 299 Hz under `--unwind`
/// `how`; returns the folded stacks.
fn profile_workload(workload: &str, how: &str) -> Folded {
    let running = Workload::start(workload, &[]);
    let run = profile(
        &format!("{workload}-{how}"),
        &[
            "--pid",
            &running.pid().to_string(),
            "--unwind",
            how,
            "-d",
            "2",
            "-F",
            "299",
        ],
    );
    run.assert_success();
    run.folded()
}

/// Runs `workload` under `--unwind` `how` and returns the share of leaf
/// samples with the whole chain.
fn chain_share(workload: &str, how: &str, chain: &[&str]) -> f64 {
    let folded = profile_workload(workload, how);
    let (whole, total) = with_chain(&folded, workload, chain);
    assert!(
        total >= 200,
        "{workload} --unwind {how}: only {total} samples end in {}: {:?}",
        chain[chain.len() - 1],
        folded.stacks
    );
    whole as f64 / total as f64
}

fn assert_tables_make_it_whole(workload: &str, chain: &[&str]) {
    for how in ["auto", "dwarf"] {
        let share = chain_share(workload, how, chain);
        assert!(
            share >= 0.9,
            "{workload} --unwind {how}: whole chain {chain:?} in {:.0}% of samples",
            share * 100.0
        );
    }
    let share = chain_share(workload, "fp", chain);
    assert!(
        share < 0.5,
        "{workload} --unwind fp: whole chain in {:.0}%; the workload no longer tests unwinding",
        share * 100.0
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn code_without_frame_pointers_gives_the_whole_chain() {
    let _bpf = require_bpf();
    assert_tables_make_it_whole("wl-omitfp", &["main", "level1", "level2", "level3", "leaf"]);
}

#[test]
#[ignore = "needs root and BPF"]
fn a_frameless_leaf_keeps_its_caller() {
    let _bpf = require_bpf();
    assert_tables_make_it_whole("wl-leaf", &["main", "caller", "hot_leaf"]);
}

/// Profiles `workload` under `--unwind auto` and asserts that of its
/// samples with a frame matching `inside`, >= 90% have a frame matching
/// each of `path` in that order (outermost first).
fn assert_reaches(workload: &str, inside: &str, path: &[&dyn Fn(&str) -> bool]) {
    let folded = profile_workload(workload, "auto");
    let (mut total, mut whole) = (0, 0);
    for (frames, n) in folded.of_process(workload) {
        if !frames.iter().any(|f| f == inside) {
            continue;
        }
        total += n;
        let at: Vec<_> = path
            .iter()
            .map(|m| frames.iter().position(|f| m(f)))
            .collect();
        if at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1]) {
            whole += n;
        }
    }
    assert!(
        total >= 50,
        "only {total} samples in {inside}: {:?}",
        folded.stacks
    );
    assert!(
        whole * 10 >= total * 9,
        "only {whole} of {total} samples in {inside} have the whole path: {:?}",
        folded.stacks
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn stacks_through_libc_reach_main() {
    let _bpf = require_bpf();
    // qsort's internals between sort_once and compare vary by libc
    // version; what matters is that the walk gets through them.
    assert_reaches(
        "wl-qsort",
        "compare",
        &[
            &|f| f == "main",
            &|f| f == "sort_once",
            &|f| f.starts_with("qsort") || f.contains("msort"),
            &|f| f == "compare",
        ],
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn stacks_cross_signal_frames() {
    let _bpf = require_bpf();
    // Inside a signal handler: handler frames, libc's signal trampoline,
    // then the interrupted work and main, read from the saved context.
    assert_reaches(
        "wl-signal",
        "in_handler",
        &[
            &|f| f == "main",
            &|f| f == "work",
            &|f| f == "handler",
            &|f| f == "in_handler",
        ],
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn a_library_loaded_while_running_is_unwound_too() {
    let _bpf = require_bpf();
    // The library appears 300 ms into the run; the first walk into it
    // triggers a reload of the process's mappings at the next drain, and
    // walks before then fall back to frame pointers.
    let library = integration_tests::workload("libwl-plugin.so");
    let running = Workload(
        std::process::Command::new(integration_tests::workload("wl-dlopen"))
            .args([library.to_str().unwrap(), "30"])
            .spawn()
            .unwrap(),
    );
    let run = profile(
        "dlopen",
        &[
            "--pid",
            &running.pid().to_string(),
            "-d",
            "3",
            "-F",
            "299",
            "--interval",
            "0.2",
        ],
    );
    run.assert_success();
    let (whole, total) = with_chain(
        &run.folded(),
        "wl-dlopen",
        &["main", "call_plugin", "plugin_outer", "plugin_spin"],
    );
    assert!(total >= 300, "only {total} samples in plugin_spin");
    assert!(
        whole * 100 >= total * 80,
        "only {whole} of {total} samples in the library have the whole chain"
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn stacks_through_the_vdso_reach_main() {
    let _bpf = require_bpf();
    // clock_gettime runs in the vDSO, which has no file: its table comes
    // from the process's memory.
    assert_reaches(
        "wl-vdso",
        "read_clock",
        &[&|f| f == "main", &|f| f == "read_clock", &|f| {
            f.contains("clock_gettime")
        }],
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn a_rust_release_build_gives_whole_stacks() {
    let _bpf = require_bpf();
    assert_tables_make_it_whole("wl-rust-nofp", &["main", "outer", "middle", "leaf"]);
}

#[test]
#[ignore = "needs root and BPF"]
fn dwarf_mode_marks_the_walks_it_cannot_finish() {
    let _bpf = require_bpf();
    // JIT code has no unwind table: --unwind dwarf stops there, and says so.
    let jit = std::process::Command::new(integration_tests::workload("wl-jit"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _jit = Workload(jit);
    let run = profile(
        "dwarf-jit",
        &[
            "--pid",
            &_jit.pid().to_string(),
            "--unwind",
            "dwarf",
            "-d",
            "1",
        ],
    );
    run.assert_success();
    let folded = run.folded();
    let truncated: u64 = folded
        .of_process("wl-jit")
        .filter(|(frames, _)| frames.get(1).is_some_and(|f| f == "[truncated]"))
        .map(|(_, n)| n)
        .sum();
    let samples = folded.samples_of("wl-jit");
    assert!(
        samples >= 50 && truncated * 10 >= samples * 9,
        "{:?}",
        folded.stacks
    );
    let errors = &run.report()["errors"];
    assert!(
        errors["incomplete_unwinds"].as_u64().unwrap_or(0) >= samples * 9 / 10,
        "{errors}"
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn with_vv_bpf_logs_the_unwind_steps_that_fail() {
    let _bpf = require_bpf();
    // JIT code has no unwind table: in dwarf mode each walk fails there,
    // and BPF logs the step, with -vv only.
    let jit = std::process::Command::new(integration_tests::workload("wl-jit"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let jit = Workload(jit);
    let pid = jit.pid().to_string();
    let args = ["--pid", &pid, "--unwind", "dwarf", "-d", "1"];
    let quiet = profile("bpf-log-off", &[&args[..], &["-v"]].concat());
    quiet.assert_success();
    assert!(
        !quiet.stderr().contains("bpfprof: bpf:"),
        "{}",
        quiet.stderr()
    );
    let run = profile("bpf-log-on", &[&args[..], &["-vv"]].concat());
    run.assert_success();
    let stderr = run.stderr();
    let prefix = format!("bpfprof: bpf: unwind step failed in pid {pid}: pc 0x");
    let logged = stderr.lines().filter(|l| l.starts_with(&prefix)).count();
    assert!(logged >= 10, "{logged} steps logged:\n{stderr}");
}
