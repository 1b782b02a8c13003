//! The `bpfprof` command, all of it (src/main.rs only calls
//! [`main_entry`]): parses the command line, dispatches subcommands, and
//! for a profile validates everything before capturing, then writes the
//! outputs and sets the exit status.

use std::{path::PathBuf, process::ExitCode, time::SystemTime};

use crate::{
    bpf::{self, object::ObjectBytes},
    capture, child,
    cli::{self, Cli, Command},
    commands,
    meta::{self, RunMeta},
    output::{self, Render, dir::OutDir, stdout},
    ownership, procfs, stop_signals, top,
};
use clap::{CommandFactory, Parser, error::ErrorKind};

/// Exit code for rejected input, before anything was attached. (1 is for
/// failures: privileges, the kernel, an output that could not be written.)
const EXIT_USAGE: u8 = 2;

/// Runs the `bpfprof` command line; the exit status to end with.
pub fn main_entry() -> ExitCode {
    // First of all, so that no stop signal is lost while starting up.
    stop_signals::install();
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
        Err(err) => return usage_error(&clap_message(&err.to_string())),
    };
    let separator = std::env::args_os().skip(1).any(|a| a == "--");
    let command = match cli.command {
        None => {
            let mut args = cli.profile;
            args.separator = separator;
            return profile(args, false);
        }
        Some(Command::Top(mut args)) => {
            args.separator = separator;
            return profile(*args, true);
        }
        Some(command) => command,
    };
    // The subcommands keep no run to save: a signal ends them as usual.
    stop_signals::restore();
    let result = match command {
        Command::Diff(args) => commands::diff::run(&args),
        Command::Report(args) => commands::report::run(&args),
        Command::Doctor { pid } => commands::doctor::run(pid),
        Command::Completions { shell } => {
            // Rendered first: clap_complete panics when its writer fails.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "bpfprof", &mut script);
            Ok(printed(&script))
        }
        Command::Man => commands::man::page()
            .map_err(anyhow::Error::from)
            .map(|page| printed(&page)),
        Command::Top(_) => unreachable!("handled above"),
    };
    result.unwrap_or_else(|err| {
        // Input errors of the subcommands (a missing file, a bad line) are
        // usage errors: one line, status 2.
        eprintln!("bpfprof: {}", error_line(&err));
        ExitCode::from(EXIT_USAGE)
    })
}

/// `bpfprof [OPTIONS] [-- COMMAND]` and `bpfprof top` (`live`):
/// validate everything, then capture.
fn profile(args: cli::Args, live: bool) -> ExitCode {
    let invoked = SystemTime::now();
    if live && let Err(msg) = top::terminal_ok() {
        return usage_error(&msg);
    }
    let validated = cli::validate(args, &bpf::machine_limits(), procfs::tgid_of, || {
        PathBuf::from(meta::default_output_dir_name(invoked))
    });
    let config = match validated.and_then(|c| if live { cli::for_top(c) } else { Ok(c) }) {
        Ok(config) => config,
        Err(msg) => return usage_error(&msg),
    };
    if let cli::Target::Command(argv) = &config.target
        && let Err(msg) = child::resolve_command(&argv[0])
    {
        return usage_error(&msg);
    }
    let object = match bpf::object::check(&config) {
        Ok(object) => object,
        Err(msg) => return usage_error(&msg),
    };
    if let Err(err) = bpf::preflight() {
        eprintln!("bpfprof: {err}");
        return ExitCode::FAILURE;
    }
    let out = match config.write_outputs.then(|| create_output_dir(&config)) {
        Some(Ok(out)) => Some(out),
        Some(Err(msg)) => return usage_error(&msg),
        None => None,
    };
    match run(&config, out.as_ref(), object) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("bpfprof: {}", error_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The run's output directory, made before anything is attached: the
/// default name is always a new directory; a named one is created or, when
/// it exists, must be empty (or `--force`).
fn create_output_dir(config: &cli::Config) -> Result<OutDir, String> {
    let owner = ownership::invoking_user();
    if config.default_output {
        OutDir::create_new(&config.output_dir, owner).map_err(|e| {
            format!(
                "--output {}: cannot create: {e}",
                config.output_dir.display()
            )
        })
    } else {
        OutDir::named(&config.output_dir, config.force, owner)
    }
}

fn run(
    config: &cli::Config,
    out: Option<&OutDir>,
    object: ObjectBytes,
) -> anyhow::Result<ExitCode> {
    let capture = capture::run(config, out, object)?;
    let Some(out) = out else {
        // `top` without --output: what it showed was the output.
        return Ok(ExitCode::SUCCESS);
    };
    let meta = RunMeta {
        command_exit_status: capture.command_status,
        push: capture.push,
        ..RunMeta::of_run(config, capture.started, capture.elapsed)
    };
    let rendered = output::write_all(
        out,
        &meta,
        &capture.profile,
        &Render::new(config, capture.started),
    );
    if config.verbose > 0 {
        // From the end of sampling: the final drain and symbolization count.
        let ms = capture.stopped.elapsed().as_secs_f64() * 1000.0;
        eprintln!("bpfprof: outputs written in {ms:.0} ms after the capture ended");
        if let Some(kib) = procfs::own_peak_rss_kib() {
            let mib = kib as f64 / 1024.0;
            eprintln!("bpfprof: peak memory {mib:.1} MiB resident (VmHWM)");
        }
    }
    let printed = if config.live {
        eprintln!(
            "bpfprof: wrote {} in {}",
            rendered.written.join(", "),
            out.path().display()
        );
        true
    } else {
        stdout::print(&rendered.stdout)
    };
    // bpfprof's status is about bpfprof; the command's is in report.json.
    if let Some(code) = capture.command_status.filter(|&c| c != 0) {
        eprintln!("bpfprof: the command exited with status {code}");
    }
    let failed = rendered.failed + capture.failed_writes;
    Ok(if failed == 0 && printed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An error and its causes on one line, each said once: some errors repeat
/// their source's message in their own.
fn error_line(err: &anyhow::Error) -> String {
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

/// Prints `text` on stdout: success, or failure when stdout failed.
fn printed(text: &[u8]) -> ExitCode {
    if stdout::print(text) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("bpfprof: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// clap's message as one line, without its `error: ` prefix, usage and
/// tips, but with the lines that complete it: the arguments missing, the
/// values a flag takes.
fn clap_message(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty() && !line.starts_with("Usage:"))
        .collect();
    let line = parts.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
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
    fn clap_messages_keep_what_completes_them() {
        let missing = "error: the following required arguments were not provided:\n  <BEFORE>\n  <AFTER>\n\nUsage: bpfprof diff <BEFORE> <AFTER>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            super::clap_message(missing),
            "the following required arguments were not provided: <BEFORE> <AFTER>"
        );
        let value = "error: invalid value 'bogus' for '--format <LIST>'\n  [possible values: folded, svg]\n\n  tip: a similar value exists: 'svg'\n\nFor more information, try '--help'.\n";
        assert_eq!(
            super::clap_message(value),
            "invalid value 'bogus' for '--format <LIST>' [possible values: folded, svg]"
        );
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
