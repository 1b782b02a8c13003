//! bpfprof: a system-wide sampling profiler for Linux, on eBPF. This is the
//! library the `bpfprof` binary (src/main.rs) and the benchmarks use.
//!
//! Data flows one way: BPF (`bpf`) → drain (`drain`) → symbolize
//! (`symbolize`) → profile model (`profile`, `analysis`) → renderers
//! (`output`); with `-vv`, `bpf_log` prints what the BPF programs log.
//! `capture` runs the loop; `cli` validates the input first,
//! and `bpf_object` the BPF object and the memory its maps would take
//! (`map_memory`); `stop_signals` catches SIGINT, SIGTERM and SIGHUP from
//! the first line of `main` on.
//! `commands` holds the subcommands that work on saved profiles (`diff`,
//! `report`) or on the machine (`doctor`).

pub mod analysis;
pub mod blocked;
pub mod bpf;
pub(crate) mod bpf_log;
pub mod bpf_object;
pub mod capture;
pub mod child;
pub mod cli;
pub mod commands;
pub mod drain;
pub(crate) mod map_memory;
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

use std::time::{SystemTime, UNIX_EPOCH};

/// The run description every output carries, for a configuration.
pub fn run_meta(
    config: &cli::Config,
    started: SystemTime,
    elapsed: std::time::Duration,
) -> meta::RunMeta {
    meta::RunMeta {
        stack_map_size: config.map_sizes.stack_map,
        max_stacks: config.map_sizes.max_stacks,
        ..meta::RunMeta::new(
            config.freq,
            capture::describe_target(&config.target),
            started,
            elapsed,
        )
    }
}

/// An error and its causes on one line, each said once: some errors repeat
/// their source's message in their own.
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(text.as_str()) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// How a configuration's outputs are rendered.
pub fn render_options(config: &cli::Config, started: SystemTime) -> output::Render<'_> {
    output::Render {
        args: &config.render,
        off_cpu: config.off_cpu.is_some(),
        wakers: config.off_cpu.as_ref().is_some_and(|o| o.wakers),
        started_unix_nanos: started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64),
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "parsing the object: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_line_says_each_cause_once() {
        let err = anyhow::Error::new(Repeats(std::io::Error::other("bad section")))
            .context("loading /tmp/x.o");
        assert_eq!(format!("{err:#}").matches("bad section").count(), 2);
        assert_eq!(
            super::error_line(&err),
            "loading /tmp/x.o: parsing the object: bad section"
        );
    }
}
