//! The capture: a [`Session`] loads and attaches the BPF programs, starts
//! the command when there is one, then samples until the duration ends,
//! the command exits or a signal arrives, draining and symbolizing every
//! interval (and, in continuous mode, closing windows). Returns the whole
//! profile; nothing collected is dropped on the way out.

mod process_events;

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use profiler_common::Loss;

use crate::{
    blocked,
    bpf::{Collector, ProcessEvents, PythonCodeEvents, object::ObjectBytes},
    child::GatedChild,
    cli::{Config, Target, Unwind},
    drain::{Batch, Drainer},
    live::View,
    meta,
    output::dir::OutDir,
    profile::Profile,
    python,
    status::Status,
    stop_signals::{self, StopSignals},
    symbolize::Symbolizer,
    unwind::{self, UnwindLoader},
    windows::Profiles,
};

use self::process_events::{at, next_table};

pub(crate) struct Capture {
    pub(crate) profile: Profile,
    pub(crate) started: SystemTime,
    pub(crate) elapsed: Duration,
    /// Exit code of the profiled command, when it exited during the run.
    pub(crate) command_status: Option<i32>,
    /// When sampling stopped: the time to report is counted from here.
    pub(crate) stopped: Instant,
    /// Window files that could not be written (each said so on stderr).
    pub(crate) failed_writes: usize,
    /// What each backend was sent.
    pub(crate) push: Vec<crate::meta::PushReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Duration,
    Signal,
    CommandExited(i32),
}

/// Captures; in continuous mode, windows are written under `out`.
pub(crate) fn run(config: &Config, out: Option<&OutDir>, object: ObjectBytes) -> Result<Capture> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(capture(config, out, object))
}

async fn capture(config: &Config, out: Option<&OutDir>, object: ObjectBytes) -> Result<Capture> {
    let (mut session, child) = Session::start(config, out, object)?;
    let stop = session.sample(child.as_ref()).await?;
    // The command is waited for until here, and outlives the session.
    let capture = session.finish(stop);
    drop(child);
    capture
}

/// How long the start waits for the tables of the processes `--pid` names
/// (parsing the largest binaries takes a fraction of a second; from the
/// cache, milliseconds): past it, sampling starts and the rest load as
/// they come.
const TABLES_BEFORE_SAMPLING: Duration = Duration::from_secs(5);

/// A capture under way: what is attached, and what it collected so far.
struct Session<'a> {
    config: &'a Config,
    collector: Collector,
    process_events: ProcessEvents,
    /// The Python code objects BPF meets, read as they come.
    code_events: PythonCodeEvents,
    /// Loads unwind tables (not with `--unwind fp`).
    unwinder: Option<UnwindLoader>,
    drainer: Drainer,
    /// The processes BPF walks Python frames in.
    pythons: python::tracker::Tracker,
    symbolizer: Symbolizer,
    profiles: Profiles,
    /// BPF's loss counters as of the last time they were taken.
    bpf_losses_so_far: [u64; Loss::BPF_COUNT as usize],
    /// Off-CPU block-time bounds, in microseconds, with `--off-cpu`.
    bounds: Option<(u64, u64)>,
    stop_signals: StopSignals,
    status: Status,
    started: SystemTime,
    start: Instant,
}

impl<'a> Session<'a> {
    /// Loads and attaches the programs, loads the unwind tables of the
    /// processes named, seeds the threads already blocked, then lets the
    /// command (returned, when there is one) start.
    fn start(
        config: &'a Config,
        out: Option<&OutDir>,
        object: ObjectBytes,
    ) -> Result<(Session<'a>, Option<GatedChild>)> {
        let mut collector = Collector::load(config, object)?;
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
        let process_events = collector.take_process_events()?;
        let code_events = collector.take_python_code_events()?;
        let mut unwinder = (config.unwind != Unwind::Fp).then(|| unwind::loader_for(config));
        if let (Some(unwinder), Target::Pids(pids)) = (&mut unwinder, &config.target) {
            for &pid in pids {
                unwinder.load_process(&mut collector, pid)?;
            }
            unwinder.settle(&mut collector, TABLES_BEFORE_SAMPLING);
        }
        collector.attach(config.freq)?;
        // The run's window starts with sampling, not once the start-up
        // after it (seeding blocked threads, the command's release) is done.
        let (started, start) = (SystemTime::now(), Instant::now());
        // After attaching: records BPF makes from here on win over seeded ones.
        let seeded = match config.off_cpu {
            Some(_) => blocked::seed(&mut collector, &config.target)?,
            None => Default::default(),
        };
        let stop_signals = StopSignals::watch();
        // A command whose run was stopped during start-up is never started:
        // dropping its gate ends it before exec.
        if let (Some(child), None) = (&mut child, stop_signals::received()) {
            child.release()?;
        }
        announce(config);
        let mut profiles = Profiles::new(out, config)?;
        if config.live {
            profiles.attach_view(View::start(config)?);
        }
        let session = Session {
            config,
            collector,
            process_events,
            code_events,
            unwinder,
            drainer: Drainer::new(seeded),
            pythons: python::tracker::Tracker::default(),
            symbolizer: Symbolizer::new(config.naming),
            profiles,
            bpf_losses_so_far: [0; Loss::BPF_COUNT as usize],
            bounds: config
                .off_cpu
                .as_ref()
                .map(|o| (o.min_block_us, o.max_block_us)),
            stop_signals,
            status: Status::new(config.duration),
            started,
            start,
        };
        Ok((session, child))
    }

    /// Samples until the duration ends, a stop signal arrives or the
    /// command exits: process events as they come, a tick each interval.
    async fn sample(&mut self, child: Option<&GatedChild>) -> Result<Stop> {
        let deadline = async {
            match self.config.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let command_exit = async {
            match child {
                Some(child) => child.wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(command_exit);
        let interval = self.config.interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Due retries go first: branches ready back to back (unwind
            // tables arriving one after another) keep the runtime from
            // firing timers, and a Python process caught before its
            // libpython was mapped would wait them all out.
            if self
                .pythons
                .soon_at()
                .is_some_and(|due| due <= Instant::now())
            {
                self.retry_pythons();
            }
            tokio::select! {
                events = self.process_events.next_batch() => self.on_process_events(events?),
                code = self.code_events.next_batch() => self.symbolizer.prefetch_python(&(code?)),
                _ = at(self.pythons.soon_at()) => self.retry_pythons(),
                table = next_table(&mut self.unwinder) => self.on_table(table),
                _ = ticks.tick() => self.tick()?,
                _ = &mut deadline => return Ok(Stop::Duration),
                _ = self.stop_signals.recv() => return Ok(Stop::Signal),
                status = &mut command_exit => return Ok(Stop::CommandExited(status?)),
            }
        }
    }

    /// Every interval: drains and symbolizes, prunes what exited processes
    /// and old stacks left, and closes the window when it is due.
    fn tick(&mut self) -> Result<()> {
        // Events made before the drain are applied before it: an exec it
        // will bring samples from both sides of is known at naming time.
        self.apply_pending_events();
        let batch = self.drainer.drain(&mut self.collector)?;
        self.symbolizer.add_batch(batch, self.profiles.current());
        for (tgid, minor) in self.pythons.on_drain(&mut self.collector) {
            self.symbolizer.note_python(tgid, minor);
        }
        if self.config.off_cpu.is_some() {
            let refs = blocked::stack_refs(&self.collector)?;
            self.drainer.stacks.prune(self.drainer.generation(), refs);
        }
        self.symbolizer.forget_exited();
        if let Some(unwinder) = &mut self.unwinder {
            unwinder.forget_exited(&mut self.collector)?;
            unwinder.reload_stale(&mut self.collector);
        }
        if self.profiles.window_due(self.config.interval) {
            self.close_window()?;
        }
        self.profiles.show(&self.status);
        Ok(())
    }

    /// Ends the open window: credits the threads blocked now up to now,
    /// settles its losses, writes it and merges it into the run's profile.
    fn close_window(&mut self) -> Result<()> {
        if let Some(bounds) = self.bounds {
            let open = blocked::credit_open_and_restart(
                &mut self.collector,
                &self.drainer,
                blocked::monotonic_ns(),
                bounds,
            )?;
            let batch = Batch {
                off_cpu: open,
                ..Batch::default()
            };
            self.symbolizer.add_batch(batch, self.profiles.current());
        }
        self.settle_losses()?;
        self.profiles.close_window(self.config);
        Ok(())
    }

    /// Moves the losses counted since the last call (BPF's loss counters,
    /// reading perf maps) into the current profile.
    fn settle_losses(&mut self) -> Result<()> {
        let profile = self.profiles.current();
        take_bpf_losses(&self.collector, profile, &mut self.bpf_losses_so_far)?;
        profile
            .losses
            .add_perf_map_losses(self.symbolizer.take_perf_map_losses());
        if let Some(unwinder) = &mut self.unwinder {
            profile
                .losses
                .add_unwind_tables_not_loaded(unwinder.take_not_loaded());
        }
        profile
            .losses
            .add_python_not_walked(self.pythons.take_not_walked());
        Ok(())
    }

    /// Detaches, drains what is left, credits the threads still blocked,
    /// and closes the last window: the whole run's profile.
    fn finish(mut self, stop: Stop) -> Result<Capture> {
        let stopped = Instant::now();
        self.profiles.close_view();
        self.status.clear();
        if let (Stop::Signal, Some(signal)) = (stop, stop_signals::received()) {
            say_stopping(signal);
        }
        // Before the detach: past it a thread that wakes is not seen to,
        // and would be credited as blocked until the end.
        let elapsed = self.start.elapsed();
        let end_ns = blocked::monotonic_ns();
        if self.config.verbose > 0 {
            for line in self.collector.describe_costs() {
                eprintln!("bpfprof: {line}");
            }
        }
        self.collector.detach();
        for event in self.process_events.pending() {
            self.symbolizer.note_image(event.tgid, event.image);
            self.symbolizer.remember(event.tgid);
        }
        let mut batch = self.drainer.drain_all(&mut self.collector)?;
        if let Some(bounds) = self.bounds {
            batch.extend(Batch {
                off_cpu: blocked::credit_open(&self.collector, &self.drainer, end_ns, bounds)?,
                ..Batch::default()
            });
        }
        if self.config.verbose > 0 {
            self.print_stats();
        }
        self.symbolizer.add_batch(batch, self.profiles.current());
        self.settle_losses()?;
        let finished = self.profiles.finish(self.config);
        Ok(Capture {
            profile: finished.profile,
            started: self.started,
            elapsed,
            command_status: match stop {
                Stop::CommandExited(code) => Some(code),
                _ => None,
            },
            stopped,
            failed_writes: finished.failed_writes,
            push: finished.push,
        })
    }

    /// How the drains and the unwind tables went (-v).
    fn print_stats(&self) {
        let config = self.config;
        let s = &self.drainer.stats;
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
        if let Some(unwinder) = &self.unwinder {
            for line in unwinder.describe(config.unwind_rows) {
                eprintln!("bpfprof: {line}");
            }
        }
    }
}

fn say_stopping(signal: libc::c_int) {
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

/// Moves the BPF loss counters accrued since the last call into `profile`.
fn take_bpf_losses(
    collector: &Collector,
    profile: &mut Profile,
    so_far: &mut [u64; Loss::BPF_COUNT as usize],
) -> Result<()> {
    let totals = collector.loss_counts()?;
    for loss in Loss::ALL {
        if let Some(index) = loss.bpf_index().map(|i| i as usize) {
            profile.losses[loss] += totals[index].saturating_sub(so_far[index]);
        }
    }
    *so_far = totals;
    Ok(())
}

fn announce(config: &Config) {
    let what = meta::describe_target(&config.target);
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
