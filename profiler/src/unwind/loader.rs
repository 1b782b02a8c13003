//! Loads unwind tables into BPF: each binary's rows once, in
//! `UNWIND_ROWS`, keyed by build id (device and inode when it has none);
//! and each process's executable mappings, in `UNWIND_PROCESSES`, pointing
//! at its binaries' rows. A process is loaded when BPF first sees it, again
//! on exec, and again when a walk meets an address outside its known
//! mappings (a library loaded since). Exited processes are forgotten.
//! This module owns where rows and processes go (the next free row, page
//! and slot); `binary` reads the tables, and `bpf` writes them.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use profiler_common::{MAX_UNWIND_MAPPINGS, ProcessMappings, UnwindMapping};

use super::binary::{Image, Loaded, bias, build_id, read_image};
use crate::{
    bpf::{Collector, map_memory::unwind_page_capacity},
    procfs::{self, Mapping},
};

/// What a run's tables hold, for -v and report.json.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnwindStats {
    pub(crate) binaries: u64,
    pub(crate) rows: u64,
    /// Binaries left without a table: the rows array was full.
    pub(crate) binaries_not_loaded: u64,
    /// Processes left to frame pointers: every slot was taken.
    pub(crate) processes_not_loaded: u64,
}

/// Processes with tables at once: the entries of `UNWIND_PROCESSES`.
const PROCESS_SLOTS: u32 = 1024;

pub(crate) struct UnwindLoader {
    /// By build id (or device and inode); None when the binary has no
    /// usable table or it did not fit.
    binaries: HashMap<Vec<u8>, Option<Loaded>>,
    /// Files already identified, so a shared library is read once.
    keys_by_file: HashMap<(String, u64), Vec<u8>>,
    next_row: u32,
    capacity: u32,
    next_page: u32,
    page_capacity: u32,
    /// Each loaded process's slot in `UNWIND_PROCESSES`, and the free ones.
    slots: HashMap<u32, u32>,
    free_slots: Vec<u32>,
    /// Processes whose walks met an unknown address: reloaded at the next
    /// drain, so a process whose walks keep missing costs one reload per
    /// interval, not one per sample.
    stale: HashSet<u32>,
    /// Process loads so far: each load's version.
    loads: u32,
    pub(crate) stats: UnwindStats,
}

impl UnwindLoader {
    /// `capacity`: the entries of `UNWIND_ROWS`.
    pub(crate) fn new(capacity: u32) -> UnwindLoader {
        UnwindLoader {
            binaries: HashMap::new(),
            keys_by_file: HashMap::new(),
            next_row: 0,
            capacity,
            next_page: 0,
            page_capacity: unwind_page_capacity(capacity),
            slots: HashMap::new(),
            free_slots: (0..PROCESS_SLOTS).rev().collect(),
            stale: HashSet::new(),
            loads: 0,
            stats: UnwindStats::default(),
        }
    }

    /// Reads the process's mappings and gives BPF their tables.
    pub(crate) fn load_process(&mut self, collector: &mut Collector, tgid: u32) -> Result<()> {
        let mut mappings: Vec<UnwindMapping> = Vec::new();
        for mapping in &procfs::executable_mappings(tgid) {
            let Some(binary) = self.binary(collector, tgid, mapping) else {
                // Known, without a table: `auto` walks it by frame pointers.
                mappings.push(UnwindMapping {
                    start: mapping.start,
                    end: mapping.end,
                    ..UnwindMapping::default()
                });
                continue;
            };
            mappings.push(UnwindMapping {
                start: mapping.start,
                end: mapping.end,
                bias: bias(&binary, mapping),
                rows_start: binary.rows_start,
                rows_len: binary.rows_len,
                first_page: binary.first_page,
                pages_start: binary.pages_start,
                page_count: binary.page_count,
            });
        }
        if mappings.is_empty() {
            return Ok(());
        }
        // Too many: keep those with tables first.
        mappings.sort_by_key(|m| (m.rows_len == 0, m.start));
        mappings.truncate(MAX_UNWIND_MAPPINGS);
        mappings.sort_by_key(|m| m.start);
        self.loads += 1;
        let mut value = ProcessMappings {
            len: mappings.len() as u32,
            stale: 0,
            version: self.loads,
            _pad: 0,
            mappings: [UnwindMapping::default(); MAX_UNWIND_MAPPINGS],
        };
        value.mappings[..mappings.len()].copy_from_slice(&mappings);
        let Some(slot) = self.slot_for(tgid) else {
            self.stats.processes_not_loaded += 1;
            return Ok(());
        };
        collector.unwind_tables().set_process(tgid, slot, &value)
    }

    /// The process's slot in `UNWIND_PROCESSES`: its own, or a free one.
    fn slot_for(&mut self, tgid: u32) -> Option<u32> {
        if let Some(&slot) = self.slots.get(&tgid) {
            return Some(slot);
        }
        let slot = self.free_slots.pop()?;
        self.slots.insert(tgid, slot);
        Some(slot)
    }

    /// Notes that a process's mappings changed since they were loaded.
    pub(crate) fn mark_stale(&mut self, tgid: u32) {
        self.stale.insert(tgid);
    }

    /// Reloads the processes marked stale since the last call.
    pub(crate) fn reload_stale(&mut self, collector: &mut Collector) {
        for tgid in std::mem::take(&mut self.stale) {
            // A process gone meanwhile is no loss.
            let _ = self.load_process(collector, tgid);
        }
    }

    /// Drops the mappings of processes that have exited.
    pub(crate) fn forget_exited(&mut self, collector: &mut Collector) -> Result<()> {
        let gone: Vec<u32> = self
            .slots
            .keys()
            .copied()
            .filter(|&tgid| !procfs::exists(tgid))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        collector.unwind_tables().remove_processes(&gone)?;
        for tgid in gone {
            if let Some(slot) = self.slots.remove(&tgid) {
                self.free_slots.push(slot);
            }
        }
        Ok(())
    }

    /// The mapping's binary, its rows loaded if they were not yet.
    fn binary(
        &mut self,
        collector: &mut Collector,
        tgid: u32,
        mapping: &Mapping,
    ) -> Option<Loaded> {
        // A file by device and inode; the vDSO, the same image in every
        // process, by its name. Anonymous code (JIT) has no image.
        let file_key = if mapping.path == "[vdso]" {
            (mapping.path.clone(), 0)
        } else {
            mapping.file_id.clone()
        };
        let identified = file_key.1 != 0 || mapping.path == "[vdso]";
        if identified && let Some(key) = self.keys_by_file.get(&file_key) {
            return self.binaries.get(key).cloned().flatten();
        }
        let data = read_image(tgid, mapping)?;
        let key = build_id(&data).unwrap_or_else(|| format!("{file_key:?}").into_bytes());
        if identified {
            self.keys_by_file.insert(file_key, key.clone());
        }
        if let Some(known) = self.binaries.get(&key) {
            return known.clone();
        }
        let loaded = Image::from_elf(&data).and_then(|image| self.load_rows(collector, image));
        self.binaries.insert(key, loaded.clone());
        loaded
    }

    /// Gives BPF the image's rows and page index, where they fit.
    fn load_rows(&mut self, collector: &mut Collector, image: Image) -> Option<Loaded> {
        let Image {
            rows,
            first_page,
            pages,
            segments,
        } = image;
        let len = u32::try_from(rows.len()).ok()?;
        let page_entries = u32::try_from(pages.len()).ok()?;
        if self.capacity - self.next_row < len || self.page_capacity - self.next_page < page_entries
        {
            self.stats.binaries_not_loaded += 1;
            return None;
        }
        let mut tables = collector.unwind_tables();
        tables.set_rows(self.next_row, &rows).ok()?;
        tables.set_pages(self.next_page, &pages).ok()?;
        let loaded = Loaded {
            rows_start: self.next_row,
            rows_len: len,
            first_page,
            pages_start: self.next_page,
            page_count: page_entries - 1,
            segments,
        };
        self.next_row += len;
        self.next_page += page_entries;
        self.stats.binaries += 1;
        self.stats.rows += u64::from(len);
        Some(loaded)
    }
}
