//! Process lifecycle: following a command's forks, and announcing
//! processes (first sample, exec) so userspace snapshots their maps while
//! they are alive.

use aya_ebpf::{EbpfContext as _, Global, macros::tracepoint, programs::TracePointContext};
use profiler_common::{PROCESS_EXEC, PROCESS_FIRST_SAMPLE, ProcessEvent, error};

use crate::maps::{KNOWN_TGIDS, PROCESS_EVENTS, SELF_TGID, WANTED_TGIDS, count_error, wanted};

/// Byte offset of `child_pid` in the `sched_process_fork` record.
#[unsafe(no_mangle)]
static FORK_CHILD_PID_OFFSET: Global<u32> = Global::new(44);

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
        && WANTED_TGIDS.insert(child as u32, 1u8, 0).is_err()
    {
        count_error(error::FOLLOW_MAP_FULL);
    }
    0
}

/// Announces each exec of a profiled process: its maps changed. The loader
/// has not mapped the libraries yet, so the process is also forgotten, and
/// its next sample announces it again with its libraries in place.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn on_exec(ctx: TracePointContext) -> u32 {
    let tgid = ctx.tgid();
    if tgid != SELF_TGID.load() && wanted(tgid) {
        let _ = KNOWN_TGIDS.remove(tgid);
        announce(tgid, PROCESS_EXEC);
    }
    0
}

#[inline(always)]
pub fn announce_first_sample(tgid: u32) {
    if KNOWN_TGIDS.get_ptr(tgid).is_none() {
        let _ = KNOWN_TGIDS.insert(tgid, 1u8, 0);
        announce(tgid, PROCESS_FIRST_SAMPLE);
    }
}

#[inline(always)]
pub fn announce(tgid: u32, kind: u32) {
    if PROCESS_EVENTS
        .output(ProcessEvent { tgid, kind }, 0)
        .is_err()
    {
        count_error(error::PROCESS_EVENT_LOST);
    }
}
