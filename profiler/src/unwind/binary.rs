//! A binary's unwind table read from its ELF image, and how a process's
//! mapping of it translates addresses: pure userspace, for `loader` to
//! place in the BPF tables.

use object::{Object, ObjectSegment, SegmentFlags};
use profiler_common::UnwindRow;

use super::table::rows_from_elf;
use crate::procfs::Mapping;

/// A binary's unwind table, as read from its ELF image.
pub(super) struct Image {
    /// Sorted by address.
    pub(super) rows: Vec<UnwindRow>,
    /// The page index (see `page_index`) and its first page.
    pub(super) first_page: u64,
    pub(super) pages: Vec<u32>,
    /// (file offset, file size, vaddr - offset) of each executable segment.
    pub(super) segments: Vec<(u64, u64, u64)>,
}

impl Image {
    /// The table of an ELF image; None when it has no usable one.
    pub(super) fn from_elf(data: &[u8]) -> Option<Image> {
        let rows = rows_from_elf(data).ok().filter(|rows| !rows.is_empty())?;
        let segments = segments(data)?;
        let (first_page, pages) = page_index(&rows);
        Some(Image {
            rows,
            first_page,
            pages,
            segments,
        })
    }
}

/// A binary whose rows are in `UNWIND_ROWS`.
#[derive(Clone)]
pub(super) struct Loaded {
    pub(super) rows_start: u32,
    pub(super) rows_len: u32,
    pub(super) first_page: u64,
    pub(super) pages_start: u32,
    pub(super) page_count: u32,
    /// (virtual address - file offset) of each loadable segment, by the
    /// segment's file range: how a mapping's addresses become the binary's.
    pub(super) segments: Vec<(u64, u64, u64)>,
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
pub(super) fn read_image(tgid: u32, mapping: &Mapping) -> Option<Vec<u8>> {
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

pub(super) fn build_id(data: &[u8]) -> Option<Vec<u8>> {
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
pub(super) fn bias(binary: &Loaded, mapping: &Mapping) -> u64 {
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
