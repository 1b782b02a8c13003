//! Unwinding user stacks without frame pointers: the tables userspace
//! builds from each binary's `.eh_frame` (`elf` reads the sections, `table`
//! turns them into rows, `binary` lays the rows out as BPF holds them),
//! read off the capture's loop (`worker`), kept between runs (`cache`), and
//! loaded into BPF for the walk to follow (`loader`, through `bpf`).

mod binary;
pub(crate) mod cache;
mod elf;
pub(crate) mod loader;
pub(crate) mod table;
mod worker;

pub(crate) use loader::UnwindLoader;
pub(crate) use worker::Reply;

use std::sync::Once;

use crate::{cli::Config, private_dir::Unusable};

/// The run's loader, with the table cache --unwind-cache names when it
/// can be used (a warning says why it cannot, once, when it is unsafe).
pub(crate) fn loader_for(config: &Config) -> UnwindLoader {
    let cache = config.unwind_cache.as_deref().and_then(|dir| {
        match cache::TableCache::open(dir, 0) {
            Ok(cache) => Some(cache),
            Err(Unusable::Unsafe(problem)) => {
                static WARNED: Once = Once::new();
                WARNED.call_once(|| {
                    eprintln!(
                        "bpfprof: warning: {problem}: unwind tables are not kept there (--unwind-cache)"
                    );
                });
                None
            }
            Err(Unusable::Unavailable) => None,
        }
    });
    UnwindLoader::new(u64::from(config.unwind_rows), cache)
}
