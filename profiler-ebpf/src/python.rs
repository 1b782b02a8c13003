//! CPython frames, walked where the native walk meets the eval loop: each
//! activation of `_PyEval_EvalFrameDefault` runs a run of Python frames,
//! which go into the stack just before (leaf-side of) the activation's own
//! frame, so they show under it and above the native code they called.
//! The frames come from the thread's own `PyThreadState`, found from its
//! thread pointer through the interpreter's thread-specific-data slot
//! (userspace found where, per process: `PythonProcess`). Each frame is
//! two words (see `profiler_common::python`): the code object and what
//! identifies it now, named later in userspace.

use aya_ebpf::{
    Global,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_kernel, bpf_probe_read_user,
        bpf_probe_read_user_buf,
    },
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use profiler_common::{
    Loss,
    python::{
        FRAME_OWNED_BY_CSTACK, NO_OFFSET, PYTHON_FRAME_TAG, PythonCodeEvent, PythonProcess,
        python_code_identity, python_frame_meta, walk_kind,
    },
};

use crate::errors;

/// Python processes BPF walks, by tgid (filled by userspace).
#[map]
pub static PYTHON_PROCESSES: HashMap<u32, PythonProcess> = HashMap::with_max_entries(4096, 0);

/// Byte offset of `thread.fsbase` in `task_struct`, from the kernel's BTF
/// (0: not found, and no Python frames are walked).
#[unsafe(no_mangle)]
static TASK_FSBASE_OFFSET: Global<u32> = Global::new(0);

/// Python frames one call of `emit_run` writes at most; a longer run goes
/// on in the next call. Bounds the verifier's work, not the stack.
const FRAMES_PER_CALL: u32 = 16;

/// Words read at once from a frame and from a code object: every field
/// the walk needs lies in the first 128 bytes on every supported version,
/// and none straddles a word.
const WINDOW: usize = 16;

/// The Python side of one walk, per CPU.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PythonWalk {
    pub process: PythonProcess,
    /// The next Python frame to write (0: none left, or not found yet).
    pub frame: u64,
    /// Whether the thread's top frame was looked for yet.
    pub started: u32,
    /// A run is being written: the activation's own pc waits in `eval_pc`.
    pub run_open: u32,
    /// Every frame left is written, whatever run it is in: the native
    /// walk ended before it met the eval loop.
    pub all_runs: u32,
    pub eval_pc: u64,
}

#[map]
pub static PYTHON_WALK: PerCpuArray<PythonWalk> = PerCpuArray::with_max_entries(1, 0);

/// The code objects each CPU met lately, direct-mapped: one met again is
/// not announced again (see `PythonCodeEvent`).
#[map]
static CODE_SEEN: PerCpuArray<PythonCodeEvent> = PerCpuArray::with_max_entries(CODE_SEEN_SLOTS, 0);
const CODE_SEEN_SLOTS: u32 = 1024;

#[map]
static PYTHON_CODE_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

#[repr(C)]
struct Windows {
    frame: [u64; WINDOW],
    code: [u64; WINDOW],
}

#[map]
static WINDOWS: PerCpuArray<Windows> = PerCpuArray::with_max_entries(1, 0);

/// Readies this CPU's Python walk for a sample of `tgid`: true when it is
/// a Python process whose frames can be walked.
#[inline(always)]
pub fn begin(tgid: u32) -> bool {
    let Some(walk) = PYTHON_WALK.get_ptr_mut(0) else {
        return false;
    };
    let walk = unsafe { &mut *walk };
    walk.run_open = 0;
    walk.all_runs = 0;
    walk.started = 0;
    walk.frame = 0;
    if TASK_FSBASE_OFFSET.load() == 0 {
        return false;
    }
    match unsafe { PYTHON_PROCESSES.get(tgid) } {
        Some(process) => {
            walk.process = *process;
            true
        }
        None => false,
    }
}

/// After a native walk that ended without meeting the eval loop (a table
/// not loaded yet, code it could not step through): the thread's Python
/// frames, all of them, go above what it found, so the sample keeps its
/// Python callers. Nothing when a run was written already.
#[inline(always)]
pub fn emit_the_rest(room: u32) {
    let Some(walk) = PYTHON_WALK.get_ptr_mut(0) else {
        return;
    };
    let walk = unsafe { &mut *walk };
    if walk.started != 0 {
        return;
    }
    walk.all_runs = 1;
    let mut room = room;
    for _ in 0..CALLS_FOR_THE_REST {
        if python_emit_run(room) == RUN_ENDED {
            return;
        }
        room = room.saturating_sub(2 * FRAMES_PER_CALL);
    }
}

/// Calls of `python_emit_run` for `emit_the_rest`: all the Python frames a
/// stack has room for.
const CALLS_FOR_THE_REST: u32 = 4;

/// Whether BPF walks process `tgid`'s Python frames.
#[inline(always)]
pub fn is_walked(tgid: u32) -> bool {
    unsafe { PYTHON_PROCESSES.get(tgid) }.is_some()
}

/// Whether `pc` is in the eval loop of the process `begin` readied.
#[inline(always)]
pub fn in_eval_loop(walk: &PythonWalk, pc: u64) -> bool {
    let [hot, cold] = walk.process.eval_ranges;
    (pc >= hot[0] && pc < hot[1]) || (pc >= cold[0] && pc < cold[1])
}

/// The current thread's top Python frame, or 0.
#[inline(always)]
fn top_frame(process: &PythonProcess) -> u64 {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let field = task.wrapping_add(TASK_FSBASE_OFFSET.load() as usize);
    let Ok(fsbase) = (unsafe { bpf_probe_read_kernel(field.cast::<u64>()) }) else {
        return 0;
    };
    let read = |address: u64| unsafe { bpf_probe_read_user(address as *const u64) }.unwrap_or(0);
    let tstate = read(fsbase.wrapping_add(process.tstate_from_fsbase));
    if tstate == 0 {
        return 0;
    }
    let offsets = &process.offsets;
    let mut frame = read(tstate + u64::from(offsets.tstate_frame));
    if offsets.cframe_current_frame != NO_OFFSET && frame != 0 {
        frame = read(frame + u64::from(offsets.cframe_current_frame));
    }
    frame
}

/// A field of `size` bytes at byte `offset` in a window, zero-extended
/// (0 past the window). Whole words are indexed by a masked index, which
/// the verifier can bound; `black_box` keeps the compiler from folding the
/// mask into the offset check and indexing by the raw offset.
#[inline(always)]
fn field(window: &[u64; WINDOW], offset: u16, size: u32) -> u64 {
    if offset as usize >= WINDOW * 8 {
        return 0;
    }
    let index = core::hint::black_box((offset as usize >> 3) & (WINDOW - 1));
    let Some(&word) = window.get(index) else {
        return 0;
    };
    let value = word >> ((offset & 7) * 8);
    match size {
        1 => value & 0xff,
        4 => value & 0xffff_ffff,
        _ => value,
    }
}

/// Reads the window at user address `address` straight into `window`
/// (a map value: too large for the BPF stack).
#[inline(always)]
fn read_window(address: u64, window: &mut [u64; WINDOW]) -> bool {
    let bytes =
        unsafe { core::slice::from_raw_parts_mut(window.as_mut_ptr().cast::<u8>(), WINDOW * 8) };
    unsafe { bpf_probe_read_user_buf(address as *const u8, bytes) }.is_ok()
}

/// What `python_emit_run` did.
pub const RUN_GOES_ON: i32 = 0;
pub const RUN_ENDED: i32 = 1;

/// Writes the next frames of the open run (each frame two words); `room`
/// is how many words the stack has left.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn python_emit_run(room: u32) -> i32 {
    let Some(walk) = PYTHON_WALK.get_ptr_mut(0) else {
        return RUN_ENDED;
    };
    let walk = unsafe { &mut *walk };
    if walk.started == 0 {
        walk.started = 1;
        walk.frame = top_frame(&walk.process);
        if walk.frame == 0 {
            errors::count(Loss::PythonFramesUnread);
        }
    }
    let mut room = room;
    for _ in 0..FRAMES_PER_CALL {
        if room < 2 || python_emit_frame() == RUN_ENDED {
            return RUN_ENDED;
        }
        room -= 2;
    }
    RUN_GOES_ON
}

/// What `python_emit_frame` did besides `RUN_ENDED`.
const FRAME_WRITTEN: i32 = 2;

/// Writes the run's next frame, if it has one. A global function, so the
/// verifier checks it once rather than once per frame of a run.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn python_emit_frame() -> i32 {
    let (Some(walk), Some(windows)) = (PYTHON_WALK.get_ptr_mut(0), WINDOWS.get_ptr_mut(0)) else {
        return RUN_ENDED;
    };
    let (walk, windows) = unsafe { (&mut *walk, &mut *windows) };
    let offsets = walk.process.offsets;
    let kind = walk.process.walk;
    let frame = walk.frame;
    if frame == 0 {
        return RUN_ENDED;
    }
    if !read_window(frame, &mut windows.frame) {
        errors::count(Loss::PythonFramesUnread);
        walk.frame = 0;
        return RUN_ENDED;
    }
    walk.frame = field(&windows.frame, offsets.frame_back, 8);
    let entry = if offsets.frame_entry == NO_OFFSET {
        0
    } else {
        field(&windows.frame, offsets.frame_entry, 1)
    };
    if kind == walk_kind::CSTACK_SHIM && entry == u64::from(FRAME_OWNED_BY_CSTACK) {
        // The activation's shim: its run is over, the shim not shown.
        return if walk.all_runs != 0 {
            FRAME_WRITTEN
        } else {
            RUN_ENDED
        };
    }
    let code = field(&windows.frame, offsets.frame_code, 8);
    let lasti = field(&windows.frame, offsets.frame_lasti, 8);
    let identity = code_identity(code, &offsets, &mut windows.code);
    let position = if kind == walk_kind::ONE_PER_ACTIVATION {
        lasti as u32 as i32
    } else {
        lasti.wrapping_sub(code + u64::from(offsets.code_adaptive)) as i32
    };
    announce_code(code, identity);
    crate::user_stack::push(PYTHON_FRAME_TAG | code);
    crate::user_stack::push(python_frame_meta(identity, position));
    let last = walk.all_runs == 0
        && match kind {
            walk_kind::ONE_PER_ACTIVATION => true,
            walk_kind::ENTRY_FLAG => entry != 0,
            _ => false,
        };
    if last { RUN_ENDED } else { FRAME_WRITTEN }
}

/// Tells userspace of a code object this CPU has not met lately.
#[inline(always)]
fn announce_code(code: u64, identity: u32) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let event = PythonCodeEvent {
        code,
        tgid,
        identity,
    };
    let slot = ((code >> 4) ^ (code >> 16) ^ u64::from(identity)) as u32 & (CODE_SEEN_SLOTS - 1);
    if let Some(seen) = CODE_SEEN.get_ptr_mut(slot) {
        let seen = unsafe { &mut *seen };
        if *seen == event {
            return;
        }
        *seen = event;
    }
    if let Err(err) = PYTHON_CODE_EVENTS.output(event, 0) {
        errors::refused!(Loss::PythonCodeEventLost, "PYTHON_CODE_EVENTS", err);
    }
}

/// `python_code_identity` of the code object at `code` (0 if unreadable:
/// no code object reads with that identity, so the frame stays unnamed).
#[inline(always)]
fn code_identity(
    code: u64,
    offsets: &profiler_common::python::PythonOffsets,
    window: &mut [u64; WINDOW],
) -> u32 {
    if !read_window(code, window) {
        return 0;
    }
    python_code_identity(
        field(window, offsets.code_argcount, 4) as u32,
        field(window, offsets.code_flags, 4) as u32,
        field(window, offsets.code_firstlineno, 4) as u32,
        field(window, offsets.code_name, 8),
        field(window, offsets.code_filename, 8),
    )
}
