//! Types shared by the BPF programs (`profiler-ebpf`) and userspace (`profiler`).
//!
//! Everything here is `#[repr(C)]` with explicit padding: hash-map keys are
//! compared bytewise by the kernel, so no byte may be left uninitialised.
#![no_std]

pub mod loss;
pub mod names;
pub mod python;

pub use loss::Loss;

/// Length of a task's `comm` as the kernel stores it.
pub const COMM_LEN: usize = 16;

/// Maximum frames the kernel keeps per stack (`kernel.perf_event_max_stack`).
pub const MAX_STACK_DEPTH: usize = 127;

/// Key of the sample-count maps: one entry per distinct (thread, stacks).
///
/// Stack ids are BPF's own hashes of the frames, in `KERNEL_STACKS_*` and
/// `USER_STACKS_*` (or `SHORT_STACKS_*`): see [`kernel_stack_id`] and [`user_stack_id`]. An id
/// below zero is a negated errno (`-EFAULT` for no stack, `-ENOMEM` for a
/// full map), so userspace can show the loss where it happened instead of
/// dropping the sample.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct StackKey {
    pub tgid: u32,
    pub tid: u32,
    pub user_stack_id: i64,
    pub kern_stack_id: i64,
    pub comm: [u8; COMM_LEN],
}

const _: () = assert!(core::mem::size_of::<StackKey>() == 40);

/// A stack as BPF stores it: `len` addresses, leaf first (the kernel's
/// from `bpf_get_stack`, the user's from BPF's own walk).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack {
    pub len: u32,
    /// `USER_STACK_*` flags.
    pub flags: u16,
    /// The image a user stack's addresses belong to (see [`ProcessEvent`]).
    pub image: u16,
    pub ips: [u64; MAX_STACK_DEPTH],
}

/// The walk stopped part way: no rule for a frame, or memory it could not
/// read. The stack is shown with a `[truncated]` root.
pub const USER_STACK_INCOMPLETE: u16 = 1;

const _: () = assert!(core::mem::size_of::<Stack>() == 1024);

/// Frames a [`ShortStack`] holds.
pub const SHORT_STACK_DEPTH: usize = 23;

/// A stack of at most `SHORT_STACK_DEPTH` frames, as BPF stores it in
/// `SHORT_STACKS_*`: the head of a [`Stack`], same layout. Most stacks are
/// short (kernel stacks, frame-pointer walks), and storing each in a 1 KiB
/// value made its insert the costliest part of a sample: the element is
/// allocated from the kernel's 2 KiB class, whose per-CPU cache refills
/// (by an interrupt) every few inserts, and the whole value is copied.
/// With the hash map's element header this fits the 256-byte class.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortStack {
    pub len: u32,
    pub flags: u16,
    pub image: u16,
    pub ips: [u64; SHORT_STACK_DEPTH],
}

const _: () = assert!(core::mem::size_of::<ShortStack>() == 192);

impl ShortStack {
    /// The same stack as a [`Stack`].
    pub fn to_stack(&self) -> Stack {
        let mut stack = Stack {
            len: self.len.min(SHORT_STACK_DEPTH as u32),
            flags: self.flags,
            image: self.image,
            ips: [0; MAX_STACK_DEPTH],
        };
        stack.ips[..SHORT_STACK_DEPTH].copy_from_slice(&self.ips);
        stack
    }
}

/// A user stack's id from the 64-bit FNV-1a hash of its frames: bit 62 set
/// and bit 63 clear, so it is positive and never equal to a kernel stack id
/// or an errno. A hash-keyed map has no bucket collisions, so stacks are
/// never dropped for sharing a bucket, as a stack-trace map drops them.
pub const fn user_stack_id(hash: u64) -> i64 {
    ((hash & ((1 << 62) - 1)) | (1 << 62)) as i64
}

/// A kernel stack's id, like [`user_stack_id`] but with bit 62 clear and
/// bit 61 set: kernel and user ids share one table per drain.
pub const fn kernel_stack_id(hash: u64) -> i64 {
    ((hash & ((1 << 61) - 1)) | (1 << 61)) as i64
}

/// FNV-1a parameters for the stack ids.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One step of a stack's hash (from [`FNV_OFFSET`]): FNV-1a on a whole
/// word, then a fold of the high half into the low, so that every bit of
/// every frame reaches every bit of the hash.
#[inline(always)]
pub const fn fnv_mix(hash: u64, word: u64) -> u64 {
    let hash = (hash ^ word).wrapping_mul(FNV_PRIME);
    hash ^ (hash >> 32)
}

/// Tells userspace to snapshot a process's memory maps now, while it is
/// alive, so its stacks can be named even after it exits.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProcessEvent {
    pub tgid: u32,
    /// `PROCESS_FIRST_SAMPLE`, `PROCESS_EXEC` or `PROCESS_MAPS_STALE`.
    pub kind: u16,
    /// The process's image when the event was made: the low bits of the
    /// kernel's `task_struct.self_exec_id`, which each exec raises by one
    /// and a fork copies, so the stacks a process walked before an exec
    /// (a forked child still running its parent's code, say) are told from
    /// those of its new image. 0 everywhere when the kernel's BTF lacks it.
    pub image: u16,
}

const _: () = assert!(core::mem::size_of::<ProcessEvent>() == 8);

/// True when `image` came before `current` in one line of execs (wrapping:
/// only the low bits are kept, and a process execs far fewer times than
/// half their range between two drains).
pub const fn image_is_older(image: u16, current: u16) -> bool {
    (current.wrapping_sub(image) as i16) > 0
}

/// The first sample of a process this run (or since it left the LRU).
pub const PROCESS_FIRST_SAMPLE: u16 = 0;
/// The process replaced its image: its old maps are void.
pub const PROCESS_EXEC: u16 = 1;
/// A user-stack walk met an address outside the process's known mappings
/// (a library loaded since they were read): reread them.
pub const PROCESS_MAPS_STALE: u16 = 2;

/// `ACTIVE` holds the drain generation; BPF writes to map set
/// `generation & 1`. Userspace bumps it, then drains the other set while
/// nothing writes there. Off-CPU records carry the generation of their
/// stack ids, because a thread may stay blocked across several drains.
pub const fn map_set(generation: u32) -> u32 {
    generation & 1
}

/// Why a thread was off-CPU, from `prev_state` at switch-out.
pub mod state {
    /// S: waiting for an event, a lock, a timer, a socket.
    pub const SLEEPING: u32 = 0;
    /// D: mostly disk and other I/O.
    pub const UNINTERRUPTIBLE: u32 = 1;
    /// R: still runnable, waiting for a CPU.
    pub const PREEMPTED: u32 = 2;
    /// Stopped, traced, parked.
    pub const OTHER: u32 = 3;
    pub const COUNT: usize = 4;
}

/// Stack id userspace gives threads already blocked when the run starts:
/// their stack is read from /proc instead of the stack maps.
pub const STACK_ID_BEFORE_RUN: i64 = -1000;

/// An off-CPU interval's key: whose stacks, of which generation, and why.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct OffCpuKey {
    pub stack: StackKey,
    pub stack_gen: u32,
    /// One of `state::*`.
    pub state: u32,
}

/// A thread that switched out and has not run since.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PendingBlock {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) at switch-out.
    pub since_ns: u64,
    pub key: OffCpuKey,
}

/// Who woke a blocked thread, recorded at `sched_waking`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Waker {
    pub stack: StackKey,
    pub stack_gen: u32,
    pub _pad: u32,
}

/// An off-CPU interval together with the thread that ended it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct WakeKey {
    pub blocked: OffCpuKey,
    pub waker: Waker,
}

const _: () = assert!(core::mem::size_of::<OffCpuKey>() == 48);
const _: () = assert!(core::mem::size_of::<PendingBlock>() == 56);
const _: () = assert!(core::mem::size_of::<Waker>() == 48);
const _: () = assert!(core::mem::size_of::<WakeKey>() == 96);

/// One row of a binary's unwind table, built by userspace from .eh_frame:
/// from `pc` up to the next row's `pc`, how to find the caller's frame.
/// The return address is always at CFA - 8 on x86_64. Eight bytes, so
/// the tables of the largest binaries (compilers, LLVM) stay small and
/// more of a table fits each cache line.
///
/// A binary's table (one inner map of `UNWIND_TABLES`) starts with its
/// page index, `UnwindMapping::page_count + 1` entries whose `pc` is the
/// index of a row (see `UnwindMapping`); its rows follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UnwindRow {
    /// The row's first address, from the table's base address (the start
    /// of the binary's first page with a row).
    pub pc: u32,
    /// The rule, packed (see `unwind_rule`).
    pub rule: u32,
}

/// An `UnwindRow`'s rule in 32 bits: its kind (`unwind_kind::*`), where
/// the caller's rbp is saved (in 8-byte words from the CFA, 0 when this
/// frame has not saved it) and the offset added to the CFA's base
/// register (for `unwind_kind::PLT`, the threshold on `rip & 15`). Offsets
/// reach 8 MiB: compilers give some functions frames of hundreds of KiB.
pub mod unwind_rule {
    const KIND_BITS: u32 = 3;
    const SLOT_BITS: u32 = 6;
    const OFFSET_SHIFT: u32 = KIND_BITS + SLOT_BITS;
    pub const MAX_CFA_OFFSET: u64 = (1 << (32 - OFFSET_SHIFT)) - 1;
    pub const MIN_RBP_SLOT: i64 = -(1 << (SLOT_BITS - 1));
    pub const MAX_RBP_SLOT: i64 = (1 << (SLOT_BITS - 1)) - 1;

    /// The rule; None when the offset or the slot is out of range.
    pub const fn pack(kind: u8, cfa_offset: u64, rbp_slot: i64) -> Option<u32> {
        if cfa_offset > MAX_CFA_OFFSET || rbp_slot < MIN_RBP_SLOT || rbp_slot > MAX_RBP_SLOT {
            return None;
        }
        let slot = (rbp_slot as u32) & ((1 << SLOT_BITS) - 1);
        Some(((cfa_offset as u32) << OFFSET_SHIFT) | (slot << KIND_BITS) | (kind as u32 & 7))
    }

    pub const fn kind(rule: u32) -> u8 {
        (rule & ((1 << KIND_BITS) - 1)) as u8
    }

    pub const fn cfa_offset(rule: u32) -> u64 {
        (rule >> OFFSET_SHIFT) as u64
    }

    pub const fn rbp_slot(rule: u32) -> i64 {
        // The slot's bits at the top, then shifted back down with the sign.
        (((rule << (32 - OFFSET_SHIFT)) as i32) >> (32 - SLOT_BITS)) as i64
    }
}

const _: () = assert!(core::mem::size_of::<UnwindRow>() == 8);

/// An executable mapping of a process, and its binary's unwind table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UnwindMapping {
    pub start: u64,
    pub end: u64,
    /// Address in the mapping minus the address it has in the table (its
    /// `UnwindRow::pc` scale).
    pub bias: u64,
    /// The binary's table: its index in `UNWIND_TABLES`.
    pub table: u32,
    /// The table's page index: for each 4 KiB page of table addresses,
    /// the last row at or below the page's start, then one entry for the
    /// last row. It narrows each row search to the rows of one page.
    pub page_count: u32,
    pub rows_len: u32,
    /// One of `table_state::*`.
    pub state: u32,
}

const _: () = assert!(core::mem::size_of::<UnwindMapping>() == 40);

/// Whether an `UnwindMapping` has a table.
pub mod table_state {
    /// No table: the binary has none, or it did not fit.
    pub const NONE: u32 = 0;
    /// `table` holds the binary's table.
    pub const READY: u32 = 1;
    /// Its table is being read: walked by frame pointers meanwhile, and
    /// counted (`Loss::UnwindTablePending`).
    pub const PENDING: u32 = 2;
}

/// Binaries with a table at once: the entries of `UNWIND_TABLES`.
pub const MAX_UNWIND_TABLES: u32 = 8192;

/// Most mappings with unwind rows one process can have; more are walked by
/// frame pointers (`auto`) or not at all (`dwarf`).
pub const MAX_UNWIND_MAPPINGS: usize = 64;

/// A process's executable mappings, sorted by start address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessMappings {
    pub len: u32,
    /// Set by BPF when a walk met an address in no mapping (a library
    /// loaded since userspace read the maps); cleared by rereading them.
    pub stale: u32,
    /// Bumped at each load, so stacks reused from before it are not.
    pub version: u32,
    pub _pad: u32,
    pub mappings: [UnwindMapping; MAX_UNWIND_MAPPINGS],
}

/// `--unwind`: how user stacks are walked.
pub mod unwind_mode {
    /// Frame pointers only.
    pub const FP: u32 = 0;
    /// Unwind tables only: a frame without one ends the walk, incomplete.
    pub const DWARF: u32 = 1;
    /// Unwind tables where a binary has them, frame pointers elsewhere.
    pub const AUTO: u32 = 2;
}

/// How an `UnwindRow` finds the caller's frame.
pub mod unwind_kind {
    /// CFA = rsp + offset.
    pub const RSP: u8 = 0;
    /// CFA = rbp + offset.
    pub const RBP: u8 = 1;
    /// A PLT stub: CFA = rsp + 8, plus 8 more when `rip & 15 >= offset`.
    pub const PLT: u8 = 2;
    /// A signal trampoline: the interrupted registers are in the ucontext
    /// at rsp.
    pub const SIGNAL: u8 = 3;
    /// The outermost frame (return address undefined): the stack is whole.
    pub const END: u8 = 4;
    /// No usable rule here (a gap between functions, or a rule the BPF
    /// walk cannot follow).
    pub const NONE: u8 = 5;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain-old-data, repr(C), no implicit padding (asserted above).
    unsafe impl aya::Pod for super::StackKey {}
    unsafe impl aya::Pod for super::OffCpuKey {}
    unsafe impl aya::Pod for super::PendingBlock {}
    unsafe impl aya::Pod for super::Waker {}
    unsafe impl aya::Pod for super::WakeKey {}
    unsafe impl aya::Pod for super::Stack {}
    unsafe impl aya::Pod for super::ShortStack {}
    unsafe impl aya::Pod for super::UnwindRow {}
    unsafe impl aya::Pod for super::UnwindMapping {}
    unsafe impl aya::Pod for super::ProcessMappings {}
    unsafe impl aya::Pod for super::python::PythonProcess {}
    unsafe impl aya::Pod for super::python::PythonCodeEvent {}
}
