//! The capture: loads and attaches the BPF programs, starts the command when
//! there is one, then samples until the duration ends, the command exits or
//! a signal arrives, draining and symbolizing every interval. Returns the
//! whole profile; nothing collected is dropped on the way out.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use profiler_common::error;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    blocked,
    bpf::Collector,
    child::GatedChild,
    cli::{Config, Target},
    drain::{self, Batch, Drainer},
    profile::Profile,
    symbolize::Symbolizer,
};

pub struct Capture {
    pub profile: Profile,
    pub started: SystemTime,
    pub elapsed: Duration,
    /// Exit code of the profiled command, when it exited during the run.
    pub command_status: Option<i32>,
    pub off_cpu: bool,
    pub wakers: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Duration,
    Signal,
    CommandExited(i32),
}

pub fn run(config: &Config) -> Result<Capture> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(capture(config))
}

async fn capture(config: &Config) -> Result<Capture> {
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
    collector.attach(config.freq)?;
    // After attaching: records BPF makes from here on win over seeded ones.
    let seeded = match config.off_cpu {
        Some(_) => blocked::seed(&mut collector, &config.target)?,
        None => Default::default(),
    };
    let mut drainer = Drainer::new(seeded);
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let started = SystemTime::now();
    let start = Instant::now();
    if let Some(child) = &mut child {
        child.release()?;
    }
    announce(config);

    let mut symbolizer = Symbolizer::new(config.naming);
    let mut profile = Profile::default();
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
                    symbolizer.remember(event.tgid);
                }
            }
            _ = ticks.tick() => {
                let batch = drainer.drain(&mut collector)?;
                symbolizer.add_batch(batch, &mut profile);
                if config.off_cpu.is_some() {
                    let refs = blocked::stack_refs(&collector)?;
                    drainer.stacks.prune(drainer.generation(), refs);
                }
            }
            _ = &mut deadline => break Stop::Duration,
            _ = interrupt.recv() => break Stop::Signal,
            _ = terminate.recv() => break Stop::Signal,
            status = &mut command_exit => break Stop::CommandExited(status?),
        }
    };
    if stop == Stop::Signal {
        // A second Ctrl-C ends bpfprof at once, whatever it is doing.
        // SAFETY: restoring the default disposition of two signals.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
        }
        eprintln!("bpfprof: stopping; writing what was collected (Ctrl-C again to quit at once)");
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
    if let Some(off_cpu) = &config.off_cpu {
        let bounds = (off_cpu.min_block_us, off_cpu.max_block_us);
        let open = blocked::credit_open(&collector, &drainer, end_ns, bounds)?;
        batch.extend(Batch {
            off_cpu: open,
            ..Batch::default()
        });
    }
    symbolizer.add_batch(batch, &mut profile);
    add_bpf_errors(&collector, &mut profile)?;
    profile.losses.perf_maps_ignored = symbolizer.perf_maps_ignored();
    Ok(Capture {
        profile,
        started,
        elapsed,
        command_status: match stop {
            Stop::CommandExited(code) => Some(code),
            _ => None,
        },
        off_cpu: config.off_cpu.is_some(),
        wakers: config.off_cpu.as_ref().is_some_and(|o| o.wakers),
    })
}

fn add_bpf_errors(collector: &Collector, profile: &mut Profile) -> Result<()> {
    let errors = collector.error_counts()?;
    let losses = &mut profile.losses;
    losses.stack_collisions =
        errors[error::KERN_STACK_COLLISION as usize] + errors[error::USER_STACK_COLLISION as usize];
    losses.stack_map_full = errors[error::STACK_MAP_FULL as usize];
    losses.stack_errors_other = errors[error::STACK_OTHER as usize];
    losses.counts_map_full = errors[error::COUNTS_MAP_FULL as usize];
    losses.follow_map_full = errors[error::FOLLOW_MAP_FULL as usize];
    losses.process_events_lost = errors[error::PROCESS_EVENT_LOST as usize];
    losses.pending_map_full = errors[error::PENDING_MAP_FULL as usize];
    losses.wakers_map_full = errors[error::WAKERS_MAP_FULL as usize];
    // user_stack_missing is counted in userspace, where kernel threads
    // (which never have a user stack) can be told apart.
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
