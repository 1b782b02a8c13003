//! On-CPU profiling end to end, on the real kernel, against workloads of
//! known shape (tests/workloads).

use std::{thread, time::Duration};

use integration_tests::{
    Folded, Sampling, Workload, output_dir, profile, require_bpf, schemas, spawn_profiler,
};

#[test]
#[ignore = "needs root and BPF"]
fn measures_a_75_25_split_with_its_whole_call_chain() {
    let _bpf = require_bpf();
    let ratio = Workload::start("wl-ratio", &[]);
    let _distractor = Workload::start("wl-spin", &[]);
    let pid = ratio.pid().to_string();
    let run = profile(
        "ratio",
        &["--pid", &pid, "--duration", "3", "--freq", "997"],
    );
    run.assert_success();
    let folded = run.folded();

    let processes = folded.processes();
    assert_eq!(
        processes.keys().collect::<Vec<_>>(),
        ["wl-ratio"],
        "--pid must filter: {processes:?}"
    );
    let a = folded.leaf_samples("wl-ratio", "hot_a");
    let b = folded.leaf_samples("wl-ratio", "hot_b");
    // At 1000 samples the share's standard error is under 1.4 points, so
    // a right split is inside the ±5 below with near certainty; fewer
    // samples (a machine too busy to run the workload) cannot tell.
    assert!(
        a + b >= 1000,
        "too few samples to judge: hot_a {a}, hot_b {b}"
    );
    let share = a as f64 / (a + b) as f64;
    assert!(
        (0.70..=0.80).contains(&share),
        "hot_a has {:.1}% of the split, expected 75 ± 5",
        share * 100.0
    );

    let chain_a = folded.chain_samples("wl-ratio", &["main", "run_workload", "hot_a"]);
    let chain_b = folded.chain_samples("wl-ratio", &["main", "run_workload", "hot_b"]);
    assert!(
        chain_a * 10 >= a * 9,
        "whole chain in only {chain_a} of {a} hot_a samples"
    );
    assert!(
        chain_b * 10 >= b * 9,
        "whole chain in only {chain_b} of {b} hot_b samples"
    );

    let report = run.report();
    let hot_a = report["hot_functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "hot_a")
        .expect("hot_a in report.json");
    assert_eq!(hot_a["module"], "wl-ratio");
    let self_percent = hot_a["self_percent"].as_f64().unwrap();
    assert!(
        (65.0..=80.0).contains(&self_percent),
        "hot_a self {self_percent}%"
    );
    assert_eq!(report["run"]["freq_hz"], 997);
    assert!(
        run.stdout().contains("hot_a"),
        "hot_a missing from the tables:\n{}",
        run.stdout()
    );
    assert!(run.dir.join("on-cpu.svg").is_file());
}

#[test]
#[ignore = "needs root and BPF"]
fn shows_kernel_frames_under_user_frames() {
    let _bpf = require_bpf();
    let workload = Workload::start("wl-syscall", &[]);
    let pid = workload.pid().to_string();
    let run = profile(
        "syscall",
        &["--pid", &pid, "--duration", "2", "--freq", "297"],
    );
    run.assert_success();
    let folded = run.folded();

    let total = folded.samples_of("wl-syscall");
    assert!(total >= 200, "only {total} samples");
    let mut in_kernel = 0;
    for (frames, count) in folded.of_process("wl-syscall") {
        let first_kernel = frames.iter().position(|f| f.ends_with("_[k]"));
        if let Some(first) = first_kernel {
            assert!(
                frames[first..].iter().all(|f| f.ends_with("_[k]")),
                "a user frame above a kernel frame: {frames:?}"
            );
            if frames
                .windows(3)
                .any(|w| w == ["main", "do_reads", "read_zero"])
                && frames
                    .iter()
                    .any(|f| f.contains("read") && f.ends_with("_[k]"))
            {
                in_kernel += count;
            }
        }
    }
    assert!(
        in_kernel * 10 >= total * 3,
        "only {in_kernel} of {total} samples show read(2) in the kernel under main;do_reads;read_zero"
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn sees_every_busy_process_system_wide() {
    let _bpf = require_bpf();
    let _ratio = Workload::start("wl-ratio", &[]);
    let _spin = Workload::start("wl-spin", &[]);
    let run = profile("system", &["--duration", "2", "--freq", "199"]);
    run.assert_success();
    let folded = run.folded();
    let spin = folded.leaf_samples("wl-spin", "spin_leaf");
    let ratio = folded.leaf_samples("wl-ratio", "hot_a") + folded.leaf_samples("wl-ratio", "hot_b");
    assert!(
        spin >= 100 && ratio >= 100,
        "wl-spin {spin}, wl-ratio {ratio} samples"
    );
    let report = run.report();
    let names: Vec<&str> = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"wl-spin") && names.contains(&"wl-ratio"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"bpfprof"),
        "bpfprof must not profile itself"
    );
    assert_eq!(report["run"]["target"], "all processes");
}

#[test]
#[ignore = "needs root and BPF"]
fn profiles_a_command_and_its_children_until_it_exits() {
    let _bpf = require_bpf();
    let _distractor = Workload::start("wl-spin", &[]);
    let forker = integration_tests::workload("wl-forker");
    let started = std::time::Instant::now();
    let run = profile(
        "command",
        &["--freq", "199", "--", forker.to_str().unwrap(), "1.5"],
    );
    run.assert_success();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bpfprof outlived its command"
    );
    let folded = run.folded();
    assert_eq!(
        folded.samples_of("wl-spin"),
        0,
        "only the command's tree is profiled"
    );
    // Parent and child each burn the same time: shares of the command's
    // samples, which hold however busy the machine is.
    let total = folded.samples_of("wl-forker");
    let parent = folded.chain_samples("wl-forker", &["main", "parent_work", "burn"]);
    let child = folded.chain_samples("wl-forker", &["main", "child_work", "burn"]);
    assert!(total >= 100, "only {total} samples of the command");
    assert!(parent * 10 >= total * 4, "parent_work: {parent} of {total}");
    assert!(
        child * 10 >= total * 4,
        "child_work (forked child): {child} of {total}"
    );
    assert!(
        run.report()["run"]["target"]
            .as_str()
            .unwrap()
            .starts_with("command")
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn sigint_stops_the_capture_and_keeps_the_outputs() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let dir = output_dir("sigint");
    let mut profiler = spawn_profiler(&dir, &["--pid", &spin.pid().to_string(), "--freq", "199"]);
    let sampling = Sampling::wait(&mut profiler);
    thread::sleep(Duration::from_secs(2));
    unsafe { libc::kill(profiler.id() as i32, libc::SIGINT) };
    let mut output = profiler.wait_with_output().unwrap();
    output.stderr = sampling.stderr().into_bytes();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {} after SIGINT: {stderr}",
        output.status
    );
    let folded = Folded::read(&dir.join("on-cpu.folded"));
    let samples = folded.leaf_samples("wl-spin", "spin_leaf");
    assert!(samples >= 150, "only {samples} samples kept after SIGINT");
    assert!(dir.join("on-cpu.svg").is_file() && dir.join("report.json").is_file());
    schemas::check_outputs(&dir);
}

/// 16,384 distinct stacks, 16 frames deep: BPF's hash-keyed user stacks
/// lose none to collisions, and every stack is whole, from _start to the
/// leaf.
#[test]
#[ignore = "needs root and BPF"]
fn keeps_every_one_of_16k_distinct_stacks_whole() {
    let _bpf = require_bpf();
    let stacks = Workload::start("wl-stacks", &[]);
    let pid = stacks.pid().to_string();
    let run = profile("stacks", &["--pid", &pid, "-d", "3", "-F", "999"]);
    run.assert_success();
    let folded = run.folded();
    let lines: Vec<_> = folded.of_process("wl-stacks").collect();
    let samples: u64 = lines.iter().map(|(_, n)| n).sum();
    assert!(samples >= 2000, "too few samples: {samples}");
    assert!(lines.len() >= 1000, "only {} distinct stacks", lines.len());
    let sum = |keep: &dyn Fn(&[String]) -> bool| -> u64 {
        lines
            .iter()
            .filter(|(frames, _)| keep(frames))
            .map(|(_, n)| n)
            .sum()
    };
    // Whole: from _start, the frame whose unwind rule ends the stack,
    // through libc's start-up code to main.
    let root = [
        "_start",
        "__libc_start_main_impl",
        "__libc_start_call_main",
        "main",
    ];
    let whole = sum(&|frames| frames.get(1..5).is_some_and(|f| f == root));
    assert!(
        whole * 100 >= samples * 99,
        "only {whole} of {samples} samples reach main from _start"
    );
    // Most samples are in the spin at the bottom, 15 calls of walk deep.
    let deepest = sum(&|frames| frames.iter().filter(|f| *f == "walk").count() == 15);
    assert!(
        deepest * 100 >= samples * 80,
        "only {deepest} of {samples} samples at the bottom"
    );
    let errors = &run.report()["errors"];
    assert_eq!(errors["stack_collisions"], 0, "{errors}");
    assert_eq!(errors["stacks_lost_in_drain"], 0, "{errors}");
}
