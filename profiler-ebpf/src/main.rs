//! bpfprof's BPF programs: stack sampling on the CPU clock, and the fork
//! follower that keeps `-- COMMAND` runs filtered to the command's tree.
//!
//! The programs only record ids and counts; everything that formats or
//! names lives in userspace. Failures are counted in `ERRORS`, never logged.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    EbpfContext as _, Global,
    bindings::{BPF_F_USER_STACK, BPF_NOEXIST},
    macros::{map, perf_event, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf, StackTrace},
    programs::{PerfEventContext, TracePointContext, tracing::StackIdContext},
};
use profiler_common::{
    BUFFER_A, PROCESS_EXEC, PROCESS_FIRST_SAMPLE, ProcessEvent, StackKey, error,
};

const EEXIST: i32 = 17;
const ENOMEM: i32 = 12;
const EFAULT: i32 = 14;

/// bpfprof's own process, never sampled.
#[unsafe(no_mangle)]
static SELF_TGID: Global<u32> = Global::new(0);
/// 1 when only the processes in `WANTED_TGIDS` are sampled.
#[unsafe(no_mangle)]
static FILTER_TGIDS: Global<u32> = Global::new(0);
/// Byte offset of `child_pid` in the `sched_process_fork` record.
#[unsafe(no_mangle)]
static FORK_CHILD_PID_OFFSET: Global<u32> = Global::new(44);

/// Which map set (`BUFFER_A` or `BUFFER_B`) samples go to; flipped by userspace.
#[map]
static ACTIVE: Array<u32> = Array::with_max_entries(1, 0);
#[map]
static STACKS_A: StackTrace = StackTrace::with_max_entries(16384, 0);
#[map]
static STACKS_B: StackTrace = StackTrace::with_max_entries(16384, 0);
#[map]
static COUNTS_A: HashMap<StackKey, u64> = HashMap::with_max_entries(65536, 0);
#[map]
static COUNTS_B: HashMap<StackKey, u64> = HashMap::with_max_entries(65536, 0);
/// Processes to sample when `FILTER_TGIDS` is set; value unused.
#[map]
static WANTED_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(8192, 0);
#[map]
static ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(error::COUNT, 0);
/// Processes already announced on `PROCESS_EVENTS`; value unused.
#[map]
static KNOWN_TGIDS: LruHashMap<u32, u8> = LruHashMap::with_max_entries(16384, 0);
#[map]
static PROCESS_EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

#[perf_event]
pub fn on_cpu_sample(ctx: PerfEventContext) -> u32 {
    let tid = ctx.pid();
    let tgid = ctx.tgid();
    if tid == 0 || tgid == SELF_TGID.load() || !wanted(tgid) {
        return 0;
    }
    if KNOWN_TGIDS.get_ptr(tgid).is_none() {
        let _ = KNOWN_TGIDS.insert(tgid, 1u8, 0);
        announce(tgid, PROCESS_FIRST_SAMPLE);
    }
    let comm = ctx.command().unwrap_or_default();
    match ACTIVE.get(0).copied().unwrap_or(BUFFER_A) {
        BUFFER_A => record(&ctx, &STACKS_A, &COUNTS_A, tgid, tid, comm),
        _ => record(&ctx, &STACKS_B, &COUNTS_B, tgid, tid, comm),
    }
    0
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
    if let Ok(child) = unsafe { ctx.read_at::<i32>(offset) } {
        if WANTED_TGIDS.insert(child as u32, 1u8, 0).is_err() {
            count_error(error::FOLLOW_MAP_FULL);
        }
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
fn announce(tgid: u32, kind: u32) {
    if PROCESS_EVENTS
        .output(ProcessEvent { tgid, kind }, 0)
        .is_err()
    {
        count_error(error::PROCESS_EVENT_LOST);
    }
}

#[inline(always)]
fn wanted(tgid: u32) -> bool {
    FILTER_TGIDS.load() == 0 || WANTED_TGIDS.get_ptr(tgid).is_some()
}

#[inline(always)]
fn record(
    ctx: &PerfEventContext,
    stacks: &StackTrace,
    counts: &HashMap<StackKey, u64>,
    tgid: u32,
    tid: u32,
    comm: [u8; 16],
) {
    let kern = ctx.get_stackid(stacks, 0);
    let user = ctx.get_stackid(stacks, u64::from(BPF_F_USER_STACK));
    let key = StackKey {
        tgid,
        tid,
        kern_stack_id: stack_id_or_error(kern, error::KERN_STACK_COLLISION),
        user_stack_id: stack_id_or_error(user, error::USER_STACK_COLLISION),
        comm,
    };
    increment(counts, &key);
}

/// Returns the stack id, or the negated errno after counting the failure.
#[inline(always)]
fn stack_id_or_error(result: Result<i64, i32>, collision_counter: u32) -> i32 {
    match result {
        Ok(id) => id as i32,
        Err(err) => {
            let user = collision_counter == error::USER_STACK_COLLISION;
            let counter = match -err {
                EEXIST => Some(collision_counter),
                ENOMEM => Some(error::STACK_MAP_FULL),
                // No user stack: normal for kernel threads, which userspace
                // tells apart from user threads.
                EFAULT if user => Some(error::USER_STACK_MISSING),
                // No kernel stack: the sample landed in user mode.
                EFAULT => None,
                _ => Some(error::STACK_OTHER),
            };
            if let Some(counter) = counter {
                count_error(counter);
            }
            err
        }
    }
}

#[inline(always)]
fn increment(counts: &HashMap<StackKey, u64>, key: &StackKey) {
    if let Some(count) = counts.get_ptr_mut(key) {
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, 1) };
        return;
    }
    match counts.insert(key, 1u64, u64::from(BPF_NOEXIST)) {
        Ok(()) => {}
        // Another CPU inserted the same key between our lookup and insert.
        Err(err) if -err == EEXIST => {
            if let Some(count) = counts.get_ptr_mut(key) {
                unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, 1) };
            }
        }
        Err(_) => count_error(error::COUNTS_MAP_FULL),
    }
}

#[inline(always)]
fn count_error(index: u32) {
    if let Some(slot) = ERRORS.get_ptr_mut(index) {
        // Per-CPU slot: no other writer, no atomic needed.
        unsafe { *slot += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
