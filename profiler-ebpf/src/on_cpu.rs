//! On-CPU sampling: a perf_event program on the CPU clock of every CPU.

use aya_ebpf::{EbpfContext as _, macros::perf_event, programs::PerfEventContext};
use profiler_common::Loss;

use crate::{
    errors::EFAULT,
    events::announce_first_sample,
    kernel_stack::kernel_stack,
    stacks::{self, StackIds},
    store::{add, by_set, generation, with_set},
    target::recorded,
    user_stack::{UserRegs, current_user_regs},
};

#[perf_event]
pub fn on_cpu_sample(ctx: PerfEventContext) -> u32 {
    let tid = ctx.pid();
    let tgid = ctx.tgid();
    if !recorded(tid, tgid) {
        return 0;
    }
    announce_first_sample(tgid);
    let generation = generation();
    let regs = unsafe { &(*ctx.ctx).regs };
    // A sample in user mode has no kernel stack, and its registers are the
    // user registers: no helper call for either.
    let (kernel, user_regs) = if regs.cs & 3 == 3 {
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
    let ids = StackIds {
        kernel,
        user: stacks::user_stack(user_regs),
    };
    let key = ids.key(tgid, tid, ctx.command().unwrap_or_default());
    let set = by_set(generation);
    // A count that exists already refers to stacks stored already.
    if with_set!(set, |maps| add(maps.counts, &key, 1, Loss::CountsMapFull)) {
        stacks::store(ids, set);
    }
    0
}
