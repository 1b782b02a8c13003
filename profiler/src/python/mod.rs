//! CPython: finding the interpreter in a process and what BPF needs to
//! walk its frames (`process`, from the per-version `offsets`), and naming
//! the frames BPF recorded (`code`: code objects, their names and line
//! tables), all through the process's memory (`memory`).

pub(crate) mod code;
pub(crate) mod lines;
pub(crate) mod memory;
pub(crate) mod names;
pub(crate) mod offsets;
pub(crate) mod process;
pub(crate) mod tracker;
