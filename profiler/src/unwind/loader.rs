//! Loads unwind tables into BPF: each binary's rows once, in
//! `UNWIND_ROWS`, keyed by build id (device and inode when it has none);
//! and each process's executable mappings, in `UNWIND_PROCESSES`, pointing
//! at its binaries' rows. A process is loaded when BPF first sees it, again
//! on exec, and again when a walk meets an address outside its known
//! mappings (a library loaded since). Exited processes are forgotten.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap as BpfHashMap, MapData};
use object::{Object, ObjectSegment, SegmentFlags};
use profiler_common::{MAX_UNWIND_MAPPINGS, ProcessMappings, UnwindMapping, UnwindRow};

use super::table::rows_from_elf;
use crate::{
    bpf::Collector,
    procfs::{self, Mapping},
};

/// A binary whose rows are in `UNWIND_ROWS`.
#[derive(Clone)]
struct Loaded {
    rows_start: u32,
    rows_len: u32,
    first_page: u64,
    pages_start: u32,
    page_count: u32,
    /// (virtual address - file offset) of each loadable segment, by the
    /// segment's file range: how a mapping's addresses become the binary's.
    segments: Vec<(u64, u64, u64)>,
}

/// What a run's tables hold, for -v and report.json.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnwindStats {
    pub binaries: u64,
    pub rows: u64,
    /// Binaries left without a table: the rows array was full.
    pub binaries_not_loaded: u64,
    /// Processes left to frame pointers: every slot was taken.
    pub processes_not_loaded: u64,
}

/// Processes with tables at once: the entries of `UNWIND_PROCESSES`.
const PROCESS_SLOTS: u32 = 1024;

pub struct UnwindLoader {
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
    pub stats: UnwindStats,
}

impl UnwindLoader {
    /// `capacity`: the entries of `UNWIND_ROWS`.
    pub fn new(capacity: u32) -> UnwindLoader {
        UnwindLoader {
            binaries: HashMap::new(),
            keys_by_file: HashMap::new(),
            next_row: 0,
            capacity,
            next_page: 0,
            page_capacity: page_capacity(capacity),
            slots: HashMap::new(),
            free_slots: (0..PROCESS_SLOTS).rev().collect(),
            stale: HashSet::new(),
            loads: 0,
            stats: UnwindStats::default(),
        }
    }

    /// Reads the process's mappings and gives BPF their tables.
    pub fn load_process(&mut self, collector: &mut Collector, tgid: u32) -> Result<()> {
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
        // The mappings first, then the slot BPF finds them by.
        let mut processes: Array<&mut MapData, ProcessMappings> =
            Array::try_from(map(collector, "UNWIND_PROCESSES")?)?;
        processes
            .set(slot, value, 0)
            .with_context(|| format!("loading the mappings of pid {tgid}"))?;
        let mut slots: BpfHashMap<&mut MapData, u32, u32> =
            BpfHashMap::try_from(map(collector, "UNWIND_SLOTS")?)?;
        slots
            .insert(tgid, slot, 0)
            .with_context(|| format!("loading the mappings of pid {tgid}"))?;
        Ok(())
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
    pub fn mark_stale(&mut self, tgid: u32) {
        self.stale.insert(tgid);
    }

    /// Reloads the processes marked stale since the last call.
    pub fn reload_stale(&mut self, collector: &mut Collector) {
        for tgid in std::mem::take(&mut self.stale) {
            // A process gone meanwhile is no loss.
            let _ = self.load_process(collector, tgid);
        }
    }

    /// Drops the mappings of processes that have exited.
    pub fn forget_exited(&mut self, collector: &mut Collector) -> Result<()> {
        let gone: Vec<u32> = self
            .slots
            .keys()
            .copied()
            .filter(|&tgid| !procfs::exists(tgid))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let mut slots: BpfHashMap<&mut MapData, u32, u32> =
            BpfHashMap::try_from(map(collector, "UNWIND_SLOTS")?)?;
        for tgid in gone {
            let _ = slots.remove(&tgid);
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
        let loaded = self.load_rows(collector, &data);
        self.binaries.insert(key, loaded.clone());
        loaded
    }

    fn load_rows(&mut self, collector: &mut Collector, data: &[u8]) -> Option<Loaded> {
        let rows = rows_from_elf(data).ok().filter(|rows| !rows.is_empty())?;
        let segments = segments(data)?;
        let len = u32::try_from(rows.len()).ok()?;
        let (first_page, pages) = page_index(&rows);
        let page_entries = u32::try_from(pages.len()).ok()?;
        if self.capacity - self.next_row < len || self.page_capacity - self.next_page < page_entries
        {
            self.stats.binaries_not_loaded += 1;
            return None;
        }
        set_all(collector, "UNWIND_ROWS", self.next_row, &rows).ok()?;
        set_all(collector, "UNWIND_PAGES", self.next_page, &pages).ok()?;
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

/// Writes `values` to the array map `name` from index `first` on: in one
/// BPF_MAP_UPDATE_BATCH call (libc's 28k rows, one syscall each, took tens
/// of milliseconds), else element by element.
fn set_all<T: aya::Pod>(
    collector: &mut Collector,
    name: &str,
    first: u32,
    values: &[T],
) -> Result<()> {
    /// The `batch` member of `union bpf_attr`.
    #[repr(C)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
    let map = map(collector, name)?;
    let keys: Vec<u32> = (first..).take(values.len()).collect();
    if let aya::maps::Map::Array(data) = &*map {
        use std::os::fd::{AsFd, AsRawFd};
        let mut attr = BatchAttr {
            in_batch: 0,
            out_batch: 0,
            keys: keys.as_ptr() as u64,
            values: values.as_ptr() as u64,
            count: values.len() as u32,
            map_fd: data.fd().as_fd().as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: the attr points at `keys` and `values`, both alive and of
        // `count` elements, for the duration of the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>(),
            )
        };
        if rc == 0 && attr.count as usize == values.len() {
            return Ok(());
        }
    }
    let mut array: Array<&mut MapData, T> = Array::try_from(map)?;
    for (key, value) in keys.iter().zip(values) {
        array.set(*key, value, 0)?;
    }
    Ok(())
}

fn map<'a>(collector: &'a mut Collector, name: &str) -> Result<&'a mut aya::maps::Map> {
    collector
        .ebpf
        .map_mut(name)
        .with_context(|| format!("map {name} missing from the BPF object"))
}

/// Entries of `UNWIND_PAGES` for `rows` rows: binaries have several rows
/// per 4 KiB page of code, so half as many is ample.
pub fn page_capacity(rows: u32) -> u32 {
    (rows / 2).max(1)
}

/// For each 4 KiB page from the first row's to the last row's, the index
/// of the last row at or below the page's start (the first row for the
/// first page), then one entry for the last row: the BPF search then
/// looks only between a page's entry and the next one's.
fn page_index(rows: &[UnwindRow]) -> (u64, Vec<u32>) {
    let first = rows[0].pc >> 12;
    let last = rows[rows.len() - 1].pc >> 12;
    let mut pages: Vec<u32> = (first..=last)
        .map(|page| {
            let after = rows.partition_point(|row| row.pc <= page << 12);
            after.saturating_sub(1) as u32
        })
        .collect();
    pages.push(rows.len() as u32 - 1);
    (first, pages)
}

/// The ELF image behind a mapping: the file (through map_files, so it works
/// across mount namespaces and for deleted files), or for the vDSO, the
/// process's memory.
fn read_image(tgid: u32, mapping: &Mapping) -> Option<Vec<u8>> {
    if mapping.path == "[vdso]" {
        use std::os::unix::fs::FileExt;
        let mem = std::fs::File::open(format!("/proc/{tgid}/mem")).ok()?;
        let mut image = vec![0; (mapping.end - mapping.start) as usize];
        mem.read_exact_at(&mut image, mapping.start).ok()?;
        return Some(image);
    }
    if !mapping.path.starts_with('/') {
        return None;
    }
    std::fs::read(mapping.map_files_path(tgid)).ok()
}

fn build_id(data: &[u8]) -> Option<Vec<u8>> {
    let file = object::File::parse(data).ok()?;
    file.build_id().ok().flatten().map(<[u8]>::to_vec)
}

/// Each executable segment's (file offset, file size, vaddr - offset).
/// Only executable ones: the mappings loaded are executable, and with lld's
/// layout the read-only segment before the code can share its first page.
fn segments(data: &[u8]) -> Option<Vec<(u64, u64, u64)>> {
    let file = object::File::parse(data).ok()?;
    Some(
        file.segments()
            .filter(
                |s| matches!(s.flags(), SegmentFlags::Elf { p_flags, .. } if p_flags.0 & 1 != 0),
            )
            .map(|s| {
                let (offset, size) = s.file_range();
                (offset, size, s.address().wrapping_sub(offset))
            })
            .collect(),
    )
}

/// Address in the mapping minus the binary's own address for it.
fn bias(binary: &Loaded, mapping: &Mapping) -> u64 {
    const PAGE: u64 = 4096;
    let delta = binary
        .segments
        .iter()
        .find(|(offset, size, _)| {
            (offset & !(PAGE - 1)) <= mapping.file_offset && mapping.file_offset < offset + size
        })
        .map_or(0, |&(_, _, delta)| delta);
    // Binary address = file offset + delta; mapping address = start +
    // (file offset - mapping's file offset).
    mapping
        .start
        .wrapping_sub(mapping.file_offset)
        .wrapping_sub(delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BPF search, as written in profiler-ebpf/src/unwind.rs.
    fn search(rows: &[UnwindRow], first_page: u64, pages: &[u32], address: u64) -> Option<u64> {
        let page = (address >> 12).checked_sub(first_page)?;
        let page = page.min(pages.len() as u64 - 2) as usize;
        let (mut low, mut high) = (pages[page], (pages[page + 1] + 1).min(rows.len() as u32));
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if rows[mid as usize].pc <= address {
                low = mid;
            } else {
                high = mid;
            }
        }
        let row = rows[low as usize];
        (row.pc <= address).then_some(row.pc)
    }

    #[test]
    fn the_page_index_search_finds_what_a_whole_binary_search_finds() {
        let data = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        let rows = super::super::table::rows_from_elf(&data).unwrap();
        let (first_page, pages) = page_index(&rows);
        let (low, high) = (rows[0].pc - 100, rows[rows.len() - 1].pc + 10_000);
        for address in (low..high).step_by(7) {
            let expected = super::super::table::row_for(&rows, address).map(|r| r.pc);
            assert_eq!(
                search(&rows, first_page, &pages, address),
                expected,
                "{address:#x}"
            );
        }
    }

    #[test]
    fn bias_maps_a_pie_text_mapping_back_to_its_elf_addresses() {
        // A typical PIE: text at file offset 0x1000, vaddr 0x1000.
        let binary = Loaded {
            rows_start: 0,
            rows_len: 1,
            first_page: 0,
            pages_start: 0,
            page_count: 1,
            segments: vec![(0, 0x500, 0), (0x1000, 0x2000, 0)],
        };
        let mapping = Mapping {
            start: 0x5555_5555_5000,
            end: 0x5555_5555_7000,
            file_offset: 0x1000,
            path: "/bin/x".into(),
            executable: true,
            file_id: ("fd:01".into(), 7),
        };
        let b = bias(&binary, &mapping);
        assert_eq!(0x5555_5555_5123u64.wrapping_sub(b), 0x1123);
        // A non-PIE or shifted segment: vaddr 0x401000 at offset 0x1000.
        let binary = Loaded {
            segments: vec![(0x1000, 0x2000, 0x400000)],
            ..binary
        };
        let mapping = Mapping {
            start: 0x401000,
            end: 0x403000,
            ..mapping
        };
        assert_eq!(0x401123u64.wrapping_sub(bias(&binary, &mapping)), 0x401123);
    }
}
