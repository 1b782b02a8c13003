//! The numbers on screen, from a sum of intervals: the functions ranked by
//! self or total, the processes, a function's callers and callees; in
//! on-CPU samples, off-CPU time or wall time, for the whole machine or one
//! process. Pure functions of the sums ([`Tables`], [`Edges`]).

use std::{cmp::Ordering, hash::Hash};

use foldhash::HashMap;

use super::aggregate::{Calls, Edges, Key, Names, Side, Tables};
use crate::{analysis::SelfTotal, output::table::time};

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

/// How to look at the sums.
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

/// Calls `f` with each key of either map and its value in both (a map
/// left out counts nothing).
fn union<K: Copy + Eq + Hash, V: Copy + Default>(
    on: Option<&HashMap<K, V>>,
    off: Option<&HashMap<K, V>>,
    mut f: impl FnMut(K, V, V),
) {
    for (&key, &value) in on.into_iter().flatten() {
        let other = off.and_then(|m| m.get(&key)).copied().unwrap_or_default();
        f(key, value, other);
    }
    for (&key, &value) in off.into_iter().flatten() {
        if !on.is_some_and(|m| m.contains_key(&key)) {
            f(key, V::default(), value);
        }
    }
}

impl Lens {
    /// Which sides the mode reads: on-CPU, off-CPU.
    fn sides(&self) -> (bool, bool) {
        match self.mode {
            Mode::OnCpu => (true, false),
            Mode::OffCpu => (false, true),
            Mode::Wall => (true, true),
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

    /// Each function of the scope (all processes, or the chosen one) with
    /// its self and total value.
    fn each_function<'a>(&self, tables: &'a Tables, mut f: impl FnMut(Key, u64, u64)) {
        let (on, off) = self.sides();
        let value = |key, on: SelfTotal, off: SelfTotal| {
            let self_value = self.value(on.self_count, off.self_count);
            f(key, self_value, self.value(on.total, off.total));
        };
        let functions = |side: &'a Side| match self.pid {
            None => Some(&side.all.functions),
            Some(pid) => side.processes.get(&pid).map(|p| &p.functions),
        };
        union(
            functions(&tables.on).filter(|_| on),
            functions(&tables.off).filter(|_| off),
            value,
        );
    }

    /// What the functions' shares are of: all the stacks of the scope.
    pub(super) fn whole(&self, tables: &Tables) -> u64 {
        let weight = |side: &Side| match self.pid {
            None => side.all.weight,
            Some(pid) => side.processes.get(&pid).map_or(0, |p| p.weight),
        };
        self.value(weight(&tables.on), weight(&tables.off))
    }

    /// How many functions have a weight in this mode.
    pub(super) fn function_count(&self, tables: &Tables) -> usize {
        let mut count = 0;
        self.each_function(tables, |_, _, total| count += usize::from(total > 0));
        count
    }

    /// The first `limit` functions in the order of `sort` (the other value,
    /// then the name, break ties). Only those are sorted: a long run knows
    /// far more functions than a screen shows.
    pub(super) fn functions(
        &self,
        tables: &Tables,
        names: &Names,
        limit: usize,
    ) -> Vec<FunctionRow> {
        if limit == 0 {
            return Vec::new();
        }
        let mut rows = Vec::new();
        self.each_function(tables, |key, self_value, total_value| {
            if total_value > 0 {
                rows.push(FunctionRow {
                    key,
                    self_value,
                    total_value,
                });
            }
        });
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
    pub(super) fn processes(&self, tables: &Tables) -> Vec<ProcessRow> {
        let (on, off) = self.sides();
        let weights = |side: &Side| -> HashMap<u32, u64> {
            side.processes
                .iter()
                .map(|(&pid, p)| (pid, p.weight))
                .collect()
        };
        let (on_weights, off_weights) = (weights(&tables.on), weights(&tables.off));
        let mut rows = Vec::new();
        union(
            Some(&on_weights).filter(|_| on),
            Some(&off_weights).filter(|_| off),
            |pid, on, off| {
                let name = tables.names.get(&pid).map_or(UNNAMED, String::as_str);
                rows.push(ProcessRow {
                    pid,
                    name: name.to_string(),
                    value: self.value(on, off),
                });
            },
        );
        rows.retain(|p| p.value > 0);
        rows.sort_by(|a, b| (b.value, a.pid).cmp(&(a.value, b.pid)));
        rows
    }

    /// The function's weight, and its heaviest `limit` callers and callees.
    pub(super) fn detail(
        &self,
        tables: &Tables,
        edges: &Edges,
        names: &Names,
        key: Key,
        limit: usize,
    ) -> Detail {
        let mut detail = Detail::default();
        self.each_function(tables, |k, self_value, total_value| {
            if k == key {
                (detail.self_value, detail.total_value) = (self_value, total_value);
            }
        });
        // On-CPU and off-CPU weights apart, as wall time adds them scaled.
        let mut callers: HashMap<Key, (u64, u64)> = HashMap::default();
        let mut callees: HashMap<Key, (u64, u64)> = HashMap::default();
        let (on, off) = self.sides();
        let chosen = |&(&pid, _): &(&u32, &Calls)| self.pid.is_none_or(|p| p == pid);
        for (by_process, is_on) in [(&edges.on, true), (&edges.off, false)] {
            if (is_on && !on) || (!is_on && !off) {
                continue;
            }
            for (_, calls) in by_process.iter().filter(chosen) {
                for (&(caller, callee), &weight) in calls {
                    let add = |sums: &mut HashMap<Key, (u64, u64)>, other| {
                        let sum = sums.entry(other).or_default();
                        *(if is_on { &mut sum.0 } else { &mut sum.1 }) += weight;
                    };
                    if callee == key {
                        add(&mut callers, caller);
                    }
                    if caller == key {
                        add(&mut callees, callee);
                    }
                }
            }
        }
        for (sums, list) in [
            (callers, &mut detail.callers),
            (callees, &mut detail.callees),
        ] {
            *list = sums
                .into_iter()
                .map(|(other, (on, off))| (other, self.value(on, off)))
                .filter(|&(_, value)| value > 0)
                .collect();
            list.sort_by(|a, b| heaviest(names, *a, *b));
            list.truncate(limit);
        }
        detail
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
