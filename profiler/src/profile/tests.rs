use super::*;

#[test]
fn interning_returns_one_id_per_distinct_frame() {
    let mut table = FrameTable::default();
    let a = table.intern(Frame::pseudo("a"));
    let b = table.intern(Frame::pseudo("b"));
    assert_ne!(a, b);
    assert_eq!(table.intern(Frame::pseudo("a")), a);
    assert_eq!(table.get(b).name, "b");
}

#[test]
fn samples_add_up_per_site_and_per_process() {
    let mut profile = Profile::default();
    profile.name_process(7, || "app".into());
    let site = StackSite {
        tgid: 7,
        tid: 8,
        frames: vec![0],
        ..StackSite::default()
    };
    profile.add(site.clone(), 2);
    profile.add(site.clone(), 3);
    assert_eq!(profile.on_cpu[&site], 5);
    assert_eq!(profile.processes[&7].samples, 5);
    assert_eq!(profile.total_samples(), 5);
    assert_eq!(profile.process_name(9), "[unknown process]");
}

#[test]
fn merging_windows_collapses_processes_by_name() {
    let window = |pid: u32, samples: u64| {
        let mut p = Profile::default();
        p.name_process(pid, || "worker".into());
        p.name_thread(pid, pid + 1, || "worker".into());
        let f = p.frames.intern(Frame::pseudo("busy"));
        p.frames.note_source_file(f, "/src/busy.c");
        p.add(
            StackSite {
                tgid: pid,
                tid: pid + 1,
                frames: vec![f],
                pcs: vec![u64::from(pid)],
                lines: vec![12],
            },
            samples,
        );
        p.losses.samples = samples;
        p
    };
    let mut run = Profile::default();
    run.merge_collapsed(window(100, 5));
    run.merge_collapsed(window(200, 7));
    assert_eq!(run.processes.len(), 1, "{:?}", run.processes);
    assert_eq!(run.processes[&100].samples, 12);
    assert_eq!(
        run.on_cpu.len(),
        1,
        "one stack, whatever its addresses were"
    );
    // Source lines and files are the code's, whichever process ran it.
    let site = run.on_cpu.keys().next().unwrap();
    assert_eq!(site.lines, [12]);
    assert_eq!(run.frames.source_file(site.frames[0]), Some("/src/busy.c"));
    assert_eq!(run.losses.samples, 12);
}

#[test]
fn off_cpu_time_adds_up_per_state_process_and_thread() {
    let mut profile = Profile::default();
    profile.name_process(7, || "app".into());
    profile.name_thread(7, 8, || "worker".into());
    let site = StackSite {
        tgid: 7,
        tid: 8,
        frames: vec![0],
        ..StackSite::default()
    };
    profile.add_off_cpu(site.clone(), OffState::Sleeping, 100);
    profile.add_off_cpu(site.clone(), OffState::Preempted, 50);
    profile.add_off_cpu(site.clone(), OffState::Sleeping, 10);
    assert_eq!(profile.processes[&7].off_us, [110, 0, 50, 0]);
    assert_eq!(profile.threads[&8].off_us, [110, 0, 50, 0]);
    assert_eq!(profile.off_cpu.values().sum::<u64>(), 160);
    assert_eq!(OffState::Uninterruptible.frame(), "[uninterruptible]");
    assert_eq!(
        OffState::from_bpf(profiler_common::state::PREEMPTED),
        OffState::Preempted
    );
}
