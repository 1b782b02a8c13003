//! Unwinding user stacks without frame pointers: the tables userspace
//! builds from each binary's `.eh_frame`, for the BPF walk to follow.

pub mod loader;
pub mod table;

pub use loader::{UnwindLoader, UnwindStats};
