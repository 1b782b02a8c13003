//! Unwinding user stacks without frame pointers: the tables userspace
//! builds from each binary's `.eh_frame` (`table`, `binary`), and their
//! loading into BPF for the walk to follow (`loader`, through `bpf`).

mod binary;
pub(crate) mod loader;
pub(crate) mod table;

pub(crate) use loader::UnwindLoader;
