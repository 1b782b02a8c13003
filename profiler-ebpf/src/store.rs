//! What the programs record, in two map sets: BPF writes to the set of the
//! drain generation (`ACTIVE`) while userspace drains the other (see
//! `map_set`). `MapSet` is the one place that picks a set's maps.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_NOEXIST},
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use profiler_common::{Loss, OffCpuKey, Stack, StackKey, WakeKey, map_set};

use crate::errors::{self, EEXIST};

/// The drain generation; samples go to map set `generation & 1`.
#[map]
static ACTIVE: Array<u32> = Array::with_max_entries(1, 0);

// The count maps are not preallocated: sized for the busiest interval,
// they hold a few hundred keys in most, and preallocating 2 x 65536
// entries cost ~4 ms of a short run's ~110 ms of CPU.
/// On-CPU samples per (thread, stacks).
#[map]
static COUNTS_A: HashMap<StackKey, u64> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);
#[map]
static COUNTS_B: HashMap<StackKey, u64> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);
/// Off-CPU microseconds per (thread, stacks, state).
#[map]
static OFF_US_A: HashMap<OffCpuKey, u64> = HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);
#[map]
static OFF_US_B: HashMap<OffCpuKey, u64> = HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);
/// Off-CPU microseconds per (blocked thread and stacks, waker and stacks).
#[map]
static WAKE_US_A: HashMap<WakeKey, u64> = HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);
#[map]
static WAKE_US_B: HashMap<WakeKey, u64> = HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);
// Stacks by id (see `kernel_stack_id`, `user_stack_id`). Not
// preallocated: a stack is 1 KiB, and a preallocated map sized for
// 4999 Hz would cost ~70 MiB of kernel memory (and the time to zero it)
// while holding a few thousand stacks.
#[map]
static KERNEL_STACKS_A: HashMap<i64, Stack> = HashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);
#[map]
static KERNEL_STACKS_B: HashMap<i64, Stack> = HashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);
#[map]
static USER_STACKS_A: HashMap<i64, Stack> = HashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);
#[map]
static USER_STACKS_B: HashMap<i64, Stack> = HashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);

#[inline(always)]
pub fn generation() -> u32 {
    ACTIVE.get(0).copied().unwrap_or(0)
}

/// One of the two map sets.
#[derive(Clone, Copy)]
pub struct MapSet(u32);

/// The set `generation` writes to.
#[inline(always)]
pub fn by_set(generation: u32) -> MapSet {
    MapSet(map_set(generation))
}

impl MapSet {
    /// The set's map of a pair. Each use picks its map where it is used:
    /// a helper call that sees one map is made a direct call by the
    /// verifier, one that may see either goes through the generic helper.
    #[inline(always)]
    fn pick<T>(self, a: &'static T, b: &'static T) -> &'static T {
        if self.0 == 0 { a } else { b }
    }

    #[inline(always)]
    pub fn counts(self) -> &'static HashMap<StackKey, u64> {
        self.pick(&COUNTS_A, &COUNTS_B)
    }

    #[inline(always)]
    pub fn off_us(self) -> &'static HashMap<OffCpuKey, u64> {
        self.pick(&OFF_US_A, &OFF_US_B)
    }

    #[inline(always)]
    pub fn wake_us(self) -> &'static HashMap<WakeKey, u64> {
        self.pick(&WAKE_US_A, &WAKE_US_B)
    }

    #[inline(always)]
    pub fn kernel_stacks(self) -> &'static HashMap<i64, Stack> {
        self.pick(&KERNEL_STACKS_A, &KERNEL_STACKS_B)
    }

    #[inline(always)]
    pub fn user_stacks(self) -> &'static HashMap<i64, Stack> {
        self.pick(&USER_STACKS_A, &USER_STACKS_B)
    }
}

/// Adds `amount` to `key`'s value, inserting it when new; true when this
/// call inserted it. A full map is counted as `full`.
#[inline(always)]
pub fn add<K>(map: &HashMap<K, u64>, key: &K, amount: u64, full: Loss) -> bool {
    if let Some(value) = map.get_ptr_mut(key) {
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(value, amount) };
        return false;
    }
    match map.insert(key, amount, u64::from(BPF_NOEXIST)) {
        Ok(()) => true,
        // Another CPU inserted the same key between our lookup and insert.
        Err(err) if -err == EEXIST => {
            if let Some(value) = map.get_ptr_mut(key) {
                unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(value, amount) };
            }
            false
        }
        Err(_) => {
            errors::count(full);
            false
        }
    }
}

/// Stores `scratch`'s stack under `id` (no errno) unless it is there
/// already; a full map is counted.
#[inline(always)]
pub fn insert_stack(stacks: &HashMap<i64, Stack>, scratch: &PerCpuArray<Stack>, id: i64) {
    if id < 0 {
        return;
    }
    let Some(stack) = scratch.get_ptr(0) else {
        return;
    };
    match stacks.insert(&id, unsafe { &*stack }, u64::from(BPF_NOEXIST)) {
        Ok(()) => {}
        Err(err) if -err == EEXIST => {}
        Err(_) => errors::count(Loss::StackMapFull),
    }
}
