//! Command-line interface: the clap definitions (this file), and the
//! validation that turns them into a [`Config`] before anything is attached
//! (`validate`). Every rejected flag becomes one line naming the flag and
//! the problem.

mod endpoint;
mod push_args;
mod validate;

pub(crate) use endpoint::{Backend, Endpoint};
pub(crate) use push_args::{PushArgs, PushConfig};
pub(crate) use validate::{for_top, parse_duration, parse_min_width, validate};

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};

/// The examples, one to a line: --help (indented) and the man page show
/// them as written.
pub(crate) const EXAMPLES: &str = "\
sudo bpfprof --duration 30 --freq 99        every CPU for 30 s
sudo bpfprof --pid 1234,5678 --duration 5   only these processes
sudo bpfprof --output out/ -- ./my-program  a command and its children, until it exits
sudo bpfprof                                until Ctrl-C (the outputs are still written)
sudo bpfprof --pid 1234 --off-cpu -d 10     where it runs, and where and why it waits
sudo bpfprof --pid 1234 --wakers -d 10      ...and which thread ended each wait

sudo bpfprof --window 60 --keep 24 -o /var/tmp/prof   continuous: a profile a minute
sudo bpfprof --freq 19 --otlp http://localhost:4318   continuous, to an OpenTelemetry Collector
sudo bpfprof --pyroscope http://pyroscope:4040        continuous, to Grafana Pyroscope
sudo bpfprof top --pid 1234                      live: where it spends its time now (q quits)
sudo bpfprof -d 10 --format pprof,speedscope     for go tool pprof / speedscope.app
sudo bpfprof -d 10 --json | jq .hot_functions    the report as JSON on stdout
bpfprof diff before/ after/                      what got slower, what got faster
bpfprof report bpfprof-20260101-120000/ --top 50 re-render a saved run (into DIR-report/)
bpfprof doctor --pid 1234                        is this machine (and pid) ready?";

/// What a run writes, after the examples in --help and the man page.
pub(crate) const OUTPUTS: &str = "\
Outputs (in --output DIR): on-cpu.folded/.svg, report.json, profile.pb.gz; with
--off-cpu also off-cpu.folded/.svg and wall.folded/.svg; with --wakers
off-cpu-wakers.folded/.svg; speedscope.json on request. The hot-path tables,
call paths and recommendations are printed on stdout.";

fn after_help() -> String {
    let examples: Vec<String> = EXAMPLES
        .lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("  {l}")
            }
        })
        .collect();
    format!("Examples:\n{}\n\n{OUTPUTS}", examples.join("\n"))
}

/// A system-wide sampling profiler for Linux, on eBPF.
#[derive(Parser, Debug)]
#[command(name = "bpfprof", version, after_help = after_help(), args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) profile: Args,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Compare two profiles: a differential flame graph and the functions
    /// that grew, shrank, appeared and vanished.
    Diff(DiffArgs),
    /// Re-render the tables and graphs of a saved output directory.
    Report(ReportArgs),
    /// Check that this machine (and a target process) can be profiled well.
    Doctor {
        /// Also check this process's binaries for symbols, frame pointers
        /// and unwind tables.
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
    },
    /// A live view of where the machine spends its time, refreshed every
    /// interval (q quits); with -o DIR, the usual outputs when it ends.
    Top(Box<Args>),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `bpfprof man > bpfprof.1`.
    Man,
}

#[derive(clap::Args, Debug)]
pub(crate) struct DiffArgs {
    /// The baseline: a folded file or a bpfprof output directory.
    pub(crate) base: PathBuf,
    /// The profile to compare with it, of the same kind.
    pub(crate) new: PathBuf,
    /// Where to write diff.svg and diff.folded [default: the current directory].
    #[arg(short, long, value_name = "DIR")]
    pub(crate) output: Option<PathBuf>,
    /// Smallest change, in points of the total, worth listing.
    #[arg(long, value_name = "POINTS", default_value_t = 1.0)]
    pub(crate) threshold: f64,
    /// Rows in each list.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) top: usize,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ReportArgs {
    /// A directory bpfprof wrote; it is only read.
    pub(crate) dir: PathBuf,
    /// Where to write the new files [default: a new directory DIR-report].
    #[arg(short, long, value_name = "DIR")]
    pub(crate) output: Option<PathBuf>,
    /// Write into an --output directory that already holds files.
    #[arg(long, requires = "output")]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) render: RenderArgs,
}

/// What to render, for a run and for `report`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RenderArgs {
    /// Rows in each hot-path table.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) top: usize,

    /// Which files to write (comma-separated): folded, svg, json, pprof,
    /// speedscope.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "folded,svg,json,pprof"
    )]
    pub(crate) format: Vec<Format>,

    /// Print report.json on stdout instead of the tables (for scripts).
    #[arg(long)]
    pub(crate) json: bool,

    /// Leave out of flame graphs the functions narrower than this: pixels
    /// of the 1200-pixel graph, as flamegraph.pl's --minwidth, or a share
    /// of all samples with `%` (e.g. 0.5%).
    #[arg(long, value_name = "PX", default_value = "0.1", value_parser = parse_min_width)]
    pub(crate) min_width: MinWidth,
}

/// --min-width, in the unit it was given in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum MinWidth {
    Pixels(f64),
    Percent(f64),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unwind {
    Auto,
    Fp,
    Dwarf,
}

impl Unwind {
    /// The BPF side's `unwind_mode::*`.
    pub(crate) fn mode(self) -> u32 {
        use profiler_common::unwind_mode;
        match self {
            Unwind::Auto => unwind_mode::AUTO,
            Unwind::Fp => unwind_mode::FP,
            Unwind::Dwarf => unwind_mode::DWARF,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Folded,
    Svg,
    Json,
    Pprof,
    Speedscope,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// How long to profile, in seconds (also 500ms, 2m). Default: until
    /// Ctrl-C, or until COMMAND exits.
    #[arg(short, long, value_name = "SECS", value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,

    /// Samples per second on each CPU.
    #[arg(short = 'F', long, value_name = "HZ", default_value_t = 99)]
    pub(crate) freq: u64,

    /// Only profile these processes (comma-separated pids, not thread ids).
    #[arg(
        short,
        long,
        value_name = "PID,...",
        value_delimiter = ',',
        conflicts_with = "command"
    )]
    pub(crate) pid: Vec<u32>,

    /// Also record off-CPU time: where threads wait, and why (sleeping,
    /// uninterruptible I/O, preempted), from the scheduler.
    #[arg(long)]
    pub(crate) off_cpu: bool,

    /// Also record which thread woke each blocked thread (implies --off-cpu).
    #[arg(long)]
    pub(crate) wakers: bool,

    /// Ignore off-CPU intervals shorter than this many microseconds [default: 1].
    #[arg(long, value_name = "US")]
    pub(crate) min_block_us: Option<u64>,

    /// Ignore off-CPU intervals longer than this many microseconds.
    #[arg(long, value_name = "US")]
    pub(crate) max_block_us: Option<u64>,

    /// Walk both stacks at every switch instead of reusing the stacks found
    /// when a thread last blocked at an identical site (same registers,
    /// frame record, syscall and arguments; checked by periodic full walks).
    /// Exact by construction, at about 3x the cost per context switch.
    #[arg(long)]
    pub(crate) no_stack_reuse: bool,

    /// Directory for the output files, created by bpfprof; an existing one
    /// must be empty. Default: a new bpfprof-YYYYmmdd-HHMMSS/ (with -1,
    /// -2... when that name is taken).
    #[arg(short, long, value_name = "DIR")]
    pub(crate) output: Option<PathBuf>,

    /// Write into an --output directory that already holds files (files of
    /// the same names are replaced; links in it are never followed).
    #[arg(long, requires = "output")]
    pub(crate) force: bool,

    /// How often the kernel maps are drained and symbolized, in seconds.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_duration)]
    pub(crate) interval: Duration,

    /// Distinct stacks each stack map (kernel, user) holds per drain
    /// interval; allocated as used (default: scaled to CPUs x freq x
    /// interval, at least 16384). Raise it when the Quality block reports
    /// a full stack map.
    #[arg(long, value_name = "N")]
    pub(crate) stack_map_size: Option<u32>,

    /// Distinct (thread, stack) counts held per drain interval (default:
    /// scaled like --stack-map-size, at least 65536).
    #[arg(long, value_name = "N")]
    pub(crate) max_stacks: Option<u32>,

    /// How user stacks are walked: `auto` follows each binary's unwind
    /// tables (.eh_frame) where it has them and frame pointers elsewhere;
    /// `fp` uses frame pointers only; `dwarf` unwind tables only.
    #[arg(long, value_enum, value_name = "HOW", default_value = "auto")]
    pub(crate) unwind: Unwind,

    /// Unwind-table rows BPF can hold, for all binaries together (8 bytes
    /// each, taken as binaries are met; the largest binaries, such as
    /// LLVM, need 1.5 million). Binaries that do not fit are walked by
    /// frame pointers; -v and the Quality block name them.
    #[arg(long, value_name = "N", default_value_t = 1 << 24)]
    pub(crate) unwind_rows: u32,

    /// Where unwind tables are kept between runs, by build id, so a binary
    /// is parsed once (root's alone, bounded in size); `none` keeps none.
    #[arg(long, value_name = "DIR", default_value = "/var/cache/bpfprof/unwind")]
    pub(crate) unwind_cache: PathBuf,

    /// Do not show inlined functions as frames of their own.
    #[arg(long)]
    pub(crate) no_inline: bool,

    /// Show symbol names as they are in the binary (no demangling).
    #[arg(long)]
    pub(crate) raw_names: bool,

    /// Do not walk interpreters' frames (Python): their processes keep
    /// their native frames only, as a native profiler shows them.
    #[arg(long)]
    pub(crate) no_python: bool,

    #[command(flatten)]
    pub(crate) render: RenderArgs,

    /// Continuous mode: cut the run into windows of this length; each one's
    /// files go to DIR/windows/NNNNNN-<start>/ as it closes (when pushing:
    /// default 15 s, and window files only with --output).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub(crate) window: Option<Duration>,

    /// Keep only the last N windows.
    #[arg(long, value_name = "N", requires = "window")]
    pub(crate) keep: Option<usize>,

    #[command(flatten)]
    pub(crate) push: PushArgs,

    /// Load the BPF programs from this object instead of the embedded one.
    #[arg(long, value_name = "PATH")]
    pub(crate) bpf_object: Option<PathBuf>,

    /// More detail: map sizes, the BPF verifier log on load failures;
    /// twice (-vv), also what the BPF programs log (unwind steps that fail,
    /// refused map updates).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Command to run and profile with its children, until it exits.
    #[arg(last = true, value_name = "COMMAND")]
    pub(crate) command: Vec<OsString>,

    /// Whether the command line had a `--` (clap gives an empty COMMAND
    /// either way): set by the caller, from the raw arguments.
    #[arg(skip)]
    pub(crate) separator: bool,
}

/// Which tasks are sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    AllProcesses,
    Pids(Vec<u32>),
    Command(Vec<OsString>),
}

/// Off-CPU settings, when off-CPU time is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffCpu {
    pub(crate) wakers: bool,
    pub(crate) min_block_us: u64,
    pub(crate) max_block_us: u64,
    /// Reuse stack ids at repeated block sites (off with --no-stack-reuse).
    pub(crate) reuse_stacks: bool,
}

/// Sizes of the BPF maps that hold one drain interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MapSizes {
    pub(crate) stack_map: u32,
    pub(crate) max_stacks: u32,
}

impl MapSizes {
    /// Enough for every sample of an interval to have its own stacks (each
    /// sample stores up to two, kernel and user, one in each map), with
    /// room for an interval that runs long. The maps allocate as used, so
    /// the room costs nothing until it is needed.
    pub(crate) fn scaled(cpus: u64, freq: u64, interval: Duration) -> MapSizes {
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
pub(crate) struct Naming {
    pub(crate) inline: bool,
    pub(crate) demangle: bool,
}

/// A validated run configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) target: Target,
    pub(crate) duration: Option<Duration>,
    pub(crate) freq: u64,
    pub(crate) off_cpu: Option<OffCpu>,
    pub(crate) interval: Duration,
    pub(crate) map_sizes: MapSizes,
    pub(crate) unwind: Unwind,
    /// Unwind-table rows of all binaries together (1 with `--unwind fp`).
    pub(crate) unwind_rows: u32,
    /// --unwind-cache; None for `none`.
    pub(crate) unwind_cache: Option<PathBuf>,
    pub(crate) naming: Naming,
    pub(crate) output_dir: PathBuf,
    /// `output_dir` is bpfprof's default name, taken with a suffix when
    /// it exists; otherwise it was named with --output.
    pub(crate) default_output: bool,
    /// --force: an existing --output directory may hold files.
    pub(crate) force: bool,
    pub(crate) render: RenderArgs,
    pub(crate) window: Option<Duration>,
    /// Each window's files are written under DIR/windows/ (not when
    /// pushing without --output).
    pub(crate) window_files: bool,
    pub(crate) keep: Option<usize>,
    /// Backends each window is sent to.
    pub(crate) push: Option<PushConfig>,
    pub(crate) bpf_object: Option<PathBuf>,
    /// Walk Python processes' frames (off with --no-python).
    pub(crate) python: bool,
    /// `bpfprof top`: each interval is shown live.
    pub(crate) live: bool,
    /// The outputs are written when the run ends (not by `top` without
    /// --output).
    pub(crate) write_outputs: bool,
    pub(crate) verbose: u8,
}

/// Facts of the machine that flag validation depends on (read by
/// `bpf::machine_limits`).
pub(crate) struct Limits {
    /// `kernel.perf_event_max_sample_rate`.
    pub(crate) max_sample_rate: u64,
    pub(crate) cpus: u64,
}
