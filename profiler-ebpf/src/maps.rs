//! Maps, load-time settings and helpers shared by the programs.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    EbpfContext, Global,
    bindings::{BPF_F_NO_PREALLOC, BPF_NOEXIST},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use profiler_common::{OffCpuKey, PendingBlock, StackKey, WakeKey, Waker, error};

use crate::{
    kernel_stack::{kernel_stack, store_kernel},
    user_stack::{UserRegs, store, walk},
};

pub const EEXIST: i32 = 17;
pub const EFAULT: i32 = 14;

/// bpfprof's own process, never recorded.
#[unsafe(no_mangle)]
pub static SELF_TGID: Global<u32> = Global::new(0);
/// 1 when only the processes in `WANTED_TGIDS` are recorded.
#[unsafe(no_mangle)]
pub static FILTER_TGIDS: Global<u32> = Global::new(0);

/// The drain generation; samples go to map set `generation & 1`.
#[map]
pub static ACTIVE: Array<u32> = Array::with_max_entries(1, 0);
/// On-CPU samples per (thread, stacks). The count maps are not
/// preallocated: sized for the busiest interval, they hold a few hundred
/// keys in most, and preallocating 2 x 65536 entries cost ~4 ms of a short
/// run's ~110 ms of CPU.
#[map]
pub static COUNTS_A: HashMap<StackKey, u64> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);
#[map]
pub static COUNTS_B: HashMap<StackKey, u64> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);
/// Off-CPU microseconds per (thread, stacks, state).
#[map]
pub static OFF_US_A: HashMap<OffCpuKey, u64> = HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);
#[map]
pub static OFF_US_B: HashMap<OffCpuKey, u64> = HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);
/// Off-CPU microseconds per (blocked thread and stacks, waker and stacks).
#[map]
pub static WAKE_US_A: HashMap<WakeKey, u64> = HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);
#[map]
pub static WAKE_US_B: HashMap<WakeKey, u64> = HashMap::with_max_entries(32768, BPF_F_NO_PREALLOC);
/// Threads switched out and not yet back, by tid. A plain hash, not LRU:
/// a blocked thread must run again before it can exit, so entries cannot
/// leak, and a full map is counted instead of silently evicting.
#[map]
pub static PENDING: HashMap<u32, PendingBlock> = HashMap::with_max_entries(32768, 0);
/// The last waker of each blocked thread, by tid.
#[map]
pub static WAKERS: LruHashMap<u32, Waker> = LruHashMap::with_max_entries(32768, 0);
/// Processes to record when `FILTER_TGIDS` is set; value unused.
#[map]
pub static WANTED_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(8192, 0);
#[map]
pub static ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(error::COUNT, 0);
/// Processes already announced on `PROCESS_EVENTS`; value unused.
#[map]
pub static KNOWN_TGIDS: LruHashMap<u32, u8> = LruHashMap::with_max_entries(16384, 0);
#[map]
pub static PROCESS_EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

#[inline(always)]
pub fn wanted(tgid: u32) -> bool {
    FILTER_TGIDS.load() == 0 || WANTED_TGIDS.get_ptr(tgid).is_some()
}

#[inline(always)]
pub fn generation() -> u32 {
    ACTIVE.get(0).copied().unwrap_or(0)
}

/// Kernel and user stack ids of the current task (in a tracepoint: it is
/// in the kernel), both stored in the generation's set. `regs`: the task's
/// user registers, as `current_user_regs` reads them.
#[inline(always)]
pub fn current_stacks<C: EbpfContext>(
    ctx: &C,
    regs: Option<UserRegs>,
    generation: u32,
) -> (i64, i64) {
    let user = user_stack(regs);
    store(user, generation);
    let kernel = kernel_stack(ctx);
    store_kernel(kernel, generation);
    (kernel, user)
}

/// Walks the user stack from `regs` (not stored yet: see `store`); without
/// user registers, `-EFAULT`, counted (normal for kernel threads, which
/// userspace tells apart from user threads).
#[inline(always)]
pub fn user_stack(regs: Option<UserRegs>) -> i64 {
    match regs {
        Some(regs) => walk(&regs),
        None => {
            count_error(error::USER_STACK_MISSING);
            -i64::from(EFAULT)
        }
    }
}

/// Adds `amount` to `key`'s value, inserting it when new; true when this
/// call inserted it.
#[inline(always)]
pub fn add<K>(map: &HashMap<K, u64>, key: &K, amount: u64, full_counter: u32) -> bool {
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
            count_error(full_counter);
            false
        }
    }
}

#[inline(always)]
pub fn count_error(index: u32) {
    if let Some(slot) = ERRORS.get_ptr_mut(index) {
        // Per-CPU slot: no other writer, no atomic needed.
        unsafe { *slot += 1 };
    }
}
