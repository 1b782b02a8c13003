//! A binary's unwind table as BPF holds it, made from its rows, and how a
//! process's mapping of the binary translates addresses into the table's:
//! pure userspace, for `loader` to place in BPF.
//!
//! The table is one array: the page index first, then the rows. Row
//! addresses are 32-bit offsets from the table's base, the start of the
//! first page with a row, which keeps a row at eight bytes.

use profiler_common::{UnwindRow, unwind_kind};

use super::{elf::Segment, table::Row};
use crate::procfs::Mapping;

/// A binary's table, ready for BPF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Image {
    pub(crate) layout: Layout,
    /// The page index (`page_count + 1` entries), then the rows.
    pub(crate) entries: Vec<UnwindRow>,
}

/// What a process's mappings need to know of a binary's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The table's base address, in pages of the binary's addresses.
    pub(crate) first_page: u64,
    pub(crate) page_count: u32,
    pub(crate) rows_len: u32,
    pub(crate) segments: Vec<Segment>,
}

impl Layout {
    /// The table's entries (page index and rows), as the budget counts them.
    pub(crate) fn entries(&self) -> u64 {
        u64::from(self.page_count) + 1 + u64::from(self.rows_len)
    }
}

impl Image {
    /// The table of `rows`; None when there are none.
    pub(crate) fn new(rows: &[Row], segments: Vec<Segment>) -> Option<Image> {
        let first_page = rows.first()?.pc >> 12;
        let base = first_page << 12;
        // Rows beyond what 32 bits reach from the base (no real binary's
        // code spans 4 GiB) end with the last one that fits, made NONE.
        let reach = rows.partition_point(|row| row.pc - base <= u64::from(u32::MAX));
        let mut table_rows: Vec<UnwindRow> = rows[..reach]
            .iter()
            .map(|row| UnwindRow {
                pc: (row.pc - base) as u32,
                rule: row.rule,
            })
            .collect();
        if reach < rows.len()
            && let Some(last) = table_rows.last_mut()
        {
            last.rule = u32::from(unwind_kind::NONE);
        }
        let pages = page_index(&table_rows);
        let page_count = u32::try_from(pages.len() - 1).ok()?;
        let rows_len = u32::try_from(table_rows.len()).ok()?;
        let mut entries = Vec::with_capacity(pages.len() + table_rows.len());
        entries.extend(pages.iter().map(|&index| UnwindRow { pc: index, rule: 0 }));
        entries.extend_from_slice(&table_rows);
        Some(Image {
            layout: Layout {
                first_page,
                page_count,
                rows_len,
                segments,
            },
            entries,
        })
    }

    /// The rows, after the page index.
    #[cfg(test)]
    pub(crate) fn rows(&self) -> &[UnwindRow] {
        &self.entries[self.layout.page_count as usize + 1..]
    }
}

impl Layout {
    /// Address in `mapping` minus its address in the table.
    pub(crate) fn bias(&self, mapping: &Mapping) -> u64 {
        bias(&self.segments, mapping).wrapping_add(self.first_page << 12)
    }
}

/// For each 4 KiB page of table addresses from the first row's to the last
/// row's, the index of the last row at or below the page's start (the
/// first row for the first page), then one entry for the last row: the
/// BPF search then looks only between a page's entry and the next one's.
fn page_index(rows: &[UnwindRow]) -> Vec<u32> {
    let last = rows[rows.len() - 1].pc >> 12;
    let mut pages: Vec<u32> = (0..=last)
        .map(|page| {
            let after = rows.partition_point(|row| row.pc <= page << 12);
            after.saturating_sub(1) as u32
        })
        .collect();
    pages.push(rows.len() as u32 - 1);
    pages
}

/// Address in the mapping minus the binary's own address for it.
fn bias(segments: &[Segment], mapping: &Mapping) -> u64 {
    const PAGE: u64 = 4096;
    let delta = segments
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
    use crate::unwind::table::{row_for, tests::rows_of};

    /// The BPF search, as written in profiler-ebpf/src/unwind.rs.
    fn search(image: &Image, offset: u64) -> Option<u32> {
        let offset = u32::try_from(offset).ok()?;
        let layout = &image.layout;
        let page = (offset >> 12).min(layout.page_count - 1) as usize;
        let (mut low, mut high) = (
            image.entries[page].pc,
            (image.entries[page + 1].pc + 1).min(layout.rows_len),
        );
        let rows = image.rows();
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if rows[mid as usize].pc <= offset {
                low = mid;
            } else {
                high = mid;
            }
        }
        let row = rows[low as usize];
        (row.pc <= offset).then_some(row.pc)
    }

    #[test]
    fn the_page_index_search_finds_what_a_whole_binary_search_finds() {
        let rows = rows_of("/lib/x86_64-linux-gnu/libc.so.6");
        let image = Image::new(&rows, Vec::new()).unwrap();
        let base = image.layout.first_page << 12;
        let (low, high) = (rows[0].pc - 100, rows[rows.len() - 1].pc + 10_000);
        for address in (low..high).step_by(7) {
            let expected = row_for(&rows, address).map(|r| (r.pc - base) as u32);
            assert_eq!(
                search(&image, address.wrapping_sub(base)),
                expected,
                "{address:#x}"
            );
        }
    }

    #[test]
    fn bias_maps_a_pie_text_mapping_back_to_its_elf_addresses() {
        // A typical PIE: text at file offset 0x1000, vaddr 0x1000.
        let segments = vec![(0, 0x500, 0), (0x1000, 0x2000, 0)];
        let mapping = Mapping {
            start: 0x5555_5555_5000,
            end: 0x5555_5555_7000,
            file_offset: 0x1000,
            path: "/bin/x".into(),
            executable: true,
            file_id: ("fd:01".into(), 7),
        };
        let b = bias(&segments, &mapping);
        assert_eq!(0x5555_5555_5123u64.wrapping_sub(b), 0x1123);
        // A non-PIE or shifted segment: vaddr 0x401000 at offset 0x1000.
        let segments = vec![(0x1000, 0x2000, 0x400000)];
        let mapping = Mapping {
            start: 0x401000,
            end: 0x403000,
            ..mapping
        };
        assert_eq!(
            0x401123u64.wrapping_sub(bias(&segments, &mapping)),
            0x401123
        );
        // The table's scale: offsets from its first page.
        let rows = [Row {
            pc: 0x401100,
            rule: 0,
        }];
        let image = Image::new(&rows, segments).unwrap();
        assert_eq!(0x401123u64.wrapping_sub(image.layout.bias(&mapping)), 0x123);
    }
}
