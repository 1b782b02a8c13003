//! What the capture does as processes appear, exec and change: BPF's
//! process events snapshot their maps for naming, find their Python
//! interpreters and load their unwind tables; the unwinder's replies plug
//! finished tables in. The loop that waits for all of it is in `mod.rs`.

use std::time::Instant;

use profiler_common::{PROCESS_EXEC, PROCESS_MAPS_STALE, ProcessEvent};

use super::Session;
use crate::unwind::{self, UnwindLoader};

impl Session<'_> {
    /// Python processes caught too early, tried again.
    pub(super) fn retry_pythons(&mut self) {
        for (tgid, minor) in self.pythons.retry_soon(&mut self.collector) {
            self.symbolizer.note_python(tgid, minor);
        }
    }

    /// Processes BPF saw first, or that exec'd, or whose maps changed:
    /// their maps are snapshotted for names and their unwind tables loaded.
    pub(super) fn on_process_events(&mut self, events: Vec<ProcessEvent>) {
        for event in events {
            self.symbolizer.note_image(event.tgid, event.image);
            // Walked from now on: named from this image's memory.
            let python = match event.kind {
                _ if !self.config.python => None,
                PROCESS_EXEC => self.pythons.on_exec(&mut self.collector, event.tgid),
                _ => self.pythons.on_seen(&mut self.collector, event.tgid),
            };
            if let Some(minor) = python {
                self.symbolizer.note_python(event.tgid, minor);
            }
            // Stale maps (a library loaded since) are reread for names as
            // for unwinding; an exec voids the old ones.
            match event.kind {
                PROCESS_EXEC => self.symbolizer.remember_exec(event.tgid),
                _ => self.symbolizer.remember(event.tgid),
            }
            match &mut self.unwinder {
                Some(unwinder) if event.kind == PROCESS_MAPS_STALE => {
                    unwinder.on_stale(&mut self.collector, event.tgid)
                }
                // A process gone before its tables loaded is no loss.
                Some(unwinder) => {
                    let _ = unwinder.load_process(&mut self.collector, event.tgid);
                }
                None => {}
            }
        }
    }

    /// The process events queued now, without waiting.
    pub(super) fn apply_pending_events(&mut self) {
        let events = self.process_events.pending();
        self.on_process_events(events);
    }

    /// A binary's table, read: plugged in, and its processes loaded again.
    pub(super) fn on_table(&mut self, table: unwind::Reply) {
        // Plugging a table in takes milliseconds, and replies come back to
        // back: processes that started meanwhile are snapshotted first, as
        // a short-lived one may not outlive the wait.
        self.apply_pending_events();
        if let Some(unwinder) = &mut self.unwinder {
            unwinder.on_reply(&mut self.collector, table);
        }
    }
}

/// The next table the unwinder's worker made (never, without one).
pub(super) async fn next_table(unwinder: &mut Option<UnwindLoader>) -> unwind::Reply {
    match unwinder {
        Some(unwinder) => unwinder.next_reply().await,
        None => std::future::pending().await,
    }
}

/// Waits until `deadline`, or forever without one.
pub(super) async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
