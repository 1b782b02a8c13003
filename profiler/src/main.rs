//! bpfprof: a system-wide sampling profiler for Linux, on eBPF.
//!
//! Data flows one way: BPF (`bpf`) → drain (`drain`) → symbolize
//! (`symbolize`) → profile model (`profile`, `analysis`) → renderers
//! (`output`). `capture` runs the loop; `cli` validates the input first.
//! `commands` holds the subcommands that work on saved profiles (`diff`,
//! `report`) or on the machine (`doctor`).

mod analysis;
mod blocked;
mod bpf;
mod capture;
mod child;
mod cli;
mod commands;
mod drain;
mod meta;
mod output;
mod ownership;
mod procfs;
mod profile;
mod saved;
mod status;
mod symbolize;
mod tracefs;
mod windows;

use std::{
    io::Write,
    path::PathBuf,
    process::ExitCode,
    time::{SystemTime, UNIX_EPOCH},
};

use clap::{CommandFactory, Parser, error::ErrorKind};
use cli::{Cli, Command};

/// Exit code for rejected input, before anything was attached.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
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
    let result = match cli.command {
        None => return profile(cli.profile),
        Some(Command::Diff(args)) => commands::diff::run(&args),
        Some(Command::Report(args)) => commands::report::run(&args),
        Some(Command::Doctor { pid }) => commands::doctor::run(pid),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "bpfprof",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man) => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(anyhow::Error::from)
                .and_then(|()| Ok(std::io::stdout().write_all(&page)?))
                .map(|()| ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|err| {
        // Input errors of the subcommands (a missing file, a bad line) are
        // usage errors: one line, status 2.
        eprintln!("bpfprof: {err:#}");
        ExitCode::from(EXIT_USAGE)
    })
}

/// `bpfprof [OPTIONS] [-- COMMAND]`: validate everything, then capture.
fn profile(args: cli::Args) -> ExitCode {
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
    let meta = run_meta(config, capture.started, capture.elapsed);
    let rendered = output::write_all(
        &config.output_dir,
        &meta,
        &capture.profile,
        &render_options(config, capture.started),
    )?;
    ownership::give_to_invoking_user(&config.output_dir);
    if config.verbose > 0 {
        // From the end of sampling: the final drain and symbolization count.
        let ms = capture.stopped.elapsed().as_secs_f64() * 1000.0;
        eprintln!("bpfprof: outputs written in {ms:.0} ms after the capture ended");
    }
    print!("{}", rendered.stdout);
    if let Some(code) = capture.command_status.filter(|&c| c != 0) {
        eprintln!("bpfprof: the command exited with status {code}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_meta(
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

pub(crate) fn render_options(config: &cli::Config, started: SystemTime) -> output::Render<'_> {
    output::Render {
        args: &config.render,
        off_cpu: config.off_cpu.is_some(),
        wakers: config.off_cpu.as_ref().is_some_and(|o| o.wakers),
        started_unix_nanos: started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64),
    }
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
