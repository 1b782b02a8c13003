//! The only door to the kernel's BPF side: checking the machine can run
//! it, the BPF object and the memory its maps take (`object`,
//! `map_memory`), loading it with its globals set, attaching the programs
//! (`attach`), flipping the active map set, reading the loss counters, and
//! typed access to the maps the other modules read and write (`maps`,
//! `process_events`), with the batched map syscalls aya does not wrap
//! (`batch`). No other module uses aya; every map and global is named by
//! its constant in `profiler_common::names`. Nothing here interprets a
//! stack.

mod attach;
mod batch;
pub(crate) mod btf;
pub(crate) mod log;
pub(crate) mod map_memory;
mod maps;
pub(crate) mod object;
mod process_events;

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, PerCpuArray, RingBuf},
    util::online_cpus,
};
use profiler_common::{Loss, names};

use self::map_memory::{Kind, MapCost, Shape};
pub(crate) use self::{
    maps::UnwindTable,
    process_events::{ProcessEvents, PythonCodeEvents},
};
use crate::{
    cli::{Config, Limits, Target},
    tracefs,
};

const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
const CAP_SYS_ADMIN: u32 = 21;

/// Checks privileges and kernel support before anything is loaded, so each
/// missing piece is named with its fix.
pub(crate) fn preflight() -> Result<()> {
    let caps = effective_capabilities();
    let has = |cap: u32| caps & (1 << cap) != 0;
    if !(has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) {
        bail!("bpfprof needs root (or CAP_BPF and CAP_PERFMON): run it with sudo");
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!(
            "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): bpfprof needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
        );
    }
    Ok(())
}

/// The offsets in `task_struct` of `self_exec_id` and `thread.fsbase`,
/// from the kernel's BTF; 0 for one not found (said with -v).
fn task_offsets(verbose: bool) -> (u32, u32) {
    let types = btf::KernelTypes::load();
    let offset = |path: &[&str], without: &str| {
        let found = types
            .as_ref()
            .map_err(|e| anyhow!("{e:#}"))
            .and_then(|types| types.member_offset("task_struct", path));
        found.unwrap_or_else(|err| {
            if verbose {
                eprintln!("bpfprof: {without}: {err:#}");
            }
            0
        })
    };
    (
        offset(&["self_exec_id"], "stacks are not told apart by exec"),
        offset(&["thread", "fsbase"], "no Python frames"),
    )
}

/// Facts of the machine that flag validation depends on.
pub(crate) fn machine_limits() -> Limits {
    let max_sample_rate = std::fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100_000);
    Limits {
        max_sample_rate,
        cpus: online_cpu_count(),
    }
}

/// CPUs online now (1 when that cannot be read).
fn online_cpu_count() -> u64 {
    online_cpus().map_or(1, |c| c.len() as u64)
}

/// Reads kernel addresses in /proc/kallsyms whatever kptr_restrict's 0 or 1.
pub(crate) const CAP_SYSLOG: u32 = 34;

/// Whether this process holds capability `cap` (a `CAP_*` number).
pub(crate) fn has_capability(cap: u32) -> bool {
    effective_capabilities() & (1 << cap) != 0
}

fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .unwrap_or(0)
}

/// The loaded BPF object and its attachments; dropping it detaches all.
pub(crate) struct Collector {
    ebpf: Ebpf,
    verbose: bool,
    /// Keeps the kernel's BPF run-time statistics on while held (-v).
    _stats: Option<std::os::fd::OwnedFd>,
    /// Prints the programs' log records while held (-vv).
    _log: Option<log::BpfLog>,
    follow_forks: bool,
    off_cpu: bool,
    wakers: bool,
}

impl Collector {
    /// Loads `object` (as `object::check` returned it) with the run's
    /// sizes and settings.
    pub(crate) fn load(config: &Config, object: object::ObjectBytes) -> Result<Collector> {
        let follow_forks = matches!(config.target, Target::Command(_));
        let self_tgid = std::process::id();
        let filter_tgids = u32::from(config.target != Target::AllProcesses);
        tracefs::ensure_mounted()?;
        let offset = |event: &str, field: &str| tracefs::field_offset("sched", event, field);
        let fork_child_pid = if follow_forks {
            offset("sched_process_fork", "child_pid")?
        } else {
            0
        };
        let (prev_state, next_pid, waking_pid) = if config.off_cpu.is_some() {
            (
                offset("sched_switch", "prev_state")?,
                offset("sched_switch", "next_pid")?,
                offset("sched_waking", "pid")?,
            )
        } else {
            (0, 0, 0)
        };
        let off_cpu = config.off_cpu.clone();
        let (min_block_us, max_block_us, wakers, reuse) =
            off_cpu.as_ref().map_or((0, 0, false, false), |o| {
                (o.min_block_us, o.max_block_us, o.wakers, o.reuse_stacks)
            });
        let reuse_stacks = u32::from(reuse);
        let unwind_mode = config.unwind.mode();
        let record_wakers = u32::from(wakers);
        // Without it every stack is of image 0, and a stack walked before
        // an exec but drained after it is named by the new image.
        // Without this one no Python frames are walked.
        let (exec_id_offset, fsbase_offset) = task_offsets(config.verbose > 0);
        let mut loader = EbpfLoader::new();
        for sizing in map_memory::sizing(config) {
            loader.map_max_entries(sizing.map, sizing.entries);
        }
        loader
            .override_global(names::SELF_TGID, &self_tgid, true)
            .override_global(names::FILTER_TGIDS, &filter_tgids, true)
            .override_global(names::FORK_CHILD_PID_OFFSET, &fork_child_pid, true)
            .override_global(names::SWITCH_PREV_STATE_OFFSET, &prev_state, true)
            .override_global(names::SWITCH_NEXT_PID_OFFSET, &next_pid, true)
            .override_global(names::WAKING_PID_OFFSET, &waking_pid, true)
            .override_global(names::MIN_BLOCK_US, &min_block_us, true)
            .override_global(names::MAX_BLOCK_US, &max_block_us, true)
            .override_global(names::RECORD_WAKERS, &record_wakers, true)
            .override_global(names::REUSE_STACKS, &reuse_stacks, true)
            .override_global(names::UNWIND_MODE, &unwind_mode, true)
            .override_global(names::TASK_EXEC_ID_OFFSET, &exec_id_offset, true)
            .override_global(names::TASK_FSBASE_OFFSET, &fsbase_offset, true);
        log::configure(&mut loader, config.verbose);
        let Some(object) = object else {
            bail!(
                "this bpfprof was built without its BPF object: build it with `cargo xtask build`, or pass --bpf-object PATH"
            );
        };
        let mut ebpf = loader.load(&object).context("loading the BPF object")?;
        let log = log::start(&mut ebpf, config.verbose)?;
        // Statistics cost a clock read per program run: only with -v.
        let stats = (config.verbose > 0)
            .then(|| aya::sys::enable_stats(aya::sys::Stats::RunTime).ok())
            .flatten();
        Ok(Collector {
            ebpf,
            verbose: config.verbose > 0,
            _stats: stats,
            _log: log,
            follow_forks,
            off_cpu: off_cpu.is_some(),
            wakers,
        })
    }

    /// Adds a process to the BPF-side filter.
    pub(crate) fn want_tgid(&mut self, tgid: u32) -> Result<()> {
        let mut wanted: HashMap<_, u32, u8> =
            HashMap::try_from(self.map_mut(names::WANTED_TGIDS)?)?;
        wanted
            .insert(tgid, 1, 0)
            .with_context(|| format!("adding pid {tgid} to the filter"))
    }

    /// The ring buffer of process events; can be taken once.
    pub(crate) fn take_process_events(&mut self) -> Result<ProcessEvents> {
        let map = self.ebpf.take_map(names::PROCESS_EVENTS).with_context(|| {
            format!("map {} missing from the BPF object", names::PROCESS_EVENTS)
        })?;
        ProcessEvents::new(RingBuf::try_from(map)?)
    }

    /// The Python code objects BPF meets, as it meets them (taken once).
    pub(crate) fn take_python_code_events(&mut self) -> Result<PythonCodeEvents> {
        let map = self
            .ebpf
            .take_map(names::PYTHON_CODE_EVENTS)
            .with_context(|| {
                format!(
                    "map {} missing from the BPF object",
                    names::PYTHON_CODE_EVENTS
                )
            })?;
        PythonCodeEvents::new(RingBuf::try_from(map)?)
    }

    /// Sets the drain generation BPF writes to (map set `generation & 1`).
    pub(crate) fn set_generation(&mut self, generation: u32) -> Result<()> {
        let mut active: Array<_, u32> = Array::try_from(self.map_mut(names::ACTIVE)?)?;
        active
            .set(0, generation, 0)
            .context("switching the active map set")
    }

    /// One line per map: entries, and the memory the kernel holds for it.
    pub(crate) fn describe_maps(&self) -> Vec<String> {
        let cpus = online_cpu_count();
        let mut costs = Vec::new();
        for (name, map) in self.ebpf.maps() {
            let (data, kind) = match map {
                Map::PerCpuArray(d) | Map::PerCpuHashMap(d) => (d, Kind::PerCpu),
                Map::Array(d) | Map::HashMap(d) | Map::LruHashMap(d) | Map::StackTraceMap(d) => {
                    (d, Kind::Plain)
                }
                Map::RingBuf(d) => (d, Kind::RingBuf),
                _ => continue,
            };
            let Ok(info) = data.info() else { continue };
            let shape = Shape {
                kind,
                entries: info.max_entries(),
                key_size: info.key_size(),
                value_size: info.value_size(),
                flags: info.map_flags(),
            };
            costs.push(MapCost::new(name, &shape, cpus));
        }
        map_memory::describe(&costs)
    }

    /// Runs and average run time of each attached program, from the
    /// kernel's BPF statistics (kept on with -v only).
    pub(crate) fn describe_costs(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (name, program) in self.ebpf.programs() {
            let Ok(info) = program.info() else { continue };
            let runs = info.run_count();
            if runs == 0 {
                continue;
            }
            let average = info.run_time().as_nanos() as f64 / runs as f64;
            lines.push(format!(
                "BPF {name:<14} {runs:>10} runs  {average:>7.0} ns each"
            ));
        }
        lines
    }

    /// The loss counters BPF keeps, summed over CPUs, at their
    /// `Loss::bpf_index`.
    pub(crate) fn loss_counts(&self) -> Result<[u64; Loss::BPF_COUNT as usize]> {
        let errors: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map("ERRORS").context("map ERRORS")?)?;
        let mut totals = [0u64; Loss::BPF_COUNT as usize];
        for index in Loss::ALL.into_iter().filter_map(Loss::bpf_index) {
            totals[index as usize] = errors.get(&index, 0)?.iter().sum();
        }
        Ok(totals)
    }
}
