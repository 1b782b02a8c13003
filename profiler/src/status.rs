//! The live status line on stderr, redrawn at every drain, shown only when
//! stderr is a terminal (never in logs or pipes).

use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

use profiler_common::Loss;

use crate::profile::Profile;

/// The losses the line sums as lost samples: a sample or its stack dropped.
const LOST: [Loss; 3] = [
    Loss::StackCollisions,
    Loss::StackMapFull,
    Loss::CountsMapFull,
];

pub(crate) struct Status {
    enabled: bool,
    duration: Option<Duration>,
    start: Instant,
}

impl Status {
    pub(crate) fn new(duration: Option<Duration>) -> Status {
        Status {
            enabled: std::io::stderr().is_terminal(),
            duration,
            start: Instant::now(),
        }
    }

    /// Redraws the line; `run` and `window` are the profiles so far.
    pub(crate) fn update(&self, run: &Profile, window: Option<&Profile>) {
        if !self.enabled {
            return;
        }
        let count = |f: &dyn Fn(&Profile) -> u64| f(run) + window.map_or(0, f);
        let samples = count(&|p| p.total_samples());
        let lost = count(&|p| LOST.iter().map(|&loss| p.losses[loss]).sum());
        let processes = run
            .processes
            .len()
            .max(window.map_or(0, |w| w.processes.len()));
        let elapsed = self.start.elapsed().as_secs_f64();
        let of = self
            .duration
            .map_or(String::new(), |d| format!(" / {:.0} s", d.as_secs_f64()));
        eprint!(
            "\r\x1b[Kbpfprof: {elapsed:.0} s{of} · {samples} samples · {processes} processes · {lost} lost"
        );
        let _ = std::io::stderr().flush();
    }

    pub(crate) fn clear(&self) {
        if self.enabled {
            eprint!("\r\x1b[K");
        }
    }
}
