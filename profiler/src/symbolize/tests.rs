use super::*;
use crate::{drain::RawSample, profile::FrameKind};
use profiler_common::{Loss, MAX_STACK_DEPTH, StackKey};

#[inline(never)]
fn a_named_function_of_ours() -> u64 {
    std::hint::black_box(a_named_function_of_ours as *const () as usize as u64)
}

fn sample_with_user_stack(ips: Vec<u64>) -> RawSample {
    let mut key = StackKey {
        tgid: std::process::id(),
        tid: std::process::id(),
        ..StackKey::default()
    };
    key.comm[..4].copy_from_slice(b"test");
    RawSample {
        stacks: RawStacks {
            key,
            user: RawStack::Frames(ips),
            user_image: Some(0),
            kernel: RawStack::Failed(EFAULT),
        },
        count: 3,
    }
}

fn batch(on_cpu: Vec<RawSample>) -> Batch {
    Batch {
        on_cpu,
        ..Batch::default()
    }
}

#[test]
fn return_addresses_are_looked_up_one_byte_earlier() {
    let addrs: Vec<u64> = lookup_addrs(&[100, 200, 300], true).collect();
    assert_eq!(addrs, vec![100, 199, 299]);
}

#[test]
#[ignore = "needs root: reads /proc/self/map_files"]
fn names_a_function_of_this_process() {
    let addr = a_named_function_of_ours();
    let mut symbolizer = Symbolizer::default();
    let mut profile = Profile::default();
    symbolizer.add_batch(
        batch(vec![sample_with_user_stack(vec![addr + 1])]),
        &mut profile,
    );
    let (site, count) = profile.on_cpu.iter().next().unwrap();
    assert_eq!(*count, 3);
    let frame = profile.frames.get(site.frames[0]);
    assert!(frame.name.contains("a_named_function_of_ours"), "{frame:?}");
    assert_eq!(frame.kind, FrameKind::User);
    assert!(
        frame.module.as_deref()
            == std::env::current_exe()
                .unwrap()
                .file_name()
                .and_then(|n| n.to_str()),
        "{frame:?}"
    );
}

#[test]
fn losses_become_pseudo_frames_and_are_counted() {
    let mut sample = sample_with_user_stack(vec![]);
    sample.stacks.user = RawStack::Failed(EFAULT);
    sample.stacks.kernel = RawStack::Failed(EEXIST);
    let mut profile = Profile::default();
    Symbolizer::default().add_batch(batch(vec![sample]), &mut profile);
    let site = profile.on_cpu.keys().next().unwrap();
    let names: Vec<&str> = site
        .frames
        .iter()
        .map(|&f| profile.frames.get(f).name.as_str())
        .collect();
    assert_eq!(names, ["[missing user stack]", "[stack collision]"]);
    assert_eq!(profile.losses[Loss::UserStackMissing], 3);
}

#[test]
#[ignore = "needs root: reads /proc/self/map_files"]
fn off_cpu_stacks_and_wakers_are_named_too() {
    let addr = a_named_function_of_ours();
    let blocked = sample_with_user_stack(vec![addr + 1]).stacks;
    let mut waker = blocked.clone();
    waker.key.tid += 1;
    waker.key.comm = *b"waker\0\0\0\0\0\0\0\0\0\0\0";
    let off = crate::drain::RawOffCpu {
        stacks: blocked,
        state: 0,
        us: 500,
    };
    let wake = crate::drain::RawWake {
        blocked: off.clone(),
        waker,
    };
    let mut profile = Profile::default();
    let batch = Batch {
        off_cpu: vec![off],
        wakes: vec![wake],
        ..Batch::default()
    };
    Symbolizer::default().add_batch(batch, &mut profile);
    let (site, us) = profile.off_cpu.iter().next().unwrap();
    assert_eq!((*us, site.state), (500, OffState::Sleeping));
    assert!(
        profile
            .frames
            .get(site.site.frames[0])
            .name
            .contains("a_named_function_of_ours")
    );
    let (wake, us) = profile.wakes.iter().next().unwrap();
    assert_eq!((*us, wake.waker_name.as_str()), (500, "waker"));
    assert_eq!(profile.threads.len(), 2);
}

#[test]
#[ignore = "needs root: reads /proc/self/map_files"]
fn stacks_at_the_depth_limit_are_marked_truncated_and_counted() {
    let addr = a_named_function_of_ours();
    let deep = sample_with_user_stack(vec![addr + 1; MAX_STACK_DEPTH]);
    let shallow = sample_with_user_stack(vec![addr + 1; 3]);
    let mut profile = Profile::default();
    Symbolizer::default().add_batch(batch(vec![deep, shallow]), &mut profile);
    let truncated: Vec<_> = profile
        .on_cpu
        .keys()
        .filter(|site| profile.frames.get(site.frames[0]).name == "[truncated]")
        .collect();
    assert_eq!(truncated.len(), 1, "only the 127-frame stack is cut");
    assert_eq!(profile.losses[Loss::TruncatedStacks], 3);
    assert_eq!(profile.losses.samples, 6);
    assert_eq!(profile.losses[Loss::UnknownFrames], 0);
}

#[test]
fn comms_stop_at_the_first_nul() {
    assert_eq!(comm_to_string(b"bash\0\0\0\0"), "bash");
    assert_eq!(comm_to_string(b"sixteen-chars-xx"), "sixteen-chars-xx");
}

/// A `sleep 30`, once its own image with libc is mapped, and libc's
/// executable mapping.
fn sleep_with_libc() -> (std::process::Child, procfs::Mapping) {
    let child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let tgid = child.id();
    let text = (0..200)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            procfs::mappings(tgid)
                .into_iter()
                .find(|m| m.executable && m.path.contains("libc.so"))
        })
        .expect("sleep maps libc");
    (child, text)
}

/// A process that exits between the drain's look at /proc and the naming
/// of its addresses (its map_files gone) is named from its snapshot, not
/// left all unknown. Run as root: map_files needs CAP_SYS_ADMIN.
#[test]
#[ignore = "needs root"]
fn a_process_exiting_while_named_is_named_from_its_snapshot() {
    let (mut child, text) = sleep_with_libc();
    let tgid = child.id();
    let mut symbolizer = Symbolizer::default();
    symbolizer.remember(tgid);
    child.kill().unwrap();
    child.wait().unwrap();
    let mut profile = Profile::default();
    // Seen alive, gone by the time its addresses are named.
    let addr = text.start + 0x1000;
    let names = symbolizer.name_user_addrs(tgid, &[addr], true, &mut profile.frames);
    let frame = profile.frames.get(names[&addr][0].0);
    assert_ne!(frame.kind, FrameKind::Unknown, "{frame:?}");
    assert_eq!(frame.module.as_deref(), Some("libc.so.6"), "{frame:?}");
}

/// A process that exited and is not reaped yet (a zombie: /proc/PID is
/// there, its maps are not) keeps the snapshot it had when a drain looks
/// at it again; the module named carries its build id. Run as root.
#[test]
#[ignore = "needs root"]
fn a_process_not_yet_reaped_keeps_its_snapshot() {
    let (mut child, text) = sleep_with_libc();
    let tgid = child.id();
    let mut symbolizer = Symbolizer::default();
    symbolizer.remember(tgid);
    child.kill().unwrap();
    // Not waited for yet: a zombie once its maps are gone.
    assert!(
        (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            procfs::mappings(tgid).is_empty()
        }),
        "the killed child's maps went"
    );
    assert!(procfs::exists(tgid));
    // What the next drain does: refresh, then name.
    symbolizer.remember(tgid);
    let mut profile = Profile::default();
    let addr = text.start + 0x1000;
    let names = symbolizer.name_user_addrs(tgid, &[addr], true, &mut profile.frames);
    child.wait().unwrap();
    let frame = profile.frames.get(names[&addr][0].0);
    assert_ne!(frame.kind, FrameKind::Unknown, "{frame:?}");
    assert_eq!(frame.module.as_deref(), Some("libc.so.6"), "{frame:?}");
    let build_id = profile.frames.build_id("libc.so.6").unwrap_or_default();
    assert_eq!(build_id.len(), 40, "libc's build id: {build_id:?}");
}

#[test]
fn python_frames_are_read_from_user_stacks_only() {
    let code = 0x7f00_1234_5670;
    let meta = profiler_common::python::python_frame_meta(0xabcd, 24);
    let user = [
        code | profiler_common::python::PYTHON_FRAME_TAG,
        meta,
        0x40_1000,
        0x40_2000,
    ];
    assert_eq!(
        words(&user, true),
        vec![
            Word::Python { code, meta },
            Word::Native {
                ip: 0x40_1000,
                lookup: 0x40_1000
            },
            Word::Native {
                ip: 0x40_2000,
                lookup: 0x40_1fff
            },
        ]
    );
    // Kernel addresses have the tag's bit set: they stay addresses.
    let kernel = [0xffff_ffff_8100_0010, 0xffff_ffff_8100_2000];
    let addrs: Vec<u64> = lookup_addrs(&kernel, false).collect();
    assert_eq!(addrs, vec![0xffff_ffff_8100_0010, 0xffff_ffff_8100_1fff]);
}
