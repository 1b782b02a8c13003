//! Validation: from parsed flags to a [`Config`], one clear line per
//! problem.

use std::{path::PathBuf, time::Duration};

use super::{Args, Config, Limits, MapSizes, MinWidth, Naming, OffCpu, Target, Unwind};

/// Checks every flag; the error is the one line to print. `tgid_of` gives
/// the process a task id belongs to (itself for a process), None when there
/// is no such task.
pub(crate) fn validate(
    args: Args,
    limits: &Limits,
    tgid_of: impl Fn(u32) -> Option<u32>,
    default_output: impl FnOnce() -> PathBuf,
) -> Result<Config, String> {
    check_times(&args, limits)?;
    check_pids(&args.pid, tgid_of)?;
    if args.separator && args.command.is_empty() {
        return Err("`--` must be followed by the COMMAND to run".into());
    }
    let map_sizes = map_sizes(&args, limits)?;
    let off_cpu = off_cpu_settings(&args)?;
    let target = if !args.command.is_empty() {
        Target::Command(args.command)
    } else if !args.pid.is_empty() {
        let mut pids = args.pid;
        pids.sort_unstable();
        pids.dedup();
        Target::Pids(pids)
    } else {
        Target::AllProcesses
    };
    let push = super::push_args::push_config(args.push)?;
    let window = match (&push, args.window) {
        (Some(_), None) => Some(super::push_args::DEFAULT_PUSH_WINDOW),
        (_, window) => window,
    };
    let window_files = window.is_some() && (push.is_none() || args.output.is_some());
    let default_output_dir = args.output.is_none();
    let output_dir = args.output.unwrap_or_else(default_output);
    Ok(Config {
        target,
        duration: args.duration,
        freq: args.freq,
        off_cpu,
        interval: args.interval,
        map_sizes,
        unwind: args.unwind,
        unwind_rows: if args.unwind == Unwind::Fp {
            1
        } else {
            args.unwind_rows.max(1)
        },
        unwind_cache: unwind_cache(args.unwind_cache)?,
        naming: Naming {
            inline: !args.no_inline,
            demangle: !args.raw_names,
        },
        output_dir,
        default_output: default_output_dir,
        force: args.force,
        render: args.render,
        window,
        window_files,
        keep: args.keep,
        push,
        bpf_object: args.bpf_object,
        python: !args.no_python,
        live: false,
        write_outputs: true,
        verbose: args.verbose,
    })
}

/// `bpfprof top`'s settings from a validated capture's: every interval is
/// a window, shown and not written; the outputs only with --output.
pub(crate) fn for_top(mut config: Config) -> Result<Config, String> {
    // Pushing sets a window of its own: it is named first.
    if config.push.is_some() {
        return Err("--otlp and --pyroscope are for a capture, not for bpfprof top".into());
    }
    if config.window.is_some() || config.keep.is_some() {
        return Err(
            "--window and --keep are for a capture: bpfprof top shows every interval".into(),
        );
    }
    if config.render.json {
        return Err(
            "--json: bpfprof top's output is the screen; give -o DIR for report.json".into(),
        );
    }
    config.window = Some(config.interval);
    config.window_files = false;
    config.live = true;
    config.write_outputs = !config.default_output;
    Ok(config)
}

/// The rate, the times and the counts of the run and its outputs.
fn check_times(args: &Args, limits: &Limits) -> Result<(), String> {
    if args.freq == 0 || args.freq > limits.max_sample_rate {
        return Err(format!(
            "--freq {} is out of range: it must be between 1 and {} (kernel.perf_event_max_sample_rate)",
            args.freq, limits.max_sample_rate
        ));
    }
    if args.duration.is_some_and(|d| d.is_zero()) {
        return Err("--duration must be greater than 0".into());
    }
    if args.interval < Duration::from_millis(10) {
        return Err("--interval must be at least 10ms".into());
    }
    if args.render.top == 0 {
        return Err("--top must be at least 1".into());
    }
    if let Some(window) = args.window
        && window < args.interval
    {
        return Err(format!(
            "--window {:.1}s is shorter than --interval {:.1}s",
            window.as_secs_f64(),
            args.interval.as_secs_f64()
        ));
    }
    if args.keep == Some(0) {
        return Err("--keep must be at least 1".into());
    }
    Ok(())
}

/// Every `--pid` is a live process, not one of its threads.
fn check_pids(pids: &[u32], tgid_of: impl Fn(u32) -> Option<u32>) -> Result<(), String> {
    for &pid in pids {
        match (pid, tgid_of(pid)) {
            (0, _) | (_, None) => return Err(format!("--pid {pid}: no such process")),
            // BPF filters by process: a thread's id would match nothing.
            (_, Some(tgid)) if tgid != pid => {
                return Err(format!(
                    "--pid {pid} is a thread of process {tgid}; use --pid {tgid}"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The map sizes given, or scaled to the machine and the rate.
fn map_sizes(args: &Args, limits: &Limits) -> Result<MapSizes, String> {
    for (flag, value) in [
        ("--stack-map-size", args.stack_map_size),
        ("--max-stacks", args.max_stacks),
    ] {
        if value.is_some_and(|n| !(1024..=1 << 24).contains(&n)) {
            return Err(format!("{flag} must be between 1024 and {}", 1 << 24));
        }
    }
    let scaled = MapSizes::scaled(limits.cpus, args.freq, args.interval);
    Ok(MapSizes {
        stack_map: args.stack_map_size.unwrap_or(scaled.stack_map),
        max_stacks: args.max_stacks.unwrap_or(scaled.max_stacks),
    })
}

fn off_cpu_settings(args: &Args) -> Result<Option<OffCpu>, String> {
    if !(args.off_cpu || args.wakers) {
        if args.min_block_us.is_some() {
            return Err("--min-block-us needs --off-cpu".into());
        }
        if args.max_block_us.is_some() {
            return Err("--max-block-us needs --off-cpu".into());
        }
        if args.no_stack_reuse {
            return Err("--no-stack-reuse needs --off-cpu".into());
        }
        return Ok(None);
    }
    let min_block_us = args.min_block_us.unwrap_or(1);
    let max_block_us = args.max_block_us.unwrap_or(u64::MAX);
    if min_block_us > max_block_us {
        return Err(format!(
            "--min-block-us {min_block_us} is above --max-block-us {max_block_us}"
        ));
    }
    Ok(Some(OffCpu {
        wakers: args.wakers,
        min_block_us,
        max_block_us,
        reuse_stacks: !args.no_stack_reuse,
    }))
}

/// A flame graph's smallest width: pixels, or a percentage with `%`; a
/// number, 0 or more (an infinite one would leave every function out).
pub(crate) fn parse_min_width(text: &str) -> Result<MinWidth, String> {
    let (number, unit): (_, fn(f64) -> MinWidth) = match text.trim().strip_suffix('%') {
        Some(percent) => (percent, MinWidth::Percent),
        None => (text.trim(), MinWidth::Pixels),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(unit(n)),
        _ => Err(format!(
            "`{text}` is not a width: pixels (a number, 0 or more, e.g. 0.1) or a percentage (e.g. 0.5%)"
        )),
    }
}

/// Seconds as `10`, `1.5`, `10s`, `500ms` or `2m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 10, 1.5, 500ms or 2m)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!(
            "`{text}` is not a duration (try 10, 1.5, 500ms or 2m)"
        ));
    }
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests;

/// --unwind-cache: `none`, or an absolute directory (a relative one would
/// depend on where root happened to start bpfprof).
fn unwind_cache(dir: PathBuf) -> Result<Option<PathBuf>, String> {
    if dir.as_os_str() == "none" {
        return Ok(None);
    }
    if !dir.is_absolute() || dir.parent().is_none_or(|p| p.parent().is_none()) {
        return Err(format!(
            "--unwind-cache {}: must be `none` or an absolute path below a directory, such as /var/cache/bpfprof/unwind",
            dir.display()
        ));
    }
    Ok(Some(dir))
}
