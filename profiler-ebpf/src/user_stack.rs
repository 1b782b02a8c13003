//! User stacks, walked here rather than by `bpf_get_stackid`, and stored
//! in hash-keyed maps. Three reasons:
//!
//! - Unwind tables: with `--unwind auto|dwarf` each step may follow the
//!   binary's .eh_frame rules (see `unwind`), which the kernel cannot.
//! - The kernel's frame-pointer walk follows a frame pointer wherever it
//!   points. The outermost frame that libc's start-up code leaves behind
//!   (rbp holding a small integer) makes it fault on nearly every sample,
//!   and a fault costs more than the rest of the sample (~1.5 µs here). This
//!   walk stops at a frame pointer that is misaligned, in the first page, or
//!   below the stack pointer.
//! - A stack-trace map keeps one stack per bucket, with no chaining: with
//!   10k+ distinct stacks, ~6% of samples lost their stack to collisions. A
//!   hash map keyed by a 64-bit hash of the frames has none.
//!
//! The walk writes into a per-CPU scratch stack; callers store it only when
//! something new refers to it.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_probe_read_kernel, bpf_task_pt_regs,
    },
    macros::map,
    maps::PerCpuArray,
};
use aya_log_ebpf::debug;
use profiler_common::{
    FNV_OFFSET, Loss, MAX_STACK_DEPTH, Stack, USER_STACK_INCOMPLETE, fnv_mix, user_stack_id,
};

use crate::{
    errors::{self, EFAULT},
    process::current_image,
    python,
    store::{MapSet, insert_stack, with_set},
    unwind::{Frame, NO_SLOT, Step, UNWIND_PROCESSES, process_slot, step, tables_wanted},
};

/// The stack being walked, per CPU (too big for the BPF stack).
#[map]
static WALK: PerCpuArray<Stack> = PerCpuArray::with_max_entries(1, 0);

/// The user-mode registers of a task, as far as stack walks and block
/// sites need them.
#[derive(Clone, Copy)]
pub struct UserRegs {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    /// The system call being made, or -1 (`orig_rax`).
    pub syscall: u64,
    /// Its first two arguments (rdi, rsi).
    pub args: [u64; 2],
}

/// The current task's user registers (saved at kernel entry); None for a
/// kernel thread, which has none.
#[inline(always)]
pub fn current_user_regs() -> Option<UserRegs> {
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const [u64; 21];
    if regs.is_null() {
        return None;
    }
    // pt_regs words: 4 rbp, 13 rsi, 14 rdi, 15 orig_rax, 16 rip, 17 cs, 19 rsp.
    let words = unsafe { bpf_probe_read_kernel(regs) }.ok()?;
    if words[17] & 3 != 3 {
        return None;
    }
    Some(UserRegs {
        ip: words[16],
        sp: words[19],
        bp: words[4],
        syscall: words[15],
        args: [words[14], words[13]],
    })
}

/// Where a walk is: the frame reached so far and the hash of the frames.
#[repr(C)]
#[derive(Clone, Copy)]
struct Cursor {
    pc: u64,
    sp: u64,
    bp: u64,
    hash: u64,
    exact: u64,
    /// Set when a step went by frame pointers for want of a table still
    /// being loaded.
    table_pending: u64,
    /// Words written to the scratch stack so far.
    len: u64,
}

#[map]
static CURSOR: PerCpuArray<Cursor> = PerCpuArray::with_max_entries(1, 0);

/// What `unwind_one_frame` did.
const STEPPED: i32 = 0;
const ENDED: i32 = 1;
const STOPPED_INCOMPLETE: i32 = 2;

/// Walks the user stack from `regs` into this CPU's scratch stack and
/// returns its id (see `user_stack_id`). Each step is `unwind_one_frame`:
/// by unwind table or frame pointer, as `--unwind` says. In a Python
/// process, where a frame is in the eval loop, `python_emit_run` first
/// writes the Python frames that activation runs.
#[inline(always)]
pub fn walk(regs: &UserRegs) -> i64 {
    let (Some(stack), Some(cursor)) = (WALK.get_ptr_mut(0), CURSOR.get_ptr_mut(0)) else {
        return -i64::from(EFAULT);
    };
    let (stack, cursor) = unsafe { (&mut *stack, &mut *cursor) };
    *cursor = Cursor {
        pc: regs.ip,
        sp: regs.sp,
        bp: regs.bp,
        hash: FNV_OFFSET,
        exact: 1,
        table_pending: 0,
        len: 0,
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let python = python::begin(tgid);
    reach(regs.ip, python);
    let process = process_slot(tgid);
    let mut flags = 0;
    for _ in 1..MAX_STACK_DEPTH {
        match walk_step(tgid, process, u32::from(python)) {
            STEPPED => {}
            STOPPED_INCOMPLETE => {
                flags = USER_STACK_INCOMPLETE;
                break;
            }
            _ => break,
        }
    }
    // A run the walk ended in (or the room ran out in) ends here.
    if python && python_run_open() {
        close_python_run();
    }
    if python {
        let room = (MAX_STACK_DEPTH as u64).saturating_sub(cursor.len) as u32;
        python::emit_the_rest(room);
    }
    stack.len = cursor.len.min(MAX_STACK_DEPTH as u64) as u32;
    stack.flags = flags;
    // The same addresses mean other code in another image: they are
    // named by the image they were walked in.
    stack.image = current_image();
    // A process BPF saw before userspace loaded its tables has no slot yet.
    if cursor.table_pending != 0 || (process == NO_SLOT && tables_wanted()) {
        errors::count(Loss::UnwindTablePending);
    }
    user_stack_id(fnv_mix(
        cursor.hash,
        u64::from(flags) | u64::from(stack.image) << 16,
    ))
}

/// One step of the walk in progress on this CPU: the next frames of an
/// open Python run, or else the native caller (`unwind_one_frame`). A
/// global function, so the verifier checks it once, not per frame.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn walk_step(tgid: u32, process: u32, python: u32) -> i32 {
    let python = python != 0;
    if python && python_run_open() {
        let len = CURSOR
            .get_ptr(0)
            .map_or(MAX_STACK_DEPTH as u64, |c| unsafe { (*c).len });
        let room = (MAX_STACK_DEPTH as u64).saturating_sub(len) as u32;
        // One word is kept for the activation's own frame.
        if python::python_emit_run(room.saturating_sub(1)) == python::RUN_ENDED {
            close_python_run();
        }
        return STEPPED;
    }
    let stepped = unwind_one_frame(tgid, process);
    if stepped == STEPPED
        && let Some(cursor) = CURSOR.get_ptr(0)
    {
        reach(unsafe { (*cursor).pc }, python);
    }
    stepped
}

/// The walk reached a frame at `pc`: written now, or, in the eval loop of
/// a Python process, after the Python frames of its run.
#[inline(always)]
fn reach(pc: u64, python: bool) {
    if python && let Some(walk) = python::PYTHON_WALK.get_ptr_mut(0) {
        let walk = unsafe { &mut *walk };
        if python::in_eval_loop(walk, pc) {
            walk.run_open = 1;
            walk.eval_pc = pc;
            return;
        }
    }
    push(pc);
}

#[inline(always)]
fn python_run_open() -> bool {
    python::PYTHON_WALK
        .get_ptr(0)
        .is_some_and(|walk| unsafe { (*walk).run_open } != 0)
}

/// Ends the open run: the activation's own frame goes after its frames.
#[inline(always)]
fn close_python_run() {
    if let Some(walk) = python::PYTHON_WALK.get_ptr_mut(0) {
        let walk = unsafe { &mut *walk };
        walk.run_open = 0;
        push(walk.eval_pc);
    }
}

/// Appends a word to the scratch stack and to its hash (dropped when the
/// stack is full).
#[inline(always)]
pub fn push(word: u64) {
    let (Some(stack), Some(cursor)) = (WALK.get_ptr_mut(0), CURSOR.get_ptr_mut(0)) else {
        return;
    };
    let (stack, cursor) = unsafe { (&mut *stack, &mut *cursor) };
    let Some(slot) = stack.ips.get_mut(cursor.len as usize) else {
        return;
    };
    *slot = word;
    cursor.len += 1;
    cursor.hash = fnv_mix(cursor.hash, word);
}

/// One step of the walk in progress on this CPU: the cursor moves to the
/// caller of its frame (the caller's pc is written by `reach`). `process`
/// is the process's slot in `UNWIND_PROCESSES` (`NO_SLOT`: frame
/// pointers). A global function, so the verifier checks it once, on its
/// own; inlined into the frame loop it would be checked once per frame,
/// 126 times, past its budget. A step that fails is logged (`-vv` only:
/// see `errors`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn unwind_one_frame(tgid: u32, process: u32) -> i32 {
    let Some(cursor) = CURSOR.get_ptr_mut(0) else {
        return STOPPED_INCOMPLETE;
    };
    let cursor = unsafe { &mut *cursor };
    if cursor.len >= MAX_STACK_DEPTH as u64 {
        return ENDED;
    }
    let mappings = if process == NO_SLOT {
        None
    } else {
        UNWIND_PROCESSES.get_ptr_mut(process)
    };
    let frame = Frame {
        pc: cursor.pc,
        sp: cursor.sp,
        bp: cursor.bp,
        exact: cursor.exact != 0,
    };
    match step(&frame, mappings, tgid, &mut cursor.table_pending) {
        Step::Caller(caller) => {
            cursor.pc = caller.pc;
            cursor.sp = caller.sp;
            cursor.bp = caller.bp;
            cursor.exact = u64::from(caller.exact);
            STEPPED
        }
        Step::End | Step::Stop => ENDED,
        Step::Failed { cfa: 0 } => {
            let (pc, sp) = (frame.pc, frame.sp);
            debug!(
                &(),
                "unwind step failed in pid {}: pc 0x{:x} sp 0x{:x}", tgid, pc, sp
            );
            STOPPED_INCOMPLETE
        }
        Step::Failed { cfa } => {
            let (pc, sp) = (frame.pc, frame.sp);
            debug!(
                &(),
                "unwind step failed in pid {}: pc 0x{:x} sp 0x{:x} cfa 0x{:x}", tgid, pc, sp, cfa
            );
            STOPPED_INCOMPLETE
        }
    }
}

/// Stores the stack `walk` just produced under `id` in `set`, unless it
/// is there already.
#[inline(always)]
pub fn store(id: i64, set: MapSet) {
    with_set!(set, |maps| insert_stack(
        maps.user_stacks,
        maps.short_stacks,
        &WALK,
        id
    ));
}
