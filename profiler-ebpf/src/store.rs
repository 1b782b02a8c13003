//! What the programs record, in two map sets: BPF writes to the set of the
//! drain generation (`ACTIVE`) while userspace drains the other (see
//! `map_set`). `with_set!` is the one place that picks a set's maps.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_NOEXIST},
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use profiler_common::{
    Loss, OffCpuKey, SHORT_STACK_DEPTH, ShortStack, Stack, StackKey, WakeKey, map_set,
};

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
/// Kernel and user stacks that fit a `ShortStack` (see there why).
#[map]
static SHORT_STACKS_A: HashMap<i64, ShortStack> =
    HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);
#[map]
static SHORT_STACKS_B: HashMap<i64, ShortStack> =
    HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);

#[inline(always)]
pub fn generation() -> u32 {
    ACTIVE.get(0).copied().unwrap_or(0)
}

/// One of the two map sets.
#[derive(Clone, Copy)]
pub struct MapSet(u32);

impl MapSet {
    #[inline(always)]
    pub fn is_a(self) -> bool {
        self.0 == 0
    }
}

/// The set `generation` writes to.
#[inline(always)]
pub fn by_set(generation: u32) -> MapSet {
    MapSet(map_set(generation))
}

/// The maps of one set.
pub struct Maps {
    pub counts: &'static HashMap<StackKey, u64>,
    pub off_us: &'static HashMap<OffCpuKey, u64>,
    pub wake_us: &'static HashMap<WakeKey, u64>,
    pub kernel_stacks: &'static HashMap<i64, Stack>,
    pub user_stacks: &'static HashMap<i64, Stack>,
    pub short_stacks: &'static HashMap<i64, ShortStack>,
}

impl Maps {
    #[inline(always)]
    pub fn a() -> Maps {
        Maps {
            counts: &COUNTS_A,
            off_us: &OFF_US_A,
            wake_us: &WAKE_US_A,
            kernel_stacks: &KERNEL_STACKS_A,
            user_stacks: &USER_STACKS_A,
            short_stacks: &SHORT_STACKS_A,
        }
    }

    #[inline(always)]
    pub fn b() -> Maps {
        Maps {
            counts: &COUNTS_B,
            off_us: &OFF_US_B,
            wake_us: &WAKE_US_B,
            kernel_stacks: &KERNEL_STACKS_B,
            user_stacks: &USER_STACKS_B,
            short_stacks: &SHORT_STACKS_B,
        }
    }
}

/// `with_set!(set, |maps| body)`: `body` with `maps` the [`Maps`] of
/// `set`, written out once per set. Each helper call in `body` then sees
/// one map, which the verifier makes a direct call; a call that may see
/// either map goes through the generic helper, an indirect call each time.
/// A macro, not a function taking a closure: a closure called from both
/// branches may be left out of line, where its calls see either map.
macro_rules! with_set {
    ($set:expr, |$maps:ident| $body:expr) => {
        if $set.is_a() {
            let $maps = $crate::store::Maps::a();
            $body
        } else {
            let $maps = $crate::store::Maps::b();
            $body
        }
    };
}
pub(crate) use with_set;

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
        Err(err) => {
            errors::refused!(full, "a count map", err);
            false
        }
    }
}

/// Stores `scratch`'s stack under `id` (no errno) unless it is there
/// already: in `short` when it fits a `ShortStack`, else in `stacks`. A
/// full map is counted.
#[inline(always)]
pub fn insert_stack(
    stacks: &HashMap<i64, Stack>,
    short: &HashMap<i64, ShortStack>,
    scratch: &PerCpuArray<Stack>,
    id: i64,
) {
    if id < 0 {
        return;
    }
    let Some(stack) = scratch.get_ptr(0) else {
        return;
    };
    let stack = unsafe { &*stack };
    let stored = if stack.len as usize <= SHORT_STACK_DEPTH {
        // A `ShortStack` is the head of a `Stack`: same layout.
        let head = unsafe { &*(stack as *const Stack).cast::<ShortStack>() };
        short.insert(&id, head, u64::from(BPF_NOEXIST))
    } else {
        stacks.insert(&id, stack, u64::from(BPF_NOEXIST))
    };
    match stored {
        Ok(()) => {}
        Err(err) if -err == EEXIST => {}
        Err(err) => errors::refused!(Loss::StackMapFull, "a stack map", err),
    }
}
