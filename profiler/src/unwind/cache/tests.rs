//! The cache's checks, in a scratch directory (owned by whoever runs the
//! tests, who stands for root).

use std::{
    fs::{self, File},
    os::unix::fs::{DirBuilderExt, PermissionsExt, symlink},
    path::PathBuf,
};

use super::*;
use crate::unwind::{binary::Image, table::tests::rows_of};

struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let base =
            std::env::temp_dir().join(format!("bpfprof-tables-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::DirBuilder::new().mode(0o700).create(&base).unwrap();
        Scratch(base)
    }

    fn cache(&self) -> TableCache {
        TableCache::open(&self.0.join("bpfprof").join("unwind"), owner()).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn owner() -> u32 {
    unsafe { libc::geteuid() }
}

fn libc_image() -> Image {
    let rows = rows_of("/lib/x86_64-linux-gnu/libc.so.6");
    Image::new(&rows, vec![(0x1000, 0x2000, 0)]).unwrap()
}

#[test]
fn a_stored_table_loads_back_whole_and_only_for_its_digest() {
    let scratch = Scratch::new("roundtrip");
    let cache = scratch.cache();
    let image = libc_image();
    cache.store(7, &image);
    assert_eq!(cache.load(7), Some(image));
    assert_eq!(cache.load(8), None, "another binary's digest");
}

#[test]
fn a_damaged_truncated_or_reshaped_file_is_not_used() {
    let scratch = Scratch::new("damaged");
    let cache = scratch.cache();
    let image = libc_image();
    cache.store(7, &image);
    let path = cache.path(7);
    let whole = fs::read(&path).unwrap();
    let mut flipped = whole.clone();
    flipped[whole.len() / 2] ^= 1;
    fs::write(&path, &flipped).unwrap();
    assert_eq!(cache.load(7), None, "one bit flipped");
    fs::write(&path, &whole[..whole.len() - 100]).unwrap();
    assert_eq!(cache.load(7), None, "truncated");
    // Whole and checksummed, but rows out of order: not a table.
    let mut unsorted = image.clone();
    let rows = unsorted.layout.page_count as usize + 1;
    unsorted.entries.swap(rows, rows + 1);
    fs::write(&path, encode(&unsorted, 7)).unwrap();
    assert_eq!(cache.load(7), None, "unsorted rows");
    fs::write(&path, &whole).unwrap();
    assert!(cache.load(7).is_some());
}

#[test]
fn a_link_or_a_file_others_can_write_is_never_used() {
    let scratch = Scratch::new("links");
    let cache = scratch.cache();
    cache.store(7, &libc_image());
    let elsewhere = scratch.0.join("elsewhere");
    fs::rename(cache.path(7), &elsewhere).unwrap();
    symlink(&elsewhere, cache.path(7)).unwrap();
    assert_eq!(cache.load(7), None, "a link");
    // A directory others can write is refused, named.
    let open = scratch.0.join("open");
    fs::create_dir_all(open.join("unwind")).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    match TableCache::open(&open.join("unwind"), owner()) {
        Err(Unusable::Unsafe(problem)) => {
            assert!(problem.contains("can be written by others"), "{problem}")
        }
        _ => panic!("a directory others can write was used"),
    }
}

#[test]
fn the_directory_is_trimmed_to_its_bound_dropping_the_least_lately_used() {
    let scratch = Scratch::new("trim");
    let cache = scratch.cache();
    let image = libc_image();
    for digest in 1..=3 {
        cache.store(digest, &image);
        // Distinct times of use, oldest first.
        let used = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 * digest);
        File::open(cache.path(digest))
            .unwrap()
            .set_modified(used)
            .unwrap();
    }
    // Loading 1 makes it the latest used; 2 is then the oldest.
    assert!(cache.load(1).is_some());
    let one = fs::metadata(cache.path(1)).unwrap().len();
    cache.trim(2 * one);
    assert!(cache.path(1).exists());
    assert!(!cache.path(2).exists(), "the least lately used goes");
    assert!(cache.path(3).exists());
}
