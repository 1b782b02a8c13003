//! Which processes are recorded: all but bpfprof itself, or only those in
//! `WANTED_TGIDS` when userspace set a filter.

use aya_ebpf::{Global, macros::map, maps::HashMap};

/// bpfprof's own process, never recorded.
#[unsafe(no_mangle)]
static SELF_TGID: Global<u32> = Global::new(0);
/// 1 when only the processes in `WANTED_TGIDS` are recorded.
#[unsafe(no_mangle)]
static FILTER_TGIDS: Global<u32> = Global::new(0);

/// Processes to record when `FILTER_TGIDS` is set; value unused.
#[map]
pub static WANTED_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(8192, 0);

#[inline(always)]
pub fn is_self(tgid: u32) -> bool {
    tgid == SELF_TGID.load()
}

#[inline(always)]
pub fn wanted(tgid: u32) -> bool {
    FILTER_TGIDS.load() == 0 || WANTED_TGIDS.get_ptr(tgid).is_some()
}

/// A task whose samples and blocks are recorded: a thread of a wanted
/// process other than bpfprof (tid 0 is the idle task).
#[inline(always)]
pub fn recorded(tid: u32, tgid: u32) -> bool {
    tid != 0 && !is_self(tgid) && wanted(tgid)
}
