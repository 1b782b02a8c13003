//! Command-line interface: the clap definitions, and the validation that
//! turns them into a [`Config`] before anything is attached. Every rejected
//! flag becomes one line naming the flag and the problem.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  sudo bpfprof --duration 30 --freq 99        every CPU for 30 s
  sudo bpfprof --pid 1234,5678 --duration 5   only these processes
  sudo bpfprof --output out/ -- ./my-program  a command and its children, until it exits
  sudo bpfprof                                until Ctrl-C (the outputs are still written)
  sudo bpfprof --pid 1234 --off-cpu -d 10     where it runs, and where and why it waits
  sudo bpfprof --pid 1234 --wakers -d 10      ...and which thread ended each wait

Outputs (in --output DIR): on-cpu.folded/.svg, report.json; with --off-cpu also
off-cpu.folded/.svg and wall.folded/.svg; with --wakers off-cpu-wakers.folded/.svg.
The hot-path tables are printed on stdout.";

/// A system-wide sampling profiler for Linux, on eBPF.
#[derive(Parser, Debug)]
#[command(name = "bpfprof", version, after_help = EXAMPLES)]
pub struct Args {
    /// How long to profile, in seconds (also 500ms, 2m). Default: until
    /// Ctrl-C, or until COMMAND exits.
    #[arg(short, long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Samples per second on each CPU.
    #[arg(short = 'F', long, value_name = "HZ", default_value_t = 99)]
    pub freq: u64,

    /// Only profile these processes (comma-separated pids).
    #[arg(
        short,
        long,
        value_name = "PID,...",
        value_delimiter = ',',
        conflicts_with = "command"
    )]
    pub pid: Vec<u32>,

    /// Also record off-CPU time: where threads wait, and why (sleeping,
    /// uninterruptible I/O, preempted), from the scheduler.
    #[arg(long)]
    pub off_cpu: bool,

    /// Also record which thread woke each blocked thread (implies --off-cpu).
    #[arg(long)]
    pub wakers: bool,

    /// Ignore off-CPU intervals shorter than this many microseconds [default: 1].
    #[arg(long, value_name = "US")]
    pub min_block_us: Option<u64>,

    /// Ignore off-CPU intervals longer than this many microseconds.
    #[arg(long, value_name = "US")]
    pub max_block_us: Option<u64>,

    /// Directory for the output files. Default: bpfprof-YYYYmmdd-HHMMSS/.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// How often the kernel maps are drained and symbolized, in seconds.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_duration)]
    pub interval: Duration,

    /// Entries in each stack map (default: scaled to CPUs x freq x
    /// interval, at least 16384). Raise it when the Quality block reports
    /// stack collisions.
    #[arg(long, value_name = "N")]
    pub stack_map_size: Option<u32>,

    /// Distinct (thread, stack) counts held per drain interval (default:
    /// scaled like --stack-map-size, at least 65536).
    #[arg(long, value_name = "N")]
    pub max_stacks: Option<u32>,

    /// Do not show inlined functions as frames of their own.
    #[arg(long)]
    pub no_inline: bool,

    /// Show symbol names as they are in the binary (no demangling).
    #[arg(long)]
    pub raw_names: bool,

    /// Rows in each hot-path table.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,

    /// Load the BPF programs from this object instead of the embedded one.
    #[arg(long, value_name = "PATH")]
    pub bpf_object: Option<PathBuf>,

    /// More detail: map sizes, the BPF verifier log on load failures.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Command to run and profile with its children, until it exits.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Which tasks are sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    AllProcesses,
    Pids(Vec<u32>),
    Command(Vec<OsString>),
}

/// Off-CPU settings, when off-CPU time is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffCpu {
    pub wakers: bool,
    pub min_block_us: u64,
    pub max_block_us: u64,
}

/// Sizes of the BPF maps that hold one drain interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSizes {
    pub stack_map: u32,
    pub max_stacks: u32,
}

impl MapSizes {
    /// Enough for every sample of an interval to have its own stacks, with
    /// room to keep stack-map collisions rare: each sample stores up to two
    /// stacks (user, kernel), and the stack map is a table of buckets.
    pub fn scaled(cpus: u64, freq: u64, interval: Duration) -> MapSizes {
        let samples = (cpus * freq) as f64 * interval.as_secs_f64().max(0.01);
        let scaled = |factor: f64, floor: u32| {
            let wanted = (samples * factor).ceil().min(f64::from(1u32 << 24)) as u32;
            wanted.max(floor).next_power_of_two()
        };
        MapSizes {
            stack_map: scaled(4.0, 16384),
            max_stacks: scaled(2.0, 65536),
        }
    }
}

/// How frames are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Naming {
    pub inline: bool,
    pub demangle: bool,
}

/// A validated run configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    pub duration: Option<Duration>,
    pub freq: u64,
    pub off_cpu: Option<OffCpu>,
    pub interval: Duration,
    pub map_sizes: MapSizes,
    pub naming: Naming,
    pub output_dir: PathBuf,
    pub top: usize,
    pub bpf_object: Option<PathBuf>,
    pub verbose: u8,
}

/// Facts of the machine that flag validation depends on.
pub struct Limits {
    /// `kernel.perf_event_max_sample_rate`.
    pub max_sample_rate: u64,
    pub cpus: u64,
}

impl Limits {
    pub fn of_this_machine() -> Limits {
        let max_sample_rate =
            std::fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(100_000);
        let cpus = aya::util::online_cpus().map_or(1, |c| c.len() as u64);
        Limits {
            max_sample_rate,
            cpus,
        }
    }
}

/// Checks every flag; the error is the one line to print.
pub fn validate(
    args: Args,
    limits: &Limits,
    pid_exists: impl Fn(u32) -> bool,
    default_output: impl FnOnce() -> PathBuf,
) -> Result<Config, String> {
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
    if args.top == 0 {
        return Err("--top must be at least 1".into());
    }
    if let Some(pid) = args.pid.iter().find(|&&pid| pid == 0 || !pid_exists(pid)) {
        return Err(format!("--pid {pid}: no such process"));
    }
    if let Some(path) = &args.bpf_object
        && !path.is_file()
    {
        return Err(format!("--bpf-object {}: no such file", path.display()));
    }
    for (flag, value) in [
        ("--stack-map-size", args.stack_map_size),
        ("--max-stacks", args.max_stacks),
    ] {
        if value.is_some_and(|n| !(1024..=1 << 24).contains(&n)) {
            return Err(format!("{flag} must be between 1024 and {}", 1 << 24));
        }
    }
    let scaled = MapSizes::scaled(limits.cpus, args.freq, args.interval);
    let map_sizes = MapSizes {
        stack_map: args.stack_map_size.unwrap_or(scaled.stack_map),
        max_stacks: args.max_stacks.unwrap_or(scaled.max_stacks),
    };
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
    let output_dir = args.output.unwrap_or_else(default_output);
    Ok(Config {
        target,
        duration: args.duration,
        freq: args.freq,
        off_cpu,
        interval: args.interval,
        map_sizes,
        naming: Naming {
            inline: !args.no_inline,
            demangle: !args.raw_names,
        },
        output_dir,
        top: args.top,
        bpf_object: args.bpf_object,
        verbose: args.verbose,
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
    }))
}

/// Creates the output directory and proves it writable, so a run never
/// ends with nowhere to put its results.
pub fn prepare_output_dir(dir: &Path) -> Result<(), String> {
    let name = dir.display();
    std::fs::create_dir_all(dir).map_err(|e| format!("--output {name}: cannot create: {e}"))?;
    let probe = dir.join(".bpfprof-write-test");
    std::fs::write(&probe, b"").map_err(|e| format!("--output {name}: not writable: {e}"))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Seconds as `10`, `1.5`, `10s`, `500ms` or `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
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
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let args = Args::try_parse_from(std::iter::once("bpfprof").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        validate(
            args,
            &Limits {
                max_sample_rate: 1000,
                cpus: 2,
            },
            |pid| pid == 42,
            || PathBuf::from("default"),
        )
    }

    #[test]
    fn defaults_profile_everything_at_99_hz() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.target, Target::AllProcesses);
        assert_eq!(config.freq, 99);
        assert_eq!(config.interval, Duration::from_secs(1));
        assert_eq!(config.duration, None);
        assert_eq!(config.output_dir, PathBuf::from("default"));
    }

    #[test]
    fn frequency_must_be_within_the_kernel_limit() {
        assert!(parse(&["--freq", "0"]).unwrap_err().contains("--freq 0"));
        let err = parse(&["--freq", "1001"]).unwrap_err();
        assert!(err.contains("between 1 and 1000"), "{err}");
        assert_eq!(parse(&["--freq", "1000"]).unwrap().freq, 1000);
    }

    #[test]
    fn durations_accept_units_and_reject_zero() {
        assert_eq!(
            parse(&["-d", "1.5"]).unwrap().duration,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse(&["-d", "500ms"]).unwrap().duration,
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse(&["-d", "2m"]).unwrap().duration,
            Some(Duration::from_secs(120))
        );
        assert!(parse(&["-d", "0"]).unwrap_err().contains("greater than 0"));
        assert!(
            parse(&["-d", "ten"])
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(parse(&["-d", "-1"]).is_err());
    }

    #[test]
    fn missing_pids_are_named() {
        assert_eq!(
            parse(&["--pid", "42"]).unwrap().target,
            Target::Pids(vec![42])
        );
        let err = parse(&["--pid", "42,43"]).unwrap_err();
        assert_eq!(err, "--pid 43: no such process");
        assert!(parse(&["--pid", "abc"]).is_err());
    }

    #[test]
    fn a_command_after_the_separator_is_the_target() {
        let config = parse(&["--", "sleep", "1"]).unwrap();
        assert_eq!(
            config.target,
            Target::Command(vec!["sleep".into(), "1".into()])
        );
        assert!(parse(&["--pid", "42", "--", "sleep"]).is_err());
    }

    #[test]
    fn off_cpu_settings_are_checked() {
        assert_eq!(parse(&[]).unwrap().off_cpu, None);
        let config = parse(&["--off-cpu"]).unwrap();
        let off = config.off_cpu.unwrap();
        assert_eq!(
            (off.wakers, off.min_block_us, off.max_block_us),
            (false, 1, u64::MAX)
        );
        assert!(
            parse(&["--wakers"]).unwrap().off_cpu.unwrap().wakers,
            "--wakers implies --off-cpu"
        );
        let off = parse(&["--off-cpu", "--min-block-us", "10", "--max-block-us", "20"])
            .unwrap()
            .off_cpu;
        assert_eq!(
            off.map(|o| (o.min_block_us, o.max_block_us)),
            Some((10, 20))
        );
        assert_eq!(
            parse(&["--min-block-us", "5"]).unwrap_err(),
            "--min-block-us needs --off-cpu"
        );
        let err =
            parse(&["--off-cpu", "--min-block-us", "30", "--max-block-us", "20"]).unwrap_err();
        assert!(err.contains("above --max-block-us"), "{err}");
    }

    #[test]
    fn map_sizes_scale_with_the_machine_and_can_be_set() {
        let small = MapSizes::scaled(2, 99, Duration::from_secs(1));
        assert_eq!((small.stack_map, small.max_stacks), (16384, 65536));
        // A busy 64-CPU machine at 99 Hz: 6336 samples a second, each with
        // up to two stacks, in buckets four times as many.
        let big = MapSizes::scaled(64, 99, Duration::from_secs(1));
        assert_eq!((big.stack_map, big.max_stacks), (32768, 65536));
        let config = parse(&["--stack-map-size", "4096", "--max-stacks", "2048"]).unwrap();
        assert_eq!(
            (config.map_sizes.stack_map, config.map_sizes.max_stacks),
            (4096, 2048)
        );
        assert!(
            parse(&["--stack-map-size", "10"])
                .unwrap_err()
                .contains("--stack-map-size")
        );
        let naming = parse(&["--no-inline", "--raw-names"]).unwrap().naming;
        assert_eq!(
            naming,
            Naming {
                inline: false,
                demangle: false
            }
        );
    }

    #[test]
    fn unwritable_output_is_rejected() {
        let err = prepare_output_dir(Path::new("/proc/bpfprof-cannot-exist")).unwrap_err();
        assert!(
            err.starts_with("--output /proc/bpfprof-cannot-exist: cannot create"),
            "{err}"
        );
    }
}
