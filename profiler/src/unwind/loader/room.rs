//! Making room in the unwind maps: the slots and table references of
//! processes that exited are dropped, and, when a table did not fit, the
//! tables no loaded process points at are freed and the processes that
//! waited for room are loaded again.

use std::collections::{HashMap, HashSet};

use anyhow::Result;

use super::{Binary, UnwindLoader};
use crate::{bpf::Collector, procfs};

impl UnwindLoader {
    /// Drops the mappings of processes that have exited, and the tables
    /// nothing uses when others wait for room (`free_unused_tables`).
    pub(crate) fn forget_exited(&mut self, collector: &mut Collector) -> Result<()> {
        let gone = procfs::exited(self.slots.keys().copied());
        if !gone.is_empty() {
            collector.unwind_tables().remove_processes(&gone)?;
        }
        for tgid in gone {
            if let Some(slot) = self.slots.remove(&tgid) {
                self.free_slots.push(slot);
            }
            self.tables_in_use.remove(&tgid);
        }
        self.free_unused_tables(collector);
        Ok(())
    }

    /// When a table did not fit, frees the tables no loaded process points
    /// at (a long run keeps the tables of the binaries in use, not of every
    /// binary it met), then loads again the processes of those that now
    /// fit. Only under that pressure, so that a binary whose processes come
    /// and go (a compiler) keeps its table; and only while no table is
    /// being read, since a reply under way may name a table freed here.
    fn free_unused_tables(&mut self, collector: &mut Collector) {
        let pressure = self
            .binaries
            .values()
            .any(|b| matches!(b, Binary::DidNotFit { .. }));
        let reading = self
            .binaries
            .values()
            .any(|b| matches!(b, Binary::Pending(_)));
        if !pressure || reading {
            return;
        }
        let in_use: HashSet<u32> = self.tables_in_use.values().flatten().copied().collect();
        let mut unused = HashMap::new();
        self.binaries.retain(|_, binary| match binary {
            Binary::Ready { index, layout } if !in_use.contains(index) => {
                unused.insert(*index, layout.entries());
                false
            }
            _ => true,
        });
        for (index, entries) in unused {
            if collector.unwind_tables().remove_table(index).is_ok() {
                self.worker.release(index);
                self.stats.freed += 1;
                self.stats.binaries -= 1;
                self.stats.rows -= entries;
            }
        }
        let mut room = self.rows_budget.saturating_sub(self.stats.rows);
        let mut waiting = Vec::new();
        self.binaries.retain(|_, binary| match binary {
            Binary::DidNotFit {
                waiting: tgids,
                rows,
            } if *rows <= room => {
                room -= *rows;
                waiting.append(tgids);
                false
            }
            _ => true,
        });
        waiting.sort_unstable();
        waiting.dedup();
        for tgid in waiting {
            // A process gone meanwhile is no loss.
            let _ = self.load_process(collector, tgid);
        }
    }
}
