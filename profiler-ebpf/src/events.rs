//! Announcements to userspace on `PROCESS_EVENTS`: a process to snapshot
//! (first sample, exec) or whose maps went stale, so its maps are read
//! while it is alive.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use profiler_common::{Loss, PROCESS_FIRST_SAMPLE, ProcessEvent};

use crate::{errors, process::current_image};

/// Processes already announced on `PROCESS_EVENTS`; value unused.
#[map]
static KNOWN_TGIDS: LruHashMap<u32, u8> = LruHashMap::with_max_entries(16384, 0);
#[map]
static PROCESS_EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// The process this CPU last found announced, and `FORGOTTEN` then. A CPU
/// mostly samples the same process as last time, and this one cache line
/// is cheaper than a lookup in `KNOWN_TGIDS` when caches are cold.
#[repr(C)]
#[derive(Clone, Copy)]
struct LastKnown {
    tgid: u32,
    forgotten: u32,
}

#[map]
static LAST_KNOWN: PerCpuArray<LastKnown> = PerCpuArray::with_max_entries(1, 0);
/// Processes forgotten so far (see `forget`): a change voids every CPU's
/// `LAST_KNOWN`.
#[map]
static FORGOTTEN: Array<u32> = Array::with_max_entries(1, 0);

/// Announces `tgid` unless it was announced already.
#[inline(always)]
pub fn announce_first_sample(tgid: u32) {
    let forgotten = FORGOTTEN.get(0).copied().unwrap_or(0);
    let last = LAST_KNOWN.get_ptr_mut(0);
    if let Some(last) = last {
        let last = unsafe { &*last };
        if last.tgid == tgid && last.forgotten == forgotten {
            return;
        }
    }
    if KNOWN_TGIDS.get_ptr(tgid).is_none() {
        let _ = KNOWN_TGIDS.insert(tgid, 1u8, 0);
        announce(tgid, PROCESS_FIRST_SAMPLE);
    }
    if let Some(last) = last {
        unsafe { *last = LastKnown { tgid, forgotten } };
    }
}

/// Forgets that `tgid` was announced: its next sample announces it again.
#[inline(always)]
pub fn forget(tgid: u32) {
    let _ = KNOWN_TGIDS.remove(tgid);
    // Counted after the removal: a CPU that reads the new count then looks
    // the process up and finds it gone (or announced anew).
    if let Some(count) = FORGOTTEN.get_ptr_mut(0) {
        unsafe { atomic_xadd::<u32, u32, { AtomicOrdering::SeqCst }>(count, 1) };
    }
}

#[inline(always)]
pub fn announce(tgid: u32, kind: u16) {
    let event = ProcessEvent {
        tgid,
        kind,
        image: current_image(),
    };
    if let Err(err) = PROCESS_EVENTS.output(event, 0) {
        errors::refused!(Loss::ProcessEventLost, "PROCESS_EVENTS", err);
    }
}
