//! bpfprof: a system-wide sampling profiler for Linux, on eBPF. The
//! `bpfprof` binary is [`main_entry`]; the rest of the public API is what
//! the benchmarks (benches/hot_paths.rs) drive. Everything else is
//! internal (`pub(crate)`).
//!
//! Data flows one way, from the kernel to the files:
//!
//! BPF (`bpf`, the only module that talks to the kernel's BPF side) →
//! drain (`drain`: the counts and stacks of each interval, by map set) →
//! symbolize (`symbolize`: addresses to named frames) → profile model
//! (`profile`; `analysis` of it) → renderers (`output`).
//!
//! Two loops go back into the kernel, both through `bpf`: BPF announces
//! processes (first seen, exec, maps gone stale) on a ring buffer, and
//! `unwind` loads their unwind tables for the BPF stack walk; and with
//! off-CPU time, `blocked` seeds, reads and restarts the pending records
//! of threads still blocked (the `PENDING` map), which `drain` resolves
//! against the stacks it kept.
//!
//! `entry` is the command line: `cli` validates the input first (the
//! machine's limits and the BPF object from `bpf`), `capture` runs the
//! sampling session, `windows` says which profile it adds to (the run's,
//! or continuous mode's open window's, written as it closes), `meta`
//! describes the run, and `output` writes the files; `push` sends each closed
//! window to OTLP and Pyroscope backends from threads of its own; in
//! `bpfprof top`, `live` hands each interval to `top`, the live view. With `-vv`,
//! `bpf` also prints what the BPF programs log (rare failures only). `stop_signals`
//! catches SIGINT, SIGTERM and SIGHUP from the first line on; `child`
//! holds `-- COMMAND` until the sampler is attached. `commands` holds the
//! subcommands that work on saved profiles (`diff`, `report`, reading
//! them through `saved`) or on the machine (`doctor`); `top` is the live
//! full-screen view, fed one interval at a time. `procfs`,
//! `tracefs` and `ownership` read what /proc, tracefs and sudo say.

mod analysis;
mod blocked;
mod bpf;
mod capture;
mod child;
mod cli;
mod commands;
mod drain;
mod entry;
mod fnv;
mod live;
mod meta;
mod output;
mod ownership;
mod private_dir;
mod procfs;
mod profile;
mod push;
mod python;
mod saved;
mod status;
mod stop_signals;
mod symbolize;
mod top;
mod tracefs;
mod untrusted_file;
mod unwind;
mod windows;

pub use crate::{
    drain::{Batch, RawOffCpu, RawSample, RawStack, RawStacks, RawWake},
    entry::main_entry,
    output::{folded, svg},
    profile::{Frame, FrameId, FrameKind, FrameTable, Profile, StackSite},
    symbolize::Symbolizer,
    top::TopBench,
};

#[cfg(test)]
mod module_graph;
