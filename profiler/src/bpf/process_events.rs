//! Process events (first sample, exec, maps gone stale) from BPF's ring
//! buffer, read as they come: they say when to snapshot a process's maps
//! and load its unwind tables.

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use profiler_common::ProcessEvent;
use tokio::io::unix::AsyncFd;

/// The ring buffer of process events, readable from the async loop.
pub(crate) struct ProcessEvents {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl ProcessEvents {
    pub(super) fn new(ring: RingBuf<MapData>) -> Result<ProcessEvents> {
        // SAFETY: the RingBuf owns its map fd and keeps it open until dropped.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| anyhow::anyhow!("watching the process events: {e}"))?;
        Ok(ProcessEvents { ring })
    }

    /// Waits until events arrive, then returns all that are queued.
    pub(crate) async fn next_batch(&mut self) -> Result<Vec<ProcessEvent>> {
        let mut guard = self.ring.readable_mut().await?;
        let events = read_events(guard.get_inner_mut());
        guard.clear_ready();
        Ok(events)
    }

    /// The events queued now, without waiting.
    pub(crate) fn pending(&mut self) -> Vec<ProcessEvent> {
        read_events(self.ring.get_mut())
    }
}

fn read_events(ring: &mut RingBuf<MapData>) -> Vec<ProcessEvent> {
    let mut events = Vec::new();
    while let Some(item) = ring.next() {
        if item.len() >= size_of::<ProcessEvent>() {
            // SAFETY: BPF wrote a ProcessEvent (plain data) of this size.
            events.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<ProcessEvent>()) });
        }
    }
    events
}
