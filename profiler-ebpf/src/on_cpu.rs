//! On-CPU sampling: a perf_event program on the CPU clock of every CPU.

use aya_ebpf::{EbpfContext as _, macros::perf_event, programs::PerfEventContext};
use profiler_common::{StackKey, error, map_set};

use crate::{
    maps::{COUNTS_A, COUNTS_B, SELF_TGID, add, current_stacks, generation, wanted},
    process::announce_first_sample,
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
    let (kern_stack_id, user_stack_id) = current_stacks(&ctx, generation);
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
    add(counts, &key, 1, error::COUNTS_MAP_FULL);
    0
}
