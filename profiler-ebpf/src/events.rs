//! Announcements to userspace on `PROCESS_EVENTS`: a process to snapshot
//! (first sample, exec) or whose maps went stale, so its maps are read
//! while it is alive.

use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, RingBuf},
};
use profiler_common::{Loss, PROCESS_FIRST_SAMPLE, ProcessEvent};

use crate::errors;

/// Processes already announced on `PROCESS_EVENTS`; value unused.
#[map]
static KNOWN_TGIDS: LruHashMap<u32, u8> = LruHashMap::with_max_entries(16384, 0);
#[map]
static PROCESS_EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Announces `tgid` unless it was announced already.
#[inline(always)]
pub fn announce_first_sample(tgid: u32) {
    if KNOWN_TGIDS.get_ptr(tgid).is_none() {
        let _ = KNOWN_TGIDS.insert(tgid, 1u8, 0);
        announce(tgid, PROCESS_FIRST_SAMPLE);
    }
}

/// Forgets that `tgid` was announced: its next sample announces it again.
#[inline(always)]
pub fn forget(tgid: u32) {
    let _ = KNOWN_TGIDS.remove(tgid);
}

#[inline(always)]
pub fn announce(tgid: u32, kind: u32) {
    if let Err(err) = PROCESS_EVENTS.output(ProcessEvent { tgid, kind }, 0) {
        errors::refused!(Loss::ProcessEventLost, "PROCESS_EVENTS", err);
    }
}
