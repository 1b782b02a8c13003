//! The `bpfprof` binary: everything it does is in the library (see
//! `profiler::main_entry`), so that the library exports nothing else but
//! what the benchmarks use.

fn main() -> std::process::ExitCode {
    profiler::main_entry()
}
