//! bpfprof: a system-wide sampling profiler for Linux, on eBPF. This is the
//! library the `bpfprof` binary (src/main.rs) and the benchmarks use.
//!
//! Data flows one way: BPF (`bpf`) → drain (`drain`) → symbolize
//! (`symbolize`) → profile model (`profile`, `analysis`) → renderers
//! (`output`). `capture` runs the loop; `cli` validates the input first,
//! and `bpf_object` the BPF object and the memory its maps would take
//! (`map_memory`); `stop_signals` catches SIGINT, SIGTERM and SIGHUP from
//! the first line of `main` on.
//! `commands` holds the subcommands that work on saved profiles (`diff`,
//! `report`) or on the machine (`doctor`).

pub mod analysis;
pub mod blocked;
pub mod bpf;
pub mod capture;
pub mod child;
pub mod cli;
pub mod commands;
pub mod drain;
mod entry;
pub mod meta;
pub mod output;
pub mod ownership;
pub mod procfs;
pub mod profile;
pub mod saved;
pub mod status;
pub mod stop_signals;
pub mod symbolize;
pub mod tracefs;
pub mod unwind;
pub mod windows;

pub use entry::main_entry;
