//! Userspace's side of off-CPU tracking: the `PENDING` map of threads that
//! switched out and have not run since. Seeds it at the start with threads
//! already blocked (their wait began before BPF could see it), reads which
//! stacks its records refer to, and credits the records still open when the
//! run ends, so a thread asleep for the whole run shows its whole sleep.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use profiler_common::{OffCpuKey, PendingBlock, STACK_ID_BEFORE_RUN, StackKey, state};

use crate::{
    bpf::Collector,
    cli::Target,
    drain::{Drainer, RawOffCpu, Seeded, StackRef},
    procfs,
};

/// CLOCK_MONOTONIC in ns, the clock of `bpf_ktime_get_ns`.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Records every thread of the target that is blocked right now as pending
/// since now, with its stack read from /proc. Called after the scheduler
/// program is attached, so BPF's own records win: the insert does not
/// replace one, and a thread that woke after /proc was read overwrites ours
/// at its next switch-out, before any switch-in could credit it.
pub(crate) fn seed(collector: &mut Collector, target: &Target) -> Result<HashMap<u32, Seeded>> {
    let tgids: Vec<u32> = match target {
        Target::AllProcesses => procfs::all_pids(),
        Target::Pids(pids) => pids.clone(),
        // The command starts after the programs are attached.
        Target::Command(_) => return Ok(HashMap::new()),
    };
    let self_tgid = std::process::id();
    let now = monotonic_ns();
    let mut pending = collector.pending()?;
    let mut seeded = HashMap::new();
    for tgid in tgids.into_iter().filter(|&t| t != self_tgid) {
        for thread in procfs::blocked_threads(tgid) {
            let Some(state) = state_class(thread.state) else {
                continue;
            };
            let key = OffCpuKey {
                stack: StackKey {
                    tgid,
                    tid: thread.tid,
                    user_stack_id: STACK_ID_BEFORE_RUN,
                    kern_stack_id: STACK_ID_BEFORE_RUN,
                    comm: thread.comm,
                },
                stack_gen: 0,
                state,
            };
            let record = PendingBlock { since_ns: now, key };
            if pending.insert_new(thread.tid, record) {
                let stacks = Seeded {
                    kernel: thread.kernel_stack,
                    user_pc: thread.user_pc,
                };
                seeded.insert(thread.tid, stacks);
            }
        }
    }
    Ok(seeded)
}

fn state_class(state: char) -> Option<u32> {
    match state {
        'S' => Some(state::SLEEPING),
        'D' => Some(state::UNINTERRUPTIBLE),
        't' | 'T' => Some(state::OTHER),
        // Running, idle kernel threads, dead: nothing blocked to credit.
        _ => None,
    }
}

/// The stacks that pending records and recorded wakers refer to.
pub(crate) fn stack_refs(collector: &Collector) -> Result<HashSet<StackRef>> {
    let mut refs = HashSet::new();
    for (_, record) in collector.pending_records()? {
        push_refs(&mut refs, &record.key.stack, record.key.stack_gen);
    }
    for (_, waker) in collector.waker_records()? {
        push_refs(&mut refs, &waker.stack, waker.stack_gen);
    }
    Ok(refs)
}

fn push_refs(refs: &mut HashSet<StackRef>, stack: &StackKey, generation: u32) {
    refs.insert((generation, stack.user_stack_id));
    refs.insert((generation, stack.kern_stack_id));
}

/// Credits the threads still blocked at a window's end up to `now_ns`, and
/// moves their records' start to `now_ns` so the wake-up credits only the
/// rest: each microsecond lands in exactly one window. A record consumed
/// by BPF meanwhile makes the update fail, and is then left to BPF.
pub(crate) fn credit_open_and_restart(
    collector: &mut Collector,
    drainer: &Drainer,
    now_ns: u64,
    bounds_us: (u64, u64),
) -> Result<Vec<RawOffCpu>> {
    let records = collector.pending_records()?;
    let mut pending = collector.pending()?;
    let mut credited = Vec::new();
    for (tid, record) in records {
        if record.since_ns >= now_ns || !procfs::thread_exists(record.key.stack.tgid, tid) {
            continue;
        }
        let restarted = PendingBlock {
            since_ns: now_ns,
            key: record.key,
        };
        if !pending.replace(tid, restarted) {
            continue;
        }
        let us = (now_ns - record.since_ns) / 1000;
        if us >= bounds_us.0 && us <= bounds_us.1 {
            credited.push(drainer.off_cpu(&record.key, us));
        }
    }
    Ok(credited)
}

/// Off-CPU time of the threads still blocked when the run ended (after the
/// programs detached), up to `end_ns`, within the block-time bounds.
pub(crate) fn credit_open(
    collector: &Collector,
    drainer: &Drainer,
    end_ns: u64,
    bounds_us: (u64, u64),
) -> Result<Vec<RawOffCpu>> {
    let mut credited = Vec::new();
    for (tid, record) in collector.pending_records()? {
        // A thread gone since cannot still be blocked.
        if !procfs::thread_exists(record.key.stack.tgid, tid) {
            continue;
        }
        let us = end_ns.saturating_sub(record.since_ns) / 1000;
        if us >= bounds_us.0 && us <= bounds_us.1 {
            credited.push(drainer.off_cpu(&record.key, us));
        }
    }
    Ok(credited)
}
