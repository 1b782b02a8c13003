//! Stack reuse for off-CPU records. Walking both stacks is ~85% of the
//! cost of recording a context switch, and a thread that switches at a
//! high rate nearly always stops at the same few places. So the stack ids
//! found at each block site are kept, and an identical site reuses them.
//!
//! A site is what steers both walks and is cheap to read: the thread and
//! state class, the user registers the frame-pointer walk starts from (ip,
//! sp, bp), the first frame record it reads, and the syscall with its first
//! two arguments. (The kernel stack depth would be a good key too, but the
//! kernel randomises it at every syscall.) Reuse is checked against a full
//! walk at the 1st, 2nd, 4th, 8th and 16th reuse of a site and every 32nd
//! after; a mismatch is counted (`STACK_REUSE_MISMATCH`, shown in the
//! quality report) and the site walks every time from then on. Sites are
//! per drain generation, because stack ids are.

use aya_ebpf::{
    EbpfContext as _, Global,
    helpers::{
        bpf_get_current_task_btf, bpf_probe_read_kernel, bpf_probe_read_user, bpf_task_pt_regs,
    },
    macros::map,
    maps::LruHashMap,
    programs::TracePointContext,
};
use profiler_common::{error, state};

use crate::{
    maps::{count_error, current_stacks},
    process::announce_first_sample,
};

/// 0 when every switch walks both stacks (`--no-stack-reuse`).
#[unsafe(no_mangle)]
static REUSE_STACKS: Global<u32> = Global::new(1);

/// Past the first few, one reuse in this many is checked by a full walk.
const VERIFY_EVERY: u32 = 32;

/// Where a thread blocked: the cache key.
#[repr(C)]
#[derive(Clone, Copy)]
struct BlockSite {
    tid: u32,
    state: u32,
    generation: u32,
    _pad: u32,
    user_ip: u64,
    user_sp: u64,
    user_bp: u64,
    /// The frame record at `user_bp`: the caller's bp and return address.
    caller_frame: [u64; 2],
    syscall: u64,
    args: [u64; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct ReusedStacks {
    kern_stack_id: i32,
    user_stack_id: i32,
    reuses: u32,
    /// Set once a check found a different stack: this site always walks.
    walk_always: u32,
}

/// Stack ids by block site. LRU: losing an entry only costs one walk, and
/// sites of past generations age out.
#[map]
static REUSED_STACKS: LruHashMap<BlockSite, ReusedStacks> = LruHashMap::with_max_entries(16384, 0);

/// Kernel and user stack ids for the current (blocking) task, reused from
/// an earlier block at the identical site. A walk also announces the
/// process; a reuse means this generation already did.
#[inline(always)]
pub fn blocking_stacks(
    ctx: &TracePointContext,
    tid: u32,
    state: u32,
    generation: u32,
) -> (i32, i32) {
    if REUSE_STACKS.load() == 0 || state == state::OTHER {
        return walk(ctx, generation);
    }
    let Some(site) = block_site(tid, state, generation) else {
        return walk(ctx, generation);
    };
    let Some(entry) = REUSED_STACKS.get_ptr_mut(&site) else {
        let ids = walk(ctx, generation);
        remember(&site, ids);
        return ids;
    };
    let entry = unsafe { &mut *entry };
    if entry.walk_always != 0 {
        return walk(ctx, generation);
    }
    entry.reuses = entry.reuses.wrapping_add(1);
    let cached = (entry.kern_stack_id, entry.user_stack_id);
    let check = entry.reuses % VERIFY_EVERY == 0
        || (entry.reuses < VERIFY_EVERY && entry.reuses.is_power_of_two());
    if !check {
        return cached;
    }
    let walked = walk(ctx, generation);
    if walked != cached && walked.0 >= 0 && walked.1 >= 0 {
        count_error(error::STACK_REUSE_MISMATCH);
        entry.walk_always = 1;
    }
    walked
}

#[inline(always)]
fn walk(ctx: &TracePointContext, generation: u32) -> (i32, i32) {
    announce_first_sample(ctx.tgid());
    current_stacks(ctx, generation)
}

#[inline(always)]
fn remember(site: &BlockSite, (kern_stack_id, user_stack_id): (i32, i32)) {
    if kern_stack_id < 0 || user_stack_id < 0 {
        return;
    }
    let entry = ReusedStacks {
        kern_stack_id,
        user_stack_id,
        reuses: 0,
        walk_always: 0,
    };
    let _ = REUSED_STACKS.insert(site, entry, 0);
}

/// Reads the current task's block site; None when any part is unreadable.
#[inline(always)]
fn block_site(tid: u32, state: u32, generation: u32) -> Option<BlockSite> {
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u64;
    if regs.is_null() {
        return None;
    }
    // pt_regs: ..., 10 rax, 11 rcx, 12 rdx, 13 rsi, 14 rdi, 15 orig_rax,
    // 16 rip, 17 cs, 18 eflags, 19 rsp, 20 ss; rbp is word 4.
    let user: [u64; 21] = unsafe { bpf_probe_read_kernel(regs as *const [u64; 21]) }.ok()?;
    let caller_frame: [u64; 2] = unsafe { bpf_probe_read_user(user[4] as *const [u64; 2]) }.ok()?;
    Some(BlockSite {
        tid,
        state,
        generation,
        _pad: 0,
        user_ip: user[16],
        user_sp: user[19],
        user_bp: user[4],
        caller_frame,
        syscall: user[15],
        args: [user[14], user[13]],
    })
}
