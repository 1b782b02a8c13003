//! What an unwind table is made from, read out of an ELF file: its
//! executable segments and call-frame sections. Only those parts are
//! read, never the whole file (a compiler's libraries are hundreds of
//! megabytes, and someone else's file may be anything), and each section
//! only up to a bound no real binary comes near.

use std::fs::File;

use object::{Object, ObjectSection, ObjectSegment, ReadCache, ReadRef, SegmentFlags};

use crate::fnv::Fnv;

/// Far above any real binary's call-frame section (LLVM's is a few MiB).
const MAX_SECTION_BYTES: u64 = 128 << 20;

/// A loadable, executable segment: (file offset, file size, virtual
/// address - file offset).
pub(crate) type Segment = (u64, u64, u64);

/// The inputs of a binary's unwind table.
#[derive(Default)]
pub(crate) struct FrameSources {
    pub(crate) segments: Vec<Segment>,
    /// `.eh_frame` and the address it is loaded at.
    pub(crate) eh_frame: Option<(Vec<u8>, u64)>,
    pub(crate) debug_frame: Option<Vec<u8>>,
    /// Bases `.eh_frame` pointers may be relative to.
    pub(crate) text: Option<u64>,
    pub(crate) got: Option<u64>,
}

impl FrameSources {
    /// The parts of an ELF file read through `file`; None when it is no ELF
    /// file or a section is larger than any real one.
    pub(crate) fn read(file: File) -> Option<FrameSources> {
        let cache = ReadCache::new(file);
        let sources = from_object(&object::File::parse(&cache).ok()?);
        drop(cache);
        sources
    }

    /// The same from an image in memory (the vDSO).
    pub(crate) fn parse(image: &[u8]) -> Option<FrameSources> {
        from_object(&object::File::parse(image).ok()?)
    }

    /// A digest of everything the table is made from: a cached table is
    /// used only for a binary whose digest it records.
    pub(crate) fn digest(&self) -> u64 {
        let mut hash = Fnv::default();
        if let Some((data, address)) = &self.eh_frame {
            hash.add(&address.to_le_bytes());
            hash.add(&(data.len() as u64).to_le_bytes());
            hash.add(data);
        }
        if let Some(data) = &self.debug_frame {
            hash.add(&(data.len() as u64).to_le_bytes());
            hash.add(data);
        }
        for base in [self.text, self.got] {
            hash.add(&base.unwrap_or(u64::MAX).to_le_bytes());
        }
        for &(offset, size, delta) in &self.segments {
            for word in [offset, size, delta] {
                hash.add(&word.to_le_bytes());
            }
        }
        hash.0
    }
}

fn from_object<'a, R: ReadRef<'a>>(file: &object::File<'a, R>) -> Option<FrameSources> {
    let section = |name: &str| -> Option<Option<(Vec<u8>, u64)>> {
        let Some(section) = file.section_by_name(name) else {
            return Some(None);
        };
        if section.size() > MAX_SECTION_BYTES {
            return None;
        }
        let data = section.data().ok()?;
        Some(Some((data.to_vec(), section.address())))
    };
    let address = |name: &str| file.section_by_name(name).map(|s| s.address());
    Some(FrameSources {
        segments: executable_segments(file),
        eh_frame: section(".eh_frame")?,
        debug_frame: section(".debug_frame")?.map(|(data, _)| data),
        text: address(".text"),
        got: address(".got"),
    })
}

/// Only executable segments: the mappings loaded are executable, and with
/// lld's layout the read-only segment before the code can share its first
/// page.
fn executable_segments<'a, R: ReadRef<'a>>(file: &object::File<'a, R>) -> Vec<Segment> {
    file.segments()
        .filter(|s| matches!(s.flags(), SegmentFlags::Elf { p_flags, .. } if p_flags.0 & 1 != 0))
        .map(|s| {
            let (offset, size) = s.file_range();
            (offset, size, s.address().wrapping_sub(offset))
        })
        .collect()
}
