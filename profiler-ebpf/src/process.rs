//! Process lifecycle: following a command's forks, and announcing each
//! exec so userspace snapshots the new image's maps.

use aya_ebpf::{
    EbpfContext as _, Global,
    helpers::{bpf_get_current_task, bpf_probe_read_kernel},
    macros::tracepoint,
    programs::TracePointContext,
};
use profiler_common::{Loss, PROCESS_EXEC};

use crate::{
    errors, events,
    target::{WANTED_TGIDS, is_self, wanted},
};

/// Byte offset of `child_pid` in the `sched_process_fork` record.
#[unsafe(no_mangle)]
static FORK_CHILD_PID_OFFSET: Global<u32> = Global::new(44);

/// Byte offset of `self_exec_id` in `task_struct`, from the kernel's BTF;
/// 0 when it was not found, and then every image is 0.
#[unsafe(no_mangle)]
static TASK_EXEC_ID_OFFSET: Global<u32> = Global::new(0);

/// The current task's image (see `ProcessEvent::image`): the low bits of
/// its exec count.
#[inline(always)]
pub fn current_image() -> u16 {
    let offset = TASK_EXEC_ID_OFFSET.load();
    if offset == 0 {
        return 0;
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let field = task.wrapping_add(offset as usize);
    unsafe { bpf_probe_read_kernel(field.cast::<u64>()) }.map_or(0, |id| id as u16)
}

/// Adds children of followed processes to the filter as they are forked,
/// so `bpfprof -- COMMAND` sees the whole process tree.
#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn follow_fork(ctx: TracePointContext) -> u32 {
    // At this tracepoint `current` is the parent.
    if !wanted(ctx.tgid()) {
        return 0;
    }
    let offset = FORK_CHILD_PID_OFFSET.load() as usize;
    if let Ok(child) = unsafe { ctx.read_at::<i32>(offset) }
        && let Err(err) = WANTED_TGIDS.insert(child as u32, 1u8, 0)
    {
        errors::refused!(Loss::FollowMapFull, "WANTED_TGIDS", err);
    }
    0
}

/// Announces each exec of a profiled process: its maps changed. The loader
/// has not mapped the libraries yet, so the process is also forgotten, and
/// its next sample announces it again with its libraries in place.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn on_exec(ctx: TracePointContext) -> u32 {
    let tgid = ctx.tgid();
    if !is_self(tgid) && wanted(tgid) {
        events::forget(tgid);
        events::announce(tgid, PROCESS_EXEC);
    }
    0
}
