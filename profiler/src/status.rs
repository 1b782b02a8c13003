//! The live status line on stderr, redrawn at every drain, shown only when
//! stderr is a terminal (never in logs or pipes).

use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

use crate::profile::Profile;

pub struct Status {
    enabled: bool,
    duration: Option<Duration>,
    start: Instant,
}

impl Status {
    pub fn new(duration: Option<Duration>) -> Status {
        Status {
            enabled: std::io::stderr().is_terminal(),
            duration,
            start: Instant::now(),
        }
    }

    /// Redraws the line; `run` and `window` are the profiles so far.
    pub fn update(&self, run: &Profile, window: Option<&Profile>) {
        if !self.enabled {
            return;
        }
        let count = |f: &dyn Fn(&Profile) -> u64| f(run) + window.map_or(0, f);
        let samples = count(&|p| p.total_samples());
        let lost = count(&|p| {
            p.losses.stack_collisions + p.losses.stack_map_full + p.losses.counts_map_full
        });
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

    pub fn clear(&self) {
        if self.enabled {
            eprint!("\r\x1b[K");
        }
    }
}
