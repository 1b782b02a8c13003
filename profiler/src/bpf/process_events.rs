//! Events BPF sends on ring buffers, read as they come: process events
//! (first sample, exec, maps gone stale), which say when to snapshot a
//! process's maps and load its unwind tables, and the Python code objects
//! BPF met, read while their process lives.

use std::marker::PhantomData;

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use profiler_common::{ProcessEvent, python::PythonCodeEvent};
use tokio::io::unix::AsyncFd;

/// A ring buffer of `T` records, readable from the async loop.
pub(crate) struct Events<T> {
    ring: AsyncFd<RingBuf<MapData>>,
    _records: PhantomData<T>,
}

pub(crate) type ProcessEvents = Events<ProcessEvent>;
pub(crate) type PythonCodeEvents = Events<PythonCodeEvent>;

/// A record BPF writes whole: plain `#[repr(C)]` data, any bytes valid.
pub(crate) trait Record: Copy {}
impl Record for ProcessEvent {}
impl Record for PythonCodeEvent {}

impl<T: Record> Events<T> {
    pub(super) fn new(ring: RingBuf<MapData>) -> Result<Events<T>> {
        // SAFETY: the RingBuf owns its map fd and keeps it open until dropped.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| anyhow::anyhow!("watching a BPF ring buffer: {e}"))?;
        Ok(Events {
            ring,
            _records: PhantomData,
        })
    }

    /// Waits until events arrive, then returns all that are queued.
    pub(crate) async fn next_batch(&mut self) -> Result<Vec<T>> {
        let mut guard = self.ring.readable_mut().await?;
        let events = read_events(guard.get_inner_mut());
        guard.clear_ready();
        Ok(events)
    }

    /// The events queued now, without waiting.
    pub(crate) fn pending(&mut self) -> Vec<T> {
        read_events(self.ring.get_mut())
    }
}

fn read_events<T: Record>(ring: &mut RingBuf<MapData>) -> Vec<T> {
    let mut events = Vec::new();
    while let Some(item) = ring.next() {
        if item.len() >= size_of::<T>() {
            // SAFETY: BPF wrote a T (plain data) of this size.
            events.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<T>()) });
        }
    }
    events
}
