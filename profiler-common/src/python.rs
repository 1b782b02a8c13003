//! What BPF needs to walk one CPython process's frames, and how it writes
//! them into a user stack. Userspace finds the interpreter, its version's
//! offsets and its thread states (`profiler::python`); BPF reads them at
//! sample time (`profiler-ebpf::python`) and records raw ids; userspace
//! names them after the drain.

/// How the frames of one `_PyEval_EvalFrameDefault` activation are found:
/// the versions differ in how Python-to-Python calls are run.
pub mod walk_kind {
    /// 3.6–3.10: one Python frame per activation (each call recurses in C).
    pub const ONE_PER_ACTIVATION: u32 = 1;
    /// 3.11: calls are inlined in one activation; its run of frames ends
    /// with (and includes) the frame whose `is_entry` byte is set.
    pub const ENTRY_FLAG: u32 = 2;
    /// 3.12, 3.13: each activation pushes a shim frame owned by the C
    /// stack (`owner == FRAME_OWNED_BY_CSTACK`) below its run: the run
    /// ends there, the shim not included.
    pub const CSTACK_SHIM: u32 = 3;
}

/// `_PyInterpreterFrame.owner` of the shim frame (3.12, 3.13).
pub const FRAME_OWNED_BY_CSTACK: u8 = 3;

/// An offset that does not apply to a version.
pub const NO_OFFSET: u16 = u16::MAX;

/// One Python process, by tgid in `PYTHON_PROCESSES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PythonProcess {
    /// The eval loop's code, as absolute [start, end) ranges: the function
    /// and its `.cold` part (an empty range when there is none).
    pub eval_ranges: [[u64; 2]; 2],
    /// Where a thread's `PyThreadState*` is, from its thread pointer (the
    /// `fsbase`): the pthread thread-specific-data slot of the
    /// interpreter's `autoTSSkey`, found per process (see `python`).
    pub tstate_from_fsbase: u64,
    /// One of `walk_kind::*`.
    pub walk: u32,
    /// The minor version (3.x), for userspace's messages and line tables.
    pub minor: u32,
    pub offsets: PythonOffsets,
}

const _: () = assert!(core::mem::size_of::<PythonProcess>() == 72);

/// Byte offsets into the interpreter's structures, for one minor version.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PythonOffsets {
    /// `PyThreadState` to the top frame: `frame` (3.6–3.10), `cframe`
    /// (3.11, 3.12; then `cframe_current_frame` inside it), or
    /// `current_frame` (3.13).
    pub tstate_frame: u16,
    /// `_PyCFrame.current_frame` (3.11, 3.12), else `NO_OFFSET`.
    pub cframe_current_frame: u16,
    /// The caller's frame: `f_back` (3.6–3.10) or `previous`.
    pub frame_back: u16,
    /// The code object: `f_code` or `f_executable` (3.13).
    pub frame_code: u16,
    /// Where the frame is in its code: `f_lasti`, an int (3.6–3.10), or
    /// `prev_instr` / `instr_ptr` (3.11+), a pointer into the code.
    pub frame_lasti: u16,
    /// `is_entry` (3.11) or `owner` (3.12, 3.13), a byte; else `NO_OFFSET`.
    pub frame_entry: u16,
    /// `co_code_adaptive` (3.11+): the bytecode inside the code object.
    pub code_adaptive: u16,
    pub code_argcount: u16,
    pub code_flags: u16,
    pub code_firstlineno: u16,
    pub code_filename: u16,
    pub code_name: u16,
}

const _: () = assert!(core::mem::size_of::<PythonOffsets>() == 24);

/// A Python frame in a user stack takes two words, leaf first: this tag
/// or'ed with the code object's address (a user address: bit 63 is never
/// set in one, and `INCOMPLETE_MARK` is all ones), then [`python_frame_meta`].
pub const PYTHON_FRAME_TAG: u64 = 1 << 63;

/// The second word of a Python frame: the code object's identity at
/// sample time (see [`python_code_identity`]) in the high half, and where
/// the frame was in its code in the low half: `f_lasti` as the version
/// stores it (3.6–3.10), or the byte offset of `prev_instr` / `instr_ptr`
/// from the bytecode's start (3.11+; negative before the first
/// instruction).
pub const fn python_frame_meta(identity: u32, position: i32) -> u64 {
    ((identity as u64) << 32) | (position as u32 as u64)
}

/// What a code object's fields say of it, folded into 32 bits: read by BPF
/// at sample time and again by userspace when it names the frame, so a
/// code object freed and another made at its address is not named as the
/// old one (its name, file or first line differ).
pub const fn python_code_identity(
    argcount: u32,
    flags: u32,
    firstlineno: u32,
    name: u64,
    filename: u64,
) -> u32 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let words = [
        argcount as u64 | (flags as u64) << 32,
        firstlineno as u64,
        name,
        filename,
    ];
    let mut i = 0;
    while i < words.len() {
        hash = (hash ^ words[i]).wrapping_mul(0x0000_0100_0000_01b3);
        hash ^= hash >> 32;
        i += 1;
    }
    hash as u32
}

/// A code object BPF met in a frame and had not met lately (on this CPU):
/// userspace reads it at once, while the process surely lives, so that the
/// frames of a process that exits before the next drain are still named.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PythonCodeEvent {
    pub code: u64,
    pub tgid: u32,
    pub identity: u32,
}

const _: () = assert!(core::mem::size_of::<PythonCodeEvent>() == 16);
