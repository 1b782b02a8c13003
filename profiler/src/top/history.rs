//! The intervals seen so far, kept two ways without re-reading them: the
//! running sum since the start, and the sum over the last few seconds
//! (each interval is added as it comes and taken away as it leaves a ring
//! of the recent ones), so one refresh costs one interval's work. Call
//! edges are only summed since the start; the recent ones are read from
//! the ring's stacks when a function's detail is open.

use std::{collections::VecDeque, rc::Rc, time::Duration};

use super::{
    aggregate::{Edges, Names, Tables},
    interval::{Interval, add_edges},
};

/// How far back the decaying view looks, as perf top does.
pub(super) const DECAY: Duration = Duration::from_secs(5);

/// What the screen shows from, and when it was counted.
#[derive(Debug, Default, Clone)]
pub(super) struct Totals {
    pub(super) cumulative: Tables,
    pub(super) cumulative_edges: Edges,
    /// The sum of `window`'s tables.
    pub(super) recent: Tables,
    /// The intervals of the last [`DECAY`], oldest first.
    pub(super) window: VecDeque<Rc<Interval>>,
    /// Since sampling started, as of the last interval.
    pub(super) elapsed: Duration,
}

#[derive(Debug)]
pub(super) struct History {
    totals: Totals,
    /// How many intervals make up [`DECAY`].
    window_len: usize,
}

impl History {
    pub(super) fn new(interval: Duration) -> History {
        let per_decay = DECAY.as_secs_f64() / interval.as_secs_f64().max(1e-3);
        History {
            totals: Totals::default(),
            window_len: (per_decay.round() as usize).max(1),
        }
    }

    pub(super) fn push(&mut self, interval: Interval, elapsed: Duration, names: &Names) {
        let totals = &mut self.totals;
        totals.cumulative.add(&interval.tables);
        add_edges(&mut totals.cumulative_edges, &interval, names);
        totals.recent.add(&interval.tables);
        totals.elapsed = elapsed;
        totals.window.push_back(Rc::new(interval));
        while totals.window.len() > self.window_len {
            let old = totals.window.pop_front().expect("longer than the window");
            totals.recent.sub(&old.tables);
        }
    }

    pub(super) fn totals(&self) -> &Totals {
        &self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        profile::{Frame, FrameKind},
        top::interval::Stacks,
    };

    /// Names knowing functions 0 and 1.
    fn names() -> Names {
        let mut names = Names::default();
        for name in ["caller", "callee"] {
            names.key(&Frame {
                name: name.into(),
                module: None,
                kind: FrameKind::User,
            });
        }
        names
    }

    /// An interval of one stack, 0 calling 1, of `samples`.
    fn interval(samples: u64) -> Interval {
        let mut interval = Interval::default();
        interval.tables.on.all.weight = samples;
        let stacks = Stacks {
            keys: vec![0, 1],
            stacks: vec![(0, 2, samples)],
        };
        interval.on.insert(1, stacks);
        interval
    }

    #[test]
    fn the_window_holds_the_last_seconds_and_the_sum_holds_all() {
        let mut history = History::new(Duration::from_secs(1));
        for i in 1..=10 {
            history.push(interval(i), Duration::from_secs(i), &names());
        }
        let totals = history.totals();
        let all: u64 = (1..=10).sum();
        assert_eq!(totals.cumulative.on.all.weight, all);
        assert_eq!(totals.cumulative_edges.on[&1][&(0, 1)], all);
        assert_eq!(totals.recent.on.all.weight, (6..=10).sum::<u64>());
        let recent = totals.window.iter().map(|i| i.tables.on.all.weight);
        assert_eq!(recent.collect::<Vec<u64>>(), [6, 7, 8, 9, 10]);
        assert_eq!(totals.elapsed, Duration::from_secs(10));
    }

    #[test]
    fn intervals_longer_than_the_window_leave_one() {
        let mut history = History::new(Duration::from_secs(10));
        history.push(interval(1), Duration::from_secs(10), &names());
        history.push(interval(2), Duration::from_secs(20), &names());
        assert_eq!(history.totals().recent.on.all.weight, 2);
    }
}
