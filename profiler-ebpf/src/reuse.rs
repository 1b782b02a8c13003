//! Stack reuse for off-CPU records. Walking both stacks is most of the
//! cost of recording a context switch, and a thread that switches at a
//! high rate nearly always stops at the same few places. So the stack ids
//! found at each block site are kept, and an identical site reuses them.
//!
//! A site is what steers the walks and is cheap to read: the thread and
//! state class, the user registers the walk starts from (ip, sp, bp), the
//! frame record at bp (or the top of the stack when bp is no frame
//! pointer), the syscall with its first two arguments, and the version of
//! the process's unwind tables. (The kernel stack depth would be a good key
//! too, but the kernel randomises it at every syscall.) It determines the
//! user stack, and the kernel stack of a sleeping thread only (see
//! `kernel_determined`). Reuse is checked against a full walk at the 1st,
//! 2nd, 4th, 8th and 16th reuse of a site and every 32nd after. A
//! difference in what the site determines is counted
//! (`STACK_REUSE_MISMATCH`, shown in the quality report) and the site walks
//! every time from then on; another kernel stack where the site does not
//! determine it is no error, and that site walks its kernel stack from
//! then on. Sites are per drain generation, because stack ids are.

use aya_ebpf::{
    EbpfContext as _, Global,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::map,
    maps::LruHashMap,
    programs::TracePointContext,
};
use profiler_common::{Loss, state};

use crate::{
    errors,
    events::announce_first_sample,
    python,
    stacks::{self, StackIds},
    unwind::{NO_SLOT, UNWIND_PROCESSES, process_slot},
    user_stack::{UserRegs, current_user_regs},
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
    /// The version of the process's unwind tables: a walk before they were
    /// loaded (by frame pointers) is not reused after.
    tables: u32,
    user_ip: u64,
    user_sp: u64,
    user_bp: u64,
    /// The frame record at `user_bp` (the caller's bp and return address),
    /// or the two words at the top of the stack when bp is no frame pointer.
    caller_frame: [u64; 2],
    syscall: u64,
    args: [u64; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct ReusedStacks {
    ids: StackIds,
    reuses: u32,
    /// Set once a check found a different stack where the site determines
    /// it: this site always walks.
    walk_always: u16,
    /// Set once a check found another kernel stack at a site that does not
    /// determine it (see `kernel_determined`): the kernel stack is walked
    /// at every switch from then on, the user stack still reused.
    walk_kernel: u16,
}

/// Stack ids by block site. LRU: losing an entry only costs one walk, and
/// sites of past generations age out.
#[map]
static REUSED_STACKS: LruHashMap<BlockSite, ReusedStacks> = LruHashMap::with_max_entries(16384, 0);

/// Kernel and user stack ids for the current (blocking) task, reused from
/// an earlier block at the identical site (the kernel stack only where
/// `kernel_reused`). A walk also announces the process and stores the
/// stacks; a reuse means this generation did both.
#[inline(always)]
pub fn blocking_stacks(ctx: &TracePointContext, tid: u32, state: u32, generation: u32) -> StackIds {
    let regs = current_user_regs();
    // A Python thread blocks at the same native site from any Python
    // function (3.11+ calls them without growing the C stack): its stacks
    // are walked every time.
    if REUSE_STACKS.load() == 0 || state == state::OTHER || python::is_walked(ctx.tgid()) {
        return walk(ctx, regs, generation);
    }
    let Some(site) = block_site(regs, tid, state, generation) else {
        return walk(ctx, regs, generation);
    };
    let Some(entry) = REUSED_STACKS.get_ptr_mut(&site) else {
        let ids = walk(ctx, regs, generation);
        remember(&site, ids);
        return ids;
    };
    let entry = unsafe { &mut *entry };
    if entry.walk_always != 0 {
        return walk(ctx, regs, generation);
    }
    entry.reuses = entry.reuses.wrapping_add(1);
    let kernel_reused = entry.walk_kernel == 0;
    let cached = entry.ids;
    let check = entry.reuses % VERIFY_EVERY == 0
        || (entry.reuses < VERIFY_EVERY && entry.reuses.is_power_of_two());
    if !check {
        if kernel_reused {
            return cached;
        }
        return StackIds {
            kernel: stacks::current_kernel(ctx, generation),
            user: cached.user,
        };
    }
    let walked = walk(ctx, regs, generation);
    if walked.kernel < 0 || walked.user < 0 {
        return walked;
    }
    let kernel_differs = kernel_reused && walked.kernel != cached.kernel;
    if walked.user != cached.user || (kernel_differs && kernel_determined(state)) {
        errors::count(Loss::StackReuseMismatch);
        entry.walk_always = 1;
    } else if kernel_differs {
        entry.walk_kernel = 1;
    }
    walked
}

#[inline(always)]
fn walk(ctx: &TracePointContext, regs: Option<UserRegs>, generation: u32) -> StackIds {
    announce_first_sample(ctx.tgid());
    stacks::current(ctx, regs, generation)
}

#[inline(always)]
fn remember(site: &BlockSite, ids: StackIds) {
    if ids.kernel < 0 || ids.user < 0 {
        return;
    }
    let entry = ReusedStacks {
        ids,
        reuses: 0,
        walk_always: 0,
        walk_kernel: 0,
    };
    let _ = REUSED_STACKS.insert(site, entry, 0);
}

/// Whether the site determines the kernel stack too: for a sleeping
/// thread, the syscall and its arguments do. A preempted thread entered the
/// kernel through whichever interrupt came (the timer, a rescheduling IPI)
/// or was preempted wherever a long syscall had got to, and an
/// uninterruptible one waits wherever the kernel needed to (a lock, a page
/// fault in a syscall): their sites often keep one kernel stack (a
/// ping-pong's writer is preempted at the same point each time), so they
/// reuse it until a check finds another, and walk it from then on.
#[inline(always)]
fn kernel_determined(state: u32) -> bool {
    state == state::SLEEPING
}

/// The version of the current process's unwind tables; 0 without them.
#[inline(always)]
fn tables_version() -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let slot = process_slot(tgid);
    if slot == NO_SLOT {
        return 0;
    }
    UNWIND_PROCESSES.get(slot).map_or(0, |m| m.version)
}

/// The block site of the current task; None without user registers or
/// when the frame record at bp is unreadable.
#[inline(always)]
fn block_site(regs: Option<UserRegs>, tid: u32, state: u32, generation: u32) -> Option<BlockSite> {
    let regs = regs?;
    // The frame record at bp when bp looks like a frame pointer; in code
    // without them (rbp holds anything), the top of the stack, where a
    // frameless function's return address is. Reading a garbage address
    // would fault, and a fault costs more than the walk it saves.
    let plausible_fp =
        regs.bp >= 4096 && regs.bp & 7 == 0 && regs.bp >= regs.sp && regs.bp - regs.sp < 1 << 20;
    let record = if plausible_fp { regs.bp } else { regs.sp };
    let caller_frame: [u64; 2] = unsafe { bpf_probe_read_user(record as *const [u64; 2]) }.ok()?;
    Some(BlockSite {
        tid,
        state,
        generation,
        tables: tables_version(),
        user_ip: regs.ip,
        user_sp: regs.sp,
        user_bp: regs.bp,
        caller_frame,
        syscall: regs.syscall,
        args: regs.args,
    })
}
