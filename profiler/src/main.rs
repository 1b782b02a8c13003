//! bpfprof: a system-wide sampling profiler for Linux, on eBPF.
//!
//! Data flows one way: BPF (`bpf`) → drain (`drain`) → symbolize
//! (`symbolize`) → profile model (`profile`, `analysis`) → renderers
//! (`output`). `capture` runs the loop; `cli` validates the input first.

mod analysis;
mod blocked;
mod bpf;
mod capture;
mod child;
mod cli;
mod drain;
mod meta;
mod output;
mod procfs;
mod profile;
mod symbolize;
mod tracefs;

use std::{path::PathBuf, process::ExitCode, time::SystemTime};

use clap::{Parser, error::ErrorKind};

/// Exit code for rejected input, before anything was attached.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = match cli::Args::try_parse() {
        Ok(args) => args,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => return usage_error(&first_line(&err.to_string())),
    };
    let invoked = SystemTime::now();
    let config = match cli::validate(
        args,
        &cli::Limits::of_this_machine(),
        procfs::exists,
        || PathBuf::from(meta::default_output_dir_name(invoked)),
    ) {
        Ok(config) => config,
        Err(msg) => return usage_error(&msg),
    };
    if let cli::Target::Command(argv) = &config.target
        && child::resolve_command(&argv[0]).is_none()
    {
        return usage_error(&format!("{}: command not found", argv[0].to_string_lossy()));
    }
    if let Err(err) = bpf::preflight() {
        eprintln!("bpfprof: {err}");
        return ExitCode::FAILURE;
    }
    if let Err(msg) = cli::prepare_output_dir(&config.output_dir) {
        return usage_error(&msg);
    }
    match run(&config) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("bpfprof: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &cli::Config) -> anyhow::Result<ExitCode> {
    let capture = capture::run(config)?;
    let meta = meta::RunMeta {
        stack_map_size: config.map_sizes.stack_map,
        max_stacks: config.map_sizes.max_stacks,
        ..meta::RunMeta::new(
            config.freq,
            capture::describe_target(&config.target),
            capture.started,
            capture.elapsed,
        )
    };
    let tables = output::write_all(&config.output_dir, &meta, &capture, config.top)?;
    print!("{tables}");
    if let Some(code) = capture.command_status.filter(|&c| c != 0) {
        eprintln!("bpfprof: the command exited with status {code}");
    }
    Ok(ExitCode::SUCCESS)
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("bpfprof: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// clap's message without its `error: ` prefix, usage and tips.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}
