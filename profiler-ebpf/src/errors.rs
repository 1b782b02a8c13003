//! What BPF could not record, counted per CPU in `ERRORS` at each
//! [`Loss`]'s index; userspace sums the CPUs and reports each by name.

use aya_ebpf::{macros::map, maps::PerCpuArray};
use profiler_common::Loss;

pub const EFAULT: i32 = 14;
pub const EEXIST: i32 = 17;

#[map]
static ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Loss::BPF_COUNT, 0);

/// Counts one `loss`; a counter userspace keeps is not counted here.
#[inline(always)]
pub fn count(loss: Loss) {
    let Some(index) = loss.bpf_index() else {
        return;
    };
    if let Some(slot) = ERRORS.get_ptr_mut(index) {
        // Per-CPU slot: no other writer, no atomic needed.
        unsafe { *slot += 1 };
    }
}
