//! Kernel stacks: unwound by the kernel (`bpf_get_stack`, the kernel's own
//! unwinder) into a per-CPU scratch stack, and stored like user stacks, in
//! hash maps keyed by a 64-bit hash of the frames. A stack-trace map
//! (`bpf_get_stackid`) is preallocated whole, 1 KiB a bucket: 32 MiB for
//! the two sets, whose allocation was a twentieth of a short run's CPU. It
//! also drops a stack whose bucket another stack holds. These maps
//! allocate as used and have no buckets to share.

use aya_ebpf::{EbpfContext, helpers::bpf_get_stack, macros::map, maps::PerCpuArray};
use profiler_common::{FNV_OFFSET, Loss, MAX_STACK_DEPTH, Stack, fnv_mix, kernel_stack_id};

use crate::{
    errors::{self, EFAULT},
    store::{MapSet, insert_stack, with_set},
};

/// The kernel stack just taken, per CPU (too big for the BPF stack).
#[map]
static KERNEL_WALK: PerCpuArray<Stack> = PerCpuArray::with_max_entries(1, 0);

/// The current kernel stack's id (see `kernel_stack_id`), taken into this
/// CPU's scratch stack; `store` keeps it. A negated errno on
/// failure, counted unless it is `-EFAULT`: no kernel stack, as for a
/// sample in user mode.
#[inline(always)]
pub fn kernel_stack<C: EbpfContext>(ctx: &C) -> i64 {
    let Some(stack) = KERNEL_WALK.get_ptr_mut(0) else {
        return -i64::from(EFAULT);
    };
    let stack = unsafe { &mut *stack };
    let bytes = unsafe {
        bpf_get_stack(
            ctx.as_ptr(),
            stack.ips.as_mut_ptr().cast(),
            core::mem::size_of_val(&stack.ips) as u32,
            0,
        )
    };
    if bytes <= 0 {
        if bytes != -i64::from(EFAULT) {
            errors::count(Loss::StackOther);
        }
        return if bytes == 0 {
            -i64::from(EFAULT)
        } else {
            bytes
        };
    }
    let len = (bytes as usize / 8).min(MAX_STACK_DEPTH);
    stack.len = len as u32;
    stack.flags = 0;
    stack.image = 0;
    let mut hash = FNV_OFFSET;
    for i in 0..MAX_STACK_DEPTH {
        if i >= len {
            break;
        }
        hash = fnv_mix(hash, stack.ips[i]);
    }
    kernel_stack_id(hash)
}

/// Stores the stack `kernel_stack` just took under `id` in `set`, unless
/// it is there already.
#[inline(always)]
pub fn store(id: i64, set: MapSet) {
    with_set!(set, |maps| insert_stack(
        maps.kernel_stacks,
        maps.short_stacks,
        &KERNEL_WALK,
        id
    ));
}
