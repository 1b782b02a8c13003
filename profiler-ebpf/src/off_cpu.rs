//! Off-CPU time from the scheduler. At `sched_switch` the outgoing task
//! (prev) is still `current`: its stacks and state are recorded in
//! `PENDING`. When a pending task is switched back in (next), the time in
//! between is added to its key. `sched_waking` runs in the waker's context
//! and remembers who woke each pending thread.

use aya_ebpf::{
    EbpfContext as _, Global,
    helpers::bpf_ktime_get_ns,
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap},
    programs::TracePointContext,
};
use profiler_common::{Loss, OffCpuKey, PendingBlock, WakeKey, Waker, state};

use crate::{
    errors,
    reuse::blocking_stacks,
    stacks,
    store::{add, by_set, generation, with_set},
    target::recorded,
    user_stack::current_user_regs,
};

/// Threads switched out and not yet back, by tid. A plain hash, not LRU:
/// a blocked thread must run again before it can exit, so entries cannot
/// leak, and a full map is counted instead of silently evicting.
#[map]
static PENDING: HashMap<u32, PendingBlock> = HashMap::with_max_entries(32768, 0);
/// The last waker of each blocked thread, by tid.
#[map]
static WAKERS: LruHashMap<u32, Waker> = LruHashMap::with_max_entries(32768, 0);

/// Byte offsets in the `sched_switch` and `sched_waking` records, parsed
/// from their format files at start-up.
#[unsafe(no_mangle)]
static SWITCH_PREV_STATE_OFFSET: Global<u32> = Global::new(32);
#[unsafe(no_mangle)]
static SWITCH_NEXT_PID_OFFSET: Global<u32> = Global::new(56);
#[unsafe(no_mangle)]
static WAKING_PID_OFFSET: Global<u32> = Global::new(24);
/// Intervals outside [MIN, MAX] microseconds are dropped.
#[unsafe(no_mangle)]
static MIN_BLOCK_US: Global<u64> = Global::new(1);
#[unsafe(no_mangle)]
static MAX_BLOCK_US: Global<u64> = Global::new(u64::MAX);
/// 1 when wakers are recorded (`--wakers`).
#[unsafe(no_mangle)]
static RECORD_WAKERS: Global<u32> = Global::new(0);

// prev_state bits as the tracepoint reports them (TASK_REPORT).
const S: i64 = 0x01;
const D: i64 = 0x02;
const DEAD: i64 = 0x10 | 0x20; // X, Z: never runs again
const IDLE: i64 = 0x80; // I: idle kernel threads
const REPORT_BITS: i64 = 0xff; // 0x100 marks a preempted runnable task (R+)

#[tracepoint(category = "sched", name = "sched_switch")]
pub fn on_switch(ctx: TracePointContext) -> u32 {
    let now = unsafe { bpf_ktime_get_ns() };
    let generation = generation();
    switch_out(&ctx, now, generation);
    if let Ok(next) = unsafe { ctx.read_at::<i32>(SWITCH_NEXT_PID_OFFSET.load() as usize) } {
        switch_in(next as u32, now, generation);
    }
    0
}

#[inline(always)]
fn switch_out(ctx: &TracePointContext, now: u64, generation: u32) {
    let tid = ctx.pid();
    let tgid = ctx.tgid();
    if !recorded(tid, tgid) {
        return;
    }
    let Ok(prev_state) = (unsafe { ctx.read_at::<i64>(SWITCH_PREV_STATE_OFFSET.load() as usize) })
    else {
        return;
    };
    let Some(state) = classify(prev_state) else {
        return;
    };
    let ids = blocking_stacks(ctx, tid, state, generation);
    let pending = PendingBlock {
        since_ns: now,
        key: OffCpuKey {
            stack: ids.key(tgid, tid, ctx.command().unwrap_or_default()),
            stack_gen: generation,
            state,
        },
    };
    if let Err(err) = PENDING.insert(tid, pending, 0) {
        errors::refused!(Loss::PendingMapFull, "PENDING", err);
    }
}

#[inline(always)]
fn switch_in(tid: u32, now: u64, generation: u32) {
    if tid == 0 {
        return;
    }
    let Some(pending) = (unsafe { PENDING.get(tid) }).copied() else {
        return;
    };
    let _ = PENDING.remove(tid);
    let us = now.saturating_sub(pending.since_ns) / 1000;
    let in_range = us >= MIN_BLOCK_US.load() && us <= MAX_BLOCK_US.load();
    let set = by_set(generation);
    if in_range {
        with_set!(set, |maps| add(
            maps.off_us,
            &pending.key,
            us,
            Loss::CountsMapFull
        ));
    }
    if RECORD_WAKERS.load() == 0 {
        return;
    }
    if let Some(waker) = (unsafe { WAKERS.get(tid) }).copied() {
        let _ = WAKERS.remove(tid);
        if in_range {
            let key = WakeKey {
                blocked: pending.key,
                waker,
            };
            with_set!(set, |maps| add(maps.wake_us, &key, us, Loss::CountsMapFull));
        }
    }
}

/// Remembers who is waking a pending (blocked) thread.
#[tracepoint(category = "sched", name = "sched_waking")]
pub fn on_waking(ctx: TracePointContext) -> u32 {
    let Ok(wakee) = (unsafe { ctx.read_at::<i32>(WAKING_PID_OFFSET.load() as usize) }) else {
        return 0;
    };
    let wakee = wakee as u32;
    // Only wakes of threads we track cost a stack walk.
    if PENDING.get_ptr(wakee).is_none() {
        return 0;
    }
    let generation = generation();
    let ids = stacks::current(&ctx, current_user_regs(), generation);
    let waker = Waker {
        stack: ids.key(ctx.tgid(), ctx.pid(), ctx.command().unwrap_or_default()),
        stack_gen: generation,
        _pad: 0,
    };
    if let Err(err) = WAKERS.insert(wakee, waker, 0) {
        errors::refused!(Loss::WakersMapFull, "WAKERS", err);
    }
    0
}

#[inline(always)]
fn classify(prev_state: i64) -> Option<u32> {
    let report = prev_state & REPORT_BITS;
    if report & (IDLE | DEAD) != 0 {
        None
    } else if report == 0 {
        Some(state::PREEMPTED)
    } else if report & S != 0 {
        Some(state::SLEEPING)
    } else if report & D != 0 {
        Some(state::UNINTERRUPTIBLE)
    } else {
        Some(state::OTHER)
    }
}
