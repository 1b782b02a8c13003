//! The numbers on screen, from a sum of intervals: the functions ranked by
//! self or total, the processes, a function's callers and callees; in
//! on-CPU samples, off-CPU time or wall time, for the whole machine or one
//! process. Pure functions of an [`Aggregate`].

use std::cmp::Ordering;

use super::aggregate::{Aggregate, Counts, EdgeCounts, Key, Names, Scope};
use crate::output::table::time;

/// What the values measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// On-CPU samples.
    OnCpu,
    /// Off-CPU time.
    OffCpu,
    /// On-CPU time (samples times the period) plus off-CPU time.
    Wall,
}

impl Mode {
    /// The next mode; only on-CPU when off-CPU time was not recorded.
    pub(super) fn next(self, off_cpu_recorded: bool) -> Mode {
        match self {
            _ if !off_cpu_recorded => Mode::OnCpu,
            Mode::OnCpu => Mode::OffCpu,
            Mode::OffCpu => Mode::Wall,
            Mode::Wall => Mode::OnCpu,
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Mode::OnCpu => "on-CPU",
            Mode::OffCpu => "off-CPU",
            Mode::Wall => "wall",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sort {
    SelfTime,
    Total,
}

/// How to look at an aggregate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Lens {
    pub(super) mode: Mode,
    pub(super) sort: Sort,
    /// The process the functions are of; all when None.
    pub(super) pid: Option<u32>,
    /// On-CPU time one sample stands for, in microseconds.
    pub(super) period_us: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FunctionRow {
    pub(super) key: Key,
    pub(super) self_value: u64,
    pub(super) total_value: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProcessRow {
    pub(super) pid: u32,
    pub(super) name: String,
    pub(super) value: u64,
}

/// A function with its callers and callees, each with the weight of the
/// stacks the edge is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Detail {
    pub(super) self_value: u64,
    pub(super) total_value: u64,
    pub(super) callers: Vec<(Key, u64)>,
    pub(super) callees: Vec<(Key, u64)>,
}

/// How a process without a name yet is shown.
pub(super) const UNNAMED: &str = "[unknown process]";

impl Lens {
    fn scope<'a>(&self, aggregate: &'a Aggregate) -> Option<&'a Scope> {
        match self.pid {
            None => Some(&aggregate.all),
            Some(pid) => aggregate.processes.get(&pid).map(|p| &p.scope),
        }
    }

    fn cpu_us(&self, samples: u64) -> u64 {
        (samples as f64 * self.period_us).round() as u64
    }

    fn value(&self, on_samples: u64, off_us: u64) -> u64 {
        match self.mode {
            Mode::OnCpu => on_samples,
            Mode::OffCpu => off_us,
            Mode::Wall => self.cpu_us(on_samples).saturating_add(off_us),
        }
    }

    fn counts(&self, counts: &Counts) -> (u64, u64) {
        (
            self.value(counts.on.self_count, counts.off.self_count),
            self.value(counts.on.total, counts.off.total),
        )
    }

    fn edge(&self, edge: &EdgeCounts) -> u64 {
        self.value(edge.on, edge.off)
    }

    /// What the functions' shares are of: all the stacks of the scope.
    pub(super) fn whole(&self, aggregate: &Aggregate) -> u64 {
        self.scope(aggregate)
            .map_or(0, |scope| self.value(scope.on, scope.off))
    }

    /// How many functions have a weight in this mode.
    pub(super) fn function_count(&self, aggregate: &Aggregate) -> usize {
        self.scope(aggregate).map_or(0, |scope| {
            let weighed = |c: &&Counts| self.counts(c).1 > 0;
            scope.functions.values().filter(weighed).count()
        })
    }

    /// The first `limit` functions in the order of `sort` (the other value,
    /// then the name, break ties). Only those are sorted: a long run knows
    /// far more functions than a screen shows.
    pub(super) fn functions(
        &self,
        aggregate: &Aggregate,
        names: &Names,
        limit: usize,
    ) -> Vec<FunctionRow> {
        let Some(scope) = self.scope(aggregate).filter(|_| limit > 0) else {
            return Vec::new();
        };
        let mut rows: Vec<FunctionRow> = scope
            .functions
            .iter()
            .map(|(&key, counts)| {
                let (self_value, total_value) = self.counts(counts);
                FunctionRow {
                    key,
                    self_value,
                    total_value,
                }
            })
            .filter(|row| row.total_value > 0)
            .collect();
        let sort = self.sort;
        let order = |a: &FunctionRow, b: &FunctionRow| {
            let rank = |r: &FunctionRow| match sort {
                Sort::SelfTime => (r.self_value, r.total_value),
                Sort::Total => (r.total_value, r.self_value),
            };
            rank(b)
                .cmp(&rank(a))
                .then_with(|| names.name(a.key).cmp(names.name(b.key)))
                .then_with(|| names.module(a.key).cmp(names.module(b.key)))
        };
        if rows.len() > limit {
            rows.select_nth_unstable_by(limit - 1, order);
            rows.truncate(limit);
        }
        rows.sort_unstable_by(order);
        rows
    }

    /// Every process with a weight in this mode, heaviest first (the
    /// process filter does not apply).
    pub(super) fn processes(&self, aggregate: &Aggregate) -> Vec<ProcessRow> {
        let mut rows: Vec<ProcessRow> = aggregate
            .processes
            .iter()
            .map(|(&pid, p)| ProcessRow {
                pid,
                name: p.name.clone().unwrap_or_else(|| UNNAMED.into()),
                value: self.value(p.scope.on, p.scope.off),
            })
            .filter(|p| p.value > 0)
            .collect();
        rows.sort_by(|a, b| (b.value, a.pid).cmp(&(a.value, b.pid)));
        rows
    }

    /// The function's weight, and its heaviest `limit` callers and callees.
    pub(super) fn detail(
        &self,
        aggregate: &Aggregate,
        names: &Names,
        key: Key,
        limit: usize,
    ) -> Detail {
        let Some(scope) = self.scope(aggregate) else {
            return Detail::default();
        };
        let (self_value, total_value) =
            scope.functions.get(&key).map_or((0, 0), |c| self.counts(c));
        let mut callers = Vec::new();
        let mut callees = Vec::new();
        for (&(caller, callee), edge) in &scope.edges {
            let value = self.edge(edge);
            if value > 0 && callee == key {
                callers.push((caller, value));
            }
            if value > 0 && caller == key {
                callees.push((callee, value));
            }
        }
        for list in [&mut callers, &mut callees] {
            list.sort_by(|a, b| heaviest(names, *a, *b));
            list.truncate(limit);
        }
        Detail {
            self_value,
            total_value,
            callers,
            callees,
        }
    }

    /// A value as the mode counts it: samples, or time (whole seconds
    /// past a thousand, as the columns are narrow).
    pub(super) fn text(&self, value: u64) -> String {
        match self.mode {
            Mode::OnCpu => value.to_string(),
            Mode::OffCpu | Mode::Wall if value >= 1_000_000_000 => {
                format!("{:.0} s", value as f64 / 1e6)
            }
            Mode::OffCpu | Mode::Wall => time(value),
        }
    }

    /// What the values are in, for headers.
    pub(super) fn unit(&self) -> &'static str {
        match self.mode {
            Mode::OnCpu => "samples",
            Mode::OffCpu | Mode::Wall => "time",
        }
    }
}

fn heaviest(names: &Names, a: (Key, u64), b: (Key, u64)) -> Ordering {
    b.1.cmp(&a.1)
        .then_with(|| names.name(a.0).cmp(names.name(b.0)))
}
