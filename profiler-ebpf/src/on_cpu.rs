//! On-CPU sampling: a perf_event program on the CPU clock of every CPU.

use aya_ebpf::{EbpfContext as _, macros::perf_event, programs::PerfEventContext};
use profiler_common::{StackKey, error, map_set};

use crate::{
    kernel_stack::{kernel_stack, store_kernel},
    maps::{COUNTS_A, COUNTS_B, EFAULT, SELF_TGID, add, generation, user_stack, wanted},
    process::announce_first_sample,
    user_stack::{UserRegs, current_user_regs, store},
};

#[perf_event]
pub fn on_cpu_sample(ctx: PerfEventContext) -> u32 {
    let tid = ctx.pid();
    let tgid = ctx.tgid();
    if tid == 0 || tgid == SELF_TGID.load() || !wanted(tgid) {
        return 0;
    }
    announce_first_sample(tgid);
    let generation = generation();
    let regs = unsafe { &(*ctx.ctx).regs };
    // A sample in user mode has no kernel stack, and its registers are the
    // user registers: no helper call for either.
    let (kern_stack_id, user_regs) = if regs.cs & 3 == 3 {
        let user_regs = UserRegs {
            ip: regs.rip,
            sp: regs.rsp,
            bp: regs.rbp,
            syscall: u64::MAX,
            args: [0; 2],
        };
        (-i64::from(EFAULT), Some(user_regs))
    } else {
        (kernel_stack(&ctx), current_user_regs())
    };
    let user_stack_id = user_stack(user_regs);
    let key = StackKey {
        tgid,
        tid,
        user_stack_id,
        kern_stack_id,
        comm: ctx.command().unwrap_or_default(),
    };
    let counts = if map_set(generation) == 0 {
        &COUNTS_A
    } else {
        &COUNTS_B
    };
    // A count that exists already refers to stacks stored already.
    if add(counts, &key, 1, error::COUNTS_MAP_FULL) {
        store(user_stack_id, generation);
        store_kernel(kern_stack_id, generation);
    }
    0
}
