//! Types shared by the BPF programs (`profiler-ebpf`) and userspace (`profiler`).
//!
//! Everything here is `#[repr(C)]` with explicit padding: hash-map keys are
//! compared bytewise by the kernel, so no byte may be left uninitialised.
#![no_std]

pub mod loss;
pub mod names;

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
    pub flags: u32,
    pub ips: [u64; MAX_STACK_DEPTH],
}

/// The walk stopped part way: no rule for a frame, or memory it could not
/// read. The stack is shown with a `[truncated]` root.
pub const USER_STACK_INCOMPLETE: u32 = 1;

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
    pub flags: u32,
    pub ips: [u64; SHORT_STACK_DEPTH],
}

const _: () = assert!(core::mem::size_of::<ShortStack>() == 192);

impl ShortStack {
    /// The same stack as a [`Stack`].
    pub fn to_stack(&self) -> Stack {
        let mut stack = Stack {
            len: self.len.min(SHORT_STACK_DEPTH as u32),
            flags: self.flags,
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
    /// `PROCESS_FIRST_SAMPLE` or `PROCESS_EXEC`.
    pub kind: u32,
}

/// The first sample of a process this run (or since it left the LRU).
pub const PROCESS_FIRST_SAMPLE: u32 = 0;
/// The process replaced its image: its old maps are void.
pub const PROCESS_EXEC: u32 = 1;
/// A user-stack walk met an address outside the process's known mappings
/// (a library loaded since they were read): reread them.
pub const PROCESS_MAPS_STALE: u32 = 2;

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
/// from `pc` (the binary's own virtual address) up to the next row's `pc`,
/// how to find the caller's frame. The return address is always at CFA - 8
/// on x86_64.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UnwindRow {
    pub pc: u64,
    /// Added to the CFA's base register; for `unwind_kind::PLT`, the
    /// threshold on `rip & 15`.
    pub cfa_offset: i32,
    /// Where the caller's rbp is saved, from the CFA, when `rbp_saved`.
    pub rbp_offset: i16,
    /// One of `unwind_kind::*`.
    pub kind: u8,
    pub rbp_saved: u8,
}

const _: () = assert!(core::mem::size_of::<UnwindRow>() == 16);

/// An executable mapping of a process, and where its binary's unwind rows
/// are in `UNWIND_ROWS` (`rows_len` 0: the binary has none).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UnwindMapping {
    pub start: u64,
    pub end: u64,
    /// Address in the mapping minus the binary's own (ELF) address.
    pub bias: u64,
    pub rows_start: u32,
    pub rows_len: u32,
    /// The binary's page index in `UNWIND_PAGES`: for each 4 KiB page of
    /// its addresses from `first_page` on, the first row to search from,
    /// and one entry past the last page. It narrows each row search to the
    /// rows of one page.
    pub first_page: u64,
    pub pages_start: u32,
    pub page_count: u32,
}

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
}
