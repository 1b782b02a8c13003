//! The intervals seen so far, kept two ways without re-reading them: the
//! running sum since the start, and the sum over the last few seconds
//! (each interval is added as it comes and taken away as it leaves a ring
//! of the recent ones), so one refresh costs one interval's work.

use std::{collections::VecDeque, time::Duration};

use super::aggregate::Aggregate;

/// How far back the decaying view looks, as perf top does.
pub(super) const DECAY: Duration = Duration::from_secs(5);

/// What the screen shows from: both sums, and when they were taken.
#[derive(Debug, Default, Clone)]
pub(super) struct Totals {
    pub(super) cumulative: Aggregate,
    /// The intervals of the last [`DECAY`].
    pub(super) recent: Aggregate,
    /// Since sampling started, as of the last interval.
    pub(super) elapsed: Duration,
}

#[derive(Debug)]
pub(super) struct History {
    totals: Totals,
    /// The intervals summed in `totals.recent`, oldest first.
    window: VecDeque<Aggregate>,
    /// How many intervals make up [`DECAY`].
    window_len: usize,
}

impl History {
    pub(super) fn new(interval: Duration) -> History {
        let per_decay = DECAY.as_secs_f64() / interval.as_secs_f64().max(1e-3);
        History {
            totals: Totals::default(),
            window: VecDeque::new(),
            window_len: (per_decay.round() as usize).max(1),
        }
    }

    pub(super) fn push(&mut self, interval: Aggregate, elapsed: Duration) {
        self.totals.cumulative.add(&interval);
        self.totals.recent.add(&interval);
        self.totals.elapsed = elapsed;
        self.window.push_back(interval);
        while self.window.len() > self.window_len {
            let old = self.window.pop_front().expect("longer than the window");
            self.totals.recent.sub(&old);
        }
    }

    pub(super) fn totals(&self) -> &Totals {
        &self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(samples: u64) -> Aggregate {
        let mut aggregate = Aggregate::default();
        aggregate.all.on = samples;
        aggregate
    }

    #[test]
    fn the_window_holds_the_last_seconds_and_the_sum_holds_all() {
        let mut history = History::new(Duration::from_secs(1));
        for i in 1..=10 {
            history.push(interval(i), Duration::from_secs(i));
        }
        let totals = history.totals();
        assert_eq!(totals.cumulative.all.on, (1..=10).sum::<u64>());
        assert_eq!(totals.recent.all.on, (6..=10).sum::<u64>());
        assert_eq!(totals.elapsed, Duration::from_secs(10));
    }

    #[test]
    fn intervals_longer_than_the_window_leave_one() {
        let mut history = History::new(Duration::from_secs(10));
        history.push(interval(1), Duration::from_secs(10));
        history.push(interval(2), Duration::from_secs(20));
        assert_eq!(history.totals().recent.all.on, 2);
    }
}
