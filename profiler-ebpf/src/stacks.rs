//! A task's two stacks as the programs record them: walked (the kernel's
//! by `kernel_stack`, the user's by `user_stack`) into per-CPU scratch
//! stacks, named by their ids, and stored in a map set.

use aya_ebpf::EbpfContext;
use profiler_common::{COMM_LEN, StackKey};

use crate::{
    errors::EFAULT,
    kernel_stack,
    store::{MapSet, by_set},
    user_stack::{self, UserRegs},
};

/// The ids of a task's kernel and user stacks; a negated errno for a
/// stack that could not be taken (see `StackKey`).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StackIds {
    pub kernel: i64,
    pub user: i64,
}

const _: () = assert!(core::mem::size_of::<StackIds>() == 16);

impl StackIds {
    /// The key of a record of these stacks.
    #[inline(always)]
    pub fn key(self, tgid: u32, tid: u32, comm: [u8; COMM_LEN]) -> StackKey {
        StackKey {
            tgid,
            tid,
            user_stack_id: self.user,
            kern_stack_id: self.kernel,
            comm,
        }
    }
}

/// The current task's stacks (in a tracepoint: it is in the kernel), both
/// stored in the generation's set. `regs`: the task's user registers, as
/// `current_user_regs` reads them.
#[inline(always)]
pub fn current<C: EbpfContext>(ctx: &C, regs: Option<UserRegs>, generation: u32) -> StackIds {
    let set = by_set(generation);
    let user = user_stack(regs);
    user_stack::store(user, set);
    StackIds {
        kernel: current_kernel(ctx, generation),
        user,
    }
}

/// The current task's kernel stack, stored in the generation's set.
#[inline(always)]
pub fn current_kernel<C: EbpfContext>(ctx: &C, generation: u32) -> i64 {
    let kernel = kernel_stack::kernel_stack(ctx);
    kernel_stack::store(kernel, by_set(generation));
    kernel
}

/// Walks the user stack from `regs` (not stored yet: see `store`); without
/// user registers (a kernel thread), `-EFAULT`.
#[inline(always)]
pub fn user_stack(regs: Option<UserRegs>) -> i64 {
    match regs {
        Some(regs) => user_stack::walk(&regs),
        None => -i64::from(EFAULT),
    }
}

/// Stores the stacks just walked in `set`.
#[inline(always)]
pub fn store(ids: StackIds, set: MapSet) {
    user_stack::store(ids.user, set);
    kernel_stack::store(ids.kernel, set);
}
