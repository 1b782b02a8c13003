//! The capture: loads and attaches the BPF programs, starts the command when
//! there is one, then samples until the duration ends, the command exits or
//! a signal arrives, draining and symbolizing every interval (and, in
//! continuous mode, closing windows). Returns the whole profile; nothing
//! collected is dropped on the way out.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use profiler_common::{Loss, PROCESS_EXEC, PROCESS_MAPS_STALE};

use crate::{
    blocked,
    bpf::Collector,
    child::GatedChild,
    cli::{Config, Target, Unwind},
    drain::{self, Batch, Drainer},
    output::dir::OutDir,
    profile::Profile,
    status::Status,
    stop_signals::{self, StopSignals},
    symbolize::Symbolizer,
    unwind::UnwindLoader,
    windows::Windows,
};

pub struct Capture {
    pub profile: Profile,
    pub started: SystemTime,
    pub elapsed: Duration,
    /// Exit code of the profiled command, when it exited during the run.
    pub command_status: Option<i32>,
    /// When sampling stopped: the time to report is counted from here.
    pub stopped: Instant,
    /// Window files that could not be written (each said so on stderr).
    pub failed_writes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Duration,
    Signal,
    CommandExited(i32),
}

/// Captures; in continuous mode, windows are written under `out`.
pub fn run(config: &Config, out: &OutDir) -> Result<Capture> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(capture(config, out))
}

async fn capture(config: &Config, out: &OutDir) -> Result<Capture> {
    let mut collector = Collector::load(config)?;
    if config.verbose > 0 {
        for line in collector.describe_maps() {
            eprintln!("bpfprof: {line}");
        }
    }
    let mut child = match &config.target {
        Target::Command(argv) => Some(GatedChild::spawn(argv)?),
        _ => None,
    };
    match (&config.target, &child) {
        (Target::Pids(pids), _) => {
            for &pid in pids {
                collector.want_tgid(pid)?;
            }
        }
        (Target::Command(_), Some(child)) => collector.want_tgid(child.pid())?,
        _ => {}
    }
    let mut process_events = drain::ProcessEvents::new(collector.take_process_events()?)?;
    let mut unwinder = (config.unwind != Unwind::Fp).then(|| UnwindLoader::new(config.unwind_rows));
    if let (Some(unwinder), Target::Pids(pids)) = (&mut unwinder, &config.target) {
        for &pid in pids {
            unwinder.load_process(&mut collector, pid)?;
        }
    }
    collector.attach(config.freq)?;
    // After attaching: records BPF makes from here on win over seeded ones.
    let seeded = match config.off_cpu {
        Some(_) => blocked::seed(&mut collector, &config.target)?,
        None => Default::default(),
    };
    let mut drainer = Drainer::new(seeded);
    let stop_signals = StopSignals::watch();
    let started = SystemTime::now();
    let start = Instant::now();
    // A command whose run was stopped during start-up is never started:
    // dropping its gate ends it before exec.
    if let (Some(child), None) = (&mut child, stop_signals::received()) {
        child.release()?;
    }
    announce(config);

    let mut symbolizer = Symbolizer::new(config.naming);
    let mut run_profile = Profile::default();
    let mut windows = config
        .window
        .map(|len| Windows::new(out, config, len))
        .transpose()?;
    let mut errors_so_far = [0u64; Loss::BPF_COUNT as usize];
    let status = Status::new(config.duration);
    let bounds = config
        .off_cpu
        .as_ref()
        .map(|o| (o.min_block_us, o.max_block_us));
    let deadline = async {
        match config.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let command_exit = async {
        match &child {
            Some(child) => child.wait().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(command_exit);
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + config.interval,
        config.interval,
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let stop = loop {
        tokio::select! {
            events = process_events.next_batch() => {
                for event in events? {
                    // Stale maps (a library loaded since) are reread for
                    // names as for unwinding; an exec voids the old ones.
                    match event.kind {
                        PROCESS_EXEC => symbolizer.remember_exec(event.tgid),
                        _ => symbolizer.remember(event.tgid),
                    }
                    match &mut unwinder {
                        Some(unwinder) if event.kind == PROCESS_MAPS_STALE => unwinder.mark_stale(event.tgid),
                        // A process gone before its tables loaded is no loss.
                        Some(unwinder) => { let _ = unwinder.load_process(&mut collector, event.tgid); }
                        None => {}
                    }
                }
            }
            _ = ticks.tick() => {
                let batch = drainer.drain(&mut collector)?;
                let profile = windows.as_mut().map_or(&mut run_profile, |w| &mut w.profile);
                symbolizer.add_batch(batch, profile);
                if config.off_cpu.is_some() {
                    let refs = blocked::stack_refs(&collector)?;
                    drainer.stacks.prune(drainer.generation(), refs);
                }
                symbolizer.forget_exited();
                if let Some(unwinder) = &mut unwinder {
                    unwinder.forget_exited(&mut collector)?;
                    unwinder.reload_stale(&mut collector);
                }
                if let Some(w) = windows.as_mut().filter(|w| w.due(config.interval)) {
                    if let Some(bounds) = bounds {
                        let open = blocked::credit_open_and_restart(&mut collector, &drainer, blocked::monotonic_ns(), bounds)?;
                        symbolizer.add_batch(Batch { off_cpu: open, ..Batch::default() }, &mut w.profile);
                    }
                    take_bpf_errors(&collector, &mut w.profile, &mut errors_so_far)?;
                    w.profile.losses.add_perf_map_losses(symbolizer.take_perf_map_losses());
                    run_profile.merge_collapsed(w.close(config));
                }
                status.update(&run_profile, windows.as_ref().map(|w| &w.profile));
            }
            _ = &mut deadline => break Stop::Duration,
            _ = stop_signals.recv() => break Stop::Signal,
            status = &mut command_exit => break Stop::CommandExited(status?),
        }
    };
    let stopped = Instant::now();
    status.clear();
    if let (Stop::Signal, Some(signal)) = (stop, stop_signals::received()) {
        let again = if signal == libc::SIGINT {
            "Ctrl-C again"
        } else {
            "a second signal"
        };
        eprintln!(
            "bpfprof: {}: stopping; writing what was collected ({again} to quit at once)",
            stop_signals::name(signal)
        );
    }
    let elapsed = start.elapsed();
    let end_ns = blocked::monotonic_ns();
    if config.verbose > 0 {
        for line in collector.describe_costs() {
            eprintln!("bpfprof: {line}");
        }
    }
    collector.detach();
    for event in process_events.pending() {
        symbolizer.remember(event.tgid);
    }
    let mut batch = drainer.drain_all(&mut collector)?;
    if let Some(bounds) = bounds {
        batch.extend(Batch {
            off_cpu: blocked::credit_open(&collector, &drainer, end_ns, bounds)?,
            ..Batch::default()
        });
    }
    if config.verbose > 0 {
        let s = &drainer.stats;
        eprintln!(
            "bpfprof: {} drains, {:.1} ms each on average, {:.1} ms at most; at most {} counts (of {}) and {} stacks (of {}) in one interval",
            s.drains,
            s.total_ms / f64::from(s.drains.max(1)),
            s.max_ms,
            s.peak_keys,
            config.map_sizes.max_stacks,
            s.peak_stacks,
            config.map_sizes.stack_map
        );
    }
    if let (Some(unwinder), true) = (&unwinder, config.verbose > 0) {
        let s = unwinder.stats;
        eprintln!(
            "bpfprof: unwind tables: {} binaries, {} rows ({:.1} of {:.1} MiB); {} binaries did not fit (--unwind-rows)",
            s.binaries,
            s.rows,
            s.rows as f64 * 16.0 / 1048576.0,
            f64::from(config.unwind_rows) * 16.0 / 1048576.0,
            s.binaries_not_loaded
        );
    }
    let last = windows
        .as_mut()
        .map_or(&mut run_profile, |w| &mut w.profile);
    symbolizer.add_batch(batch, last);
    take_bpf_errors(&collector, last, &mut errors_so_far)?;
    last.losses
        .add_perf_map_losses(symbolizer.take_perf_map_losses());
    let mut failed_writes = 0;
    if let Some(mut w) = windows {
        run_profile.merge_collapsed(w.close(config));
        failed_writes = w.failed;
    }
    Ok(Capture {
        profile: run_profile,
        started,
        elapsed,
        command_status: match stop {
            Stop::CommandExited(code) => Some(code),
            _ => None,
        },
        stopped,
        failed_writes,
    })
}

/// Moves the BPF error counters accrued since the last call into `profile`.
fn take_bpf_errors(
    collector: &Collector,
    profile: &mut Profile,
    so_far: &mut [u64; Loss::BPF_COUNT as usize],
) -> Result<()> {
    let totals = collector.error_counts()?;
    for loss in Loss::ALL {
        if let Some(index) = loss.bpf_index().map(|i| i as usize) {
            profile.losses[loss] += totals[index].saturating_sub(so_far[index]);
        }
    }
    *so_far = totals;
    Ok(())
}

fn announce(config: &Config) {
    let what = describe_target(&config.target);
    let until = match (&config.target, config.duration) {
        (_, Some(d)) => format!("for {:.1} s", d.as_secs_f64()),
        (Target::Command(_), None) => "until the command exits".into(),
        (_, None) => "until Ctrl-C".into(),
    };
    let off_cpu = match &config.off_cpu {
        Some(o) if o.wakers => ", with off-CPU time and wakers",
        Some(_) => ", with off-CPU time",
        None => "",
    };
    eprintln!(
        "bpfprof: sampling {what} at {} Hz{off_cpu} {until}",
        config.freq
    );
}

pub fn describe_target(target: &Target) -> String {
    match target {
        Target::AllProcesses => "all processes".into(),
        Target::Pids(pids) => {
            let list: Vec<String> = pids.iter().map(u32::to_string).collect();
            format!("pid {}", list.join(","))
        }
        Target::Command(argv) => {
            let words: Vec<String> = argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            format!("command `{}`", words.join(" "))
        }
    }
}
