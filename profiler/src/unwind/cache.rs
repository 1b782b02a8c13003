//! Unwind tables kept on disk between runs, one file per binary, named by
//! the digest of what its table is made from (`FrameSources::digest`:
//! many binaries, Rust's toolchain among them, have no build id): a run
//! that meets LLVM again loads its table in milliseconds instead of
//! parsing its `.eh_frame` anew.
//!
//! The directory is root's alone (see `private_dir`). A file is used only
//! when it is whole and for the binary at hand: its header's magic and
//! version, the digest it was made for, its sizes against the file's, a
//! checksum of the rest, and the table's own shape (sorted rows, a page
//! index within them). Anything else is made anew. The digest is no
//! cryptographic hash: it tells binaries apart and damaged files from
//! whole ones, not a binary crafted to collide with another (which could
//! at worst give that other binary wrong stacks). The directory is
//! bounded: past `MAX_TOTAL_BYTES`, the files used least lately go.

use std::{
    fs,
    path::{Path, PathBuf},
    time::SystemTime,
};

use profiler_common::UnwindRow;

use super::binary::{Image, Layout};
use crate::{
    fnv::fnv64,
    private_dir::{PrivateDir, Unusable, write_atomically},
    untrusted_file,
};

/// The directory's bound: every table a busy machine meets, many times
/// over (LLVM's is about 12 MiB).
const MAX_TOTAL_BYTES: u64 = 512 << 20;
/// One table's bound: more than the largest binary's.
const MAX_FILE_BYTES: u64 = 128 << 20;
const MAGIC: &[u8; 8] = b"bpfprof\x02";
/// Magic, digest, first page, page count, rows, segments, then the
/// segments (three words each), the entries and the checksum.
const HEADER_BYTES: usize = 8 + 8 + 8 + 4 + 4 + 4 + 4;
const SEGMENT_BYTES: usize = 24;
const ENTRY_BYTES: usize = size_of::<UnwindRow>();

/// Where tables are kept.
pub(crate) struct TableCache {
    dir: PathBuf,
}

impl TableCache {
    /// The cache in `dir`, made if missing; Err says why it cannot be used
    /// (then tables are parsed every run).
    pub(crate) fn open(dir: &Path, owner: u32) -> Result<TableCache, Unusable> {
        let dirs = PrivateDir { owner };
        let parent = dir.parent().ok_or(Unusable::Unavailable)?;
        if let Some(grandparent) = parent.parent() {
            dirs.check(grandparent)?;
        }
        dirs.ensure(parent, false)?;
        dirs.ensure(dir, false)?;
        Ok(TableCache { dir: dir.into() })
    }

    /// The table kept for the binary whose sources have `digest`, if there
    /// is a whole one.
    pub(crate) fn load(&self, digest: u64) -> Option<Image> {
        let path = self.path(digest);
        if !fs::symlink_metadata(&path).ok()?.is_file() {
            return None;
        }
        let file = untrusted_file::open(&path, false).ok()?;
        let used = file.try_clone().ok()?;
        let bytes = untrusted_file::read_whole(file, MAX_FILE_BYTES).ok()?;
        let image = decode(&bytes, digest)?;
        // Used lately: the last to go when the directory is full (root, the
        // owner, may set the time through a read-only descriptor).
        let _ = used.set_modified(SystemTime::now());
        Some(image)
    }

    /// Keeps `image`, then trims the directory to its bound.
    pub(crate) fn store(&self, digest: u64, image: &Image) {
        let path = self.path(digest);
        let bytes = encode(image, digest);
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return;
        }
        write_atomically(&path, &[&bytes]);
        self.trim(MAX_TOTAL_BYTES);
    }

    /// Removes the files used least lately until the rest fit in `bound`.
    fn trim(&self, bound: u64) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                let used = meta.modified().ok()?;
                Some((used, meta.len(), entry.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= bound {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }

    fn path(&self, digest: u64) -> PathBuf {
        self.dir.join(format!("{digest:016x}.table"))
    }
}

fn encode(image: &Image, digest: u64) -> Vec<u8> {
    let layout = &image.layout;
    let mut bytes = Vec::with_capacity(
        HEADER_BYTES
            + layout.segments.len() * SEGMENT_BYTES
            + image.entries.len() * ENTRY_BYTES
            + 8,
    );
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&digest.to_le_bytes());
    bytes.extend_from_slice(&layout.first_page.to_le_bytes());
    bytes.extend_from_slice(&layout.page_count.to_le_bytes());
    bytes.extend_from_slice(&layout.rows_len.to_le_bytes());
    bytes.extend_from_slice(&(layout.segments.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    for &(offset, size, delta) in &layout.segments {
        for word in [offset, size, delta] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
    }
    for entry in &image.entries {
        bytes.extend_from_slice(&entry.pc.to_le_bytes());
        bytes.extend_from_slice(&entry.rule.to_le_bytes());
    }
    let checksum = fnv64(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

/// The table in `bytes`, if they are whole and made from sources of
/// `digest`.
fn decode(bytes: &[u8], digest: u64) -> Option<Image> {
    let (body, checksum) = bytes.split_last_chunk::<8>()?;
    if fnv64(body) != u64::from_le_bytes(*checksum) {
        return None;
    }
    let mut reader = Reader(body);
    if reader.take(8)? != MAGIC || reader.u64()? != digest {
        return None;
    }
    let first_page = reader.u64()?;
    let page_count = reader.u32()?;
    let rows_len = reader.u32()?;
    let segment_count = reader.u32()? as usize;
    reader.u32()?;
    let segments = (0..segment_count)
        .map(|_| Some((reader.u64()?, reader.u64()?, reader.u64()?)))
        .collect::<Option<Vec<_>>>()?;
    let count = page_count as usize + 1 + rows_len as usize;
    if reader.0.len() != count * ENTRY_BYTES {
        return None;
    }
    let entries: Vec<UnwindRow> = reader
        .0
        .chunks_exact(ENTRY_BYTES)
        .map(|e| UnwindRow {
            pc: u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
            rule: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
        })
        .collect();
    let image = Image {
        layout: Layout {
            first_page,
            page_count,
            rows_len,
            segments,
        },
        entries,
    };
    well_formed(&image).then_some(image)
}

/// Rows sorted and present, and a page index that points within them.
fn well_formed(image: &Image) -> bool {
    let layout = &image.layout;
    let (index, rows) = image.entries.split_at(layout.page_count as usize + 1);
    layout.page_count > 0
        && !rows.is_empty()
        && rows.windows(2).all(|w| w[0].pc < w[1].pc)
        && index.iter().all(|entry| entry.pc < layout.rows_len)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests;
