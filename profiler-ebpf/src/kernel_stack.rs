//! Kernel stacks: unwound by the kernel (`bpf_get_stack`, the kernel's own
//! unwinder) into a per-CPU scratch stack, and stored like user stacks, in
//! hash maps keyed by a 64-bit hash of the frames. A stack-trace map
//! (`bpf_get_stackid`) is preallocated whole, 1 KiB a bucket: 32 MiB for
//! the two sets, whose allocation was a twentieth of a short run's CPU. It
//! also drops a stack whose bucket another stack holds. These maps
//! allocate as used and have no buckets to share.

use aya_ebpf::{
    EbpfContext,
    bindings::BPF_F_NO_PREALLOC,
    helpers::bpf_get_stack,
    macros::map,
    maps::{HashMap, PerCpuArray},
};
use profiler_common::{FNV_OFFSET, MAX_STACK_DEPTH, Stack, error, kernel_stack_id, map_set};

use crate::{
    maps::{EFAULT, count_error},
    user_stack::{insert_new, mix},
};

#[map]
pub static KERNEL_STACKS_A: HashMap<i64, Stack> =
    HashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);
#[map]
pub static KERNEL_STACKS_B: HashMap<i64, Stack> =
    HashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);
/// The kernel stack just taken, per CPU (too big for the BPF stack).
#[map]
static KERNEL_WALK: PerCpuArray<Stack> = PerCpuArray::with_max_entries(1, 0);

/// The current kernel stack's id (see `kernel_stack_id`), taken into this
/// CPU's scratch stack; `store_kernel` keeps it. A negated errno on
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
            count_error(error::STACK_OTHER);
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
    let mut hash = FNV_OFFSET;
    for i in 0..MAX_STACK_DEPTH {
        if i >= len {
            break;
        }
        hash = mix(hash, stack.ips[i]);
    }
    kernel_stack_id(hash)
}

/// Stores the stack `kernel_stack` just took under `id` in the
/// generation's set, unless it is there already.
#[inline(always)]
pub fn store_kernel(id: i64, generation: u32) {
    let stacks = if map_set(generation) == 0 {
        &KERNEL_STACKS_A
    } else {
        &KERNEL_STACKS_B
    };
    insert_new(stacks, &KERNEL_WALK, id);
}
