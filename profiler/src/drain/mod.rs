//! Draining: moves what BPF counted into userspace without losing counts.
//!
//! BPF writes to one of two map sets (stacks, on-CPU counts, off-CPU and
//! waker times), chosen by the drain generation in `ACTIVE`. A drain bumps
//! the generation, waits for writes already in flight on the old set, then
//! reads and empties the old set while nothing writes to it (through
//! `bpf`'s map set, in batches). That avoids the get-then-delete race of
//! draining a live map.
//!
//! Off-CPU records may carry stack ids of older generations (a thread can
//! stay blocked across drains), so each drained generation's stacks are kept
//! in a [`StackStore`] while pending records still refer to them.

mod stacks;

use std::{collections::HashMap, thread, time::Duration};

use anyhow::Result;
use profiler_common::{OffCpuKey, STACK_ID_BEFORE_RUN, Stack, StackKey, USER_STACK_INCOMPLETE};

pub(crate) use self::stacks::{Seeded, StackRef, StackStore, StacksById, StoredStack};
use crate::bpf::Collector;

/// A BPF program that read the old generation is still writing for at most
/// a few microseconds (they run with preemption off); this leaves a wide
/// margin even on a preempted vCPU.
const FLIP_GRACE: Duration = Duration::from_millis(5);

/// Instruction pointers of one stack, leaf first, as the kernel stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawStack {
    Frames(Vec<u64>),
    /// The frames a user-stack walk found before it could go no further.
    Partial(Vec<u64>),
    /// Kernel function names read from /proc for a thread that was already
    /// blocked when the run started (its stack never went through BPF).
    KernelNames(Vec<String>),
    /// Taking the stack failed with this errno (positive).
    Failed(i32),
    /// The id was recorded but its stack was gone from the map.
    Lost,
}

impl RawStack {
    pub(crate) fn frames(&self) -> &[u64] {
        match self {
            RawStack::Frames(ips) | RawStack::Partial(ips) => ips,
            _ => &[],
        }
    }
}

/// A thread and its two stacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawStacks {
    pub key: StackKey,
    pub user: RawStack,
    /// The image the user stack was walked in (see `ProcessEvent::image`);
    /// None for a stack BPF did not walk.
    pub user_image: Option<u16>,
    pub kernel: RawStack,
}

/// On-CPU samples of one (thread, stacks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSample {
    pub stacks: RawStacks,
    pub count: u64,
}

/// Off-CPU microseconds of one (thread, stacks, state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOffCpu {
    pub(crate) stacks: RawStacks,
    pub(crate) state: u32,
    pub(crate) us: u64,
}

/// Off-CPU microseconds of one blocked (thread, stacks), with its waker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawWake {
    pub(crate) blocked: RawOffCpu,
    pub(crate) waker: RawStacks,
}

/// What one drain read.
#[derive(Debug, Default)]
pub struct Batch {
    pub on_cpu: Vec<RawSample>,
    pub off_cpu: Vec<RawOffCpu>,
    pub wakes: Vec<RawWake>,
}

impl Batch {
    pub(crate) fn extend(&mut self, other: Batch) {
        self.on_cpu.extend(other.on_cpu);
        self.off_cpu.extend(other.off_cpu);
        self.wakes.extend(other.wakes);
    }
}

pub(crate) struct Drainer {
    generation: u32,
    pub(crate) stacks: StackStore,
    pub(crate) stats: DrainStats,
}

/// How the drains went, for -v and the scale benchmark.
#[derive(Debug, Default)]
pub(crate) struct DrainStats {
    pub(crate) drains: u32,
    pub(crate) total_ms: f64,
    pub(crate) max_ms: f64,
    /// The most distinct (thread, stack) counts one interval held.
    pub(crate) peak_keys: usize,
    /// The most stacks one interval held, kernel and user together (each
    /// of the two maps holds up to `--stack-map-size`).
    pub(crate) peak_stacks: usize,
}

impl DrainStats {
    fn record(&mut self, ms: f64, keys: usize, stacks: usize) {
        self.drains += 1;
        self.total_ms += ms;
        self.max_ms = self.max_ms.max(ms);
        self.peak_keys = self.peak_keys.max(keys);
        self.peak_stacks = self.peak_stacks.max(stacks);
    }
}

impl Drainer {
    /// `seeded`: stacks of the threads blocked before the run, by tid.
    pub(crate) fn new(seeded: HashMap<u32, Seeded>) -> Drainer {
        Drainer {
            generation: 0,
            stacks: StackStore::new(seeded),
            stats: DrainStats::default(),
        }
    }

    /// Moves BPF to the next generation and drains the one it wrote so far.
    pub(crate) fn drain(&mut self, collector: &mut Collector) -> Result<Batch> {
        let retired = self.generation;
        self.generation += 1;
        collector.set_generation(self.generation)?;
        thread::sleep(FLIP_GRACE);
        let started = std::time::Instant::now();
        let batch = self.drain_generation(collector, retired)?;
        let keys = batch.on_cpu.len() + batch.off_cpu.len() + batch.wakes.len();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.stats
            .record(ms, keys, self.stacks.generation_len(retired));
        Ok(batch)
    }

    /// Drains both map sets; for the end of a run, after the programs detached.
    pub(crate) fn drain_all(&mut self, collector: &mut Collector) -> Result<Batch> {
        let mut batch = self.drain(collector)?;
        batch.extend(self.drain(collector)?);
        Ok(batch)
    }

    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }

    fn drain_generation(&mut self, collector: &mut Collector, generation: u32) -> Result<Batch> {
        let mut set = collector.map_set(generation)?;
        // Nothing writes to this set now, so its contents are stable.
        let mut ids = StacksById::new();
        set.take_stacks(|id, stack| {
            ids.insert(id, stored(stack));
        })?;
        self.stacks.add_generation(generation, ids);

        let mut batch = Batch::default();
        for (key, count) in set.take_counts()? {
            let stacks = self.stacks.resolve(&key, generation);
            batch.on_cpu.push(RawSample { stacks, count });
        }
        for (key, us) in set.take_off_cpu()? {
            batch.off_cpu.push(self.off_cpu(&key, us));
        }
        for (key, us) in set.take_wakes()? {
            let blocked = self.off_cpu(&key.blocked, us);
            let waker = self.stacks.resolve(&key.waker.stack, key.waker.stack_gen);
            batch.wakes.push(RawWake { blocked, waker });
        }
        Ok(batch)
    }

    pub(crate) fn off_cpu(&self, key: &OffCpuKey, us: u64) -> RawOffCpu {
        RawOffCpu {
            stacks: self.stacks.resolve(&key.stack, key.stack_gen),
            state: key.state,
            us,
        }
    }
}

/// A stack as stored for resolving, a walk that stopped part way marked
/// at its end.
fn stored(stack: &Stack) -> StoredStack {
    let len = (stack.len as usize).min(stack.ips.len());
    let mut ips = stack.ips[..len].to_vec();
    if stack.flags & USER_STACK_INCOMPLETE != 0 {
        ips.push(INCOMPLETE_MARK);
    }
    StoredStack {
        ips,
        image: stack.image,
    }
}

/// Ends the stored frames of a walk that stopped part way (no address is
/// ever all ones).
pub(crate) const INCOMPLETE_MARK: u64 = u64::MAX;

/// True when `id` marks a thread seeded from /proc at the start.
pub(crate) fn is_before_run(id: i64) -> bool {
    id == STACK_ID_BEFORE_RUN
}
