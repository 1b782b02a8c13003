//! What the view counts, small enough to keep per interval and to add and
//! take away: per function (keyed by name and module, interned in
//! [`Names`]) its self and total on-CPU samples and off-CPU time, per
//! caller → callee edge the same, all of it for the whole machine and per
//! process; and the loss counters.

use std::{collections::HashMap, hash::Hash};

use profiler_common::Loss;

use crate::{
    analysis::{SelfTotal, module_label},
    profile::Frame,
};

/// A function, as an index into [`Names`].
pub(super) type Key = u32;

/// Every function seen, by name and module, so that the intervals (whose
/// frame tables are their own) count the same function under one key.
#[derive(Debug, Default)]
pub(super) struct Names {
    /// Module label, then name.
    keys: HashMap<String, HashMap<String, Key>>,
    names: Vec<(String, String)>,
}

impl Names {
    pub(super) fn key(&mut self, frame: &Frame) -> Key {
        let module = module_label(frame.kind, frame.module.as_deref());
        let known = self.keys.get(&module).and_then(|m| m.get(&frame.name));
        if let Some(&key) = known {
            return key;
        }
        let key = self.names.len() as Key;
        let by_name = self.keys.entry(module.clone()).or_default();
        by_name.insert(frame.name.clone(), key);
        self.names.push((frame.name.clone(), module));
        key
    }

    pub(super) fn name(&self, key: Key) -> &str {
        &self.names[key as usize].0
    }

    pub(super) fn module(&self, key: Key) -> &str {
        &self.names[key as usize].1
    }
}

/// A function's weight: on-CPU in samples, off-CPU in microseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) on: SelfTotal,
    pub(super) off: SelfTotal,
}

/// An edge's weight: on-CPU in samples, off-CPU in microseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct EdgeCounts {
    pub(super) on: u64,
    pub(super) off: u64,
}

/// The functions and edges of the whole machine or of one process.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Scope {
    /// On-CPU samples.
    pub(super) on: u64,
    /// Off-CPU microseconds.
    pub(super) off: u64,
    pub(super) functions: HashMap<Key, Counts>,
    pub(super) edges: HashMap<(Key, Key), EdgeCounts>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Process {
    /// None until an interval names it.
    pub(super) name: Option<String>,
    pub(super) scope: Scope,
}

/// One interval, or a sum of intervals.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Aggregate {
    pub(super) all: Scope,
    pub(super) processes: HashMap<u32, Process>,
    /// Indexed as `Loss::ALL`.
    pub(super) losses: [u64; Loss::ALL.len()],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
}

/// A weight that sums and, when an interval leaves the window, subtracts.
trait Tally: Default {
    fn apply(&mut self, other: &Self, op: Op);
    fn is_zero(&self) -> bool;
}

impl Tally for u64 {
    fn apply(&mut self, other: &u64, op: Op) {
        *self = match op {
            Op::Add => self.saturating_add(*other),
            Op::Sub => self.saturating_sub(*other),
        };
    }

    fn is_zero(&self) -> bool {
        *self == 0
    }
}

impl Tally for SelfTotal {
    fn apply(&mut self, other: &SelfTotal, op: Op) {
        self.self_count.apply(&other.self_count, op);
        self.total.apply(&other.total, op);
    }

    fn is_zero(&self) -> bool {
        self.self_count == 0 && self.total == 0
    }
}

impl Tally for Counts {
    fn apply(&mut self, other: &Counts, op: Op) {
        self.on.apply(&other.on, op);
        self.off.apply(&other.off, op);
    }

    fn is_zero(&self) -> bool {
        self.on.is_zero() && self.off.is_zero()
    }
}

impl Tally for EdgeCounts {
    fn apply(&mut self, other: &EdgeCounts, op: Op) {
        self.on.apply(&other.on, op);
        self.off.apply(&other.off, op);
    }

    fn is_zero(&self) -> bool {
        self.on == 0 && self.off == 0
    }
}

impl Tally for Scope {
    fn apply(&mut self, other: &Scope, op: Op) {
        self.on.apply(&other.on, op);
        self.off.apply(&other.off, op);
        merge(&mut self.functions, &other.functions, op);
        merge(&mut self.edges, &other.edges, op);
    }

    fn is_zero(&self) -> bool {
        self.on == 0 && self.off == 0 && self.functions.is_empty() && self.edges.is_empty()
    }
}

impl Tally for Process {
    fn apply(&mut self, other: &Process, op: Op) {
        if other.name.is_some() {
            self.name.clone_from(&other.name);
        }
        self.scope.apply(&other.scope, op);
    }

    fn is_zero(&self) -> bool {
        self.scope.is_zero()
    }
}

/// Adds or subtracts `from` into `into`; entries that drop to nothing
/// are removed, so the decaying window forgets what left it.
fn merge<K: Copy + Eq + Hash, V: Tally>(into: &mut HashMap<K, V>, from: &HashMap<K, V>, op: Op) {
    for (&key, value) in from {
        match op {
            Op::Add => into.entry(key).or_default().apply(value, op),
            Op::Sub => {
                if let Some(entry) = into.get_mut(&key) {
                    entry.apply(value, op);
                    if entry.is_zero() {
                        into.remove(&key);
                    }
                }
            }
        }
    }
}

impl Aggregate {
    pub(super) fn add(&mut self, other: &Aggregate) {
        self.apply(other, Op::Add);
    }

    pub(super) fn sub(&mut self, other: &Aggregate) {
        self.apply(other, Op::Sub);
    }

    fn apply(&mut self, other: &Aggregate, op: Op) {
        self.all.apply(&other.all, op);
        merge(&mut self.processes, &other.processes, op);
        for (mine, theirs) in self.losses.iter_mut().zip(&other.losses) {
            mine.apply(theirs, op);
        }
    }

    /// The losses counted, with their counters, in the Quality block's order.
    pub(super) fn losses(&self) -> impl Iterator<Item = (Loss, u64)> + '_ {
        Loss::ALL.into_iter().zip(self.losses.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(key: Key, on: u64) -> Scope {
        let counts = Counts {
            on: SelfTotal {
                self_count: on,
                total: on,
            },
            ..Counts::default()
        };
        Scope {
            on,
            functions: HashMap::from([(key, counts)]),
            ..Scope::default()
        }
    }

    #[test]
    fn what_is_added_then_taken_away_leaves_nothing_behind() {
        let process = Process {
            name: Some("app".into()),
            scope: scope(1, 5),
        };
        let mut first = Aggregate {
            all: scope(1, 5),
            processes: HashMap::from([(7, process)]),
            ..Aggregate::default()
        };
        first.losses[0] = 2;
        let second = Aggregate {
            all: scope(2, 3),
            ..Aggregate::default()
        };
        let mut sum = Aggregate::default();
        sum.add(&first);
        sum.add(&second);
        assert_eq!(sum.all.on, 8);
        assert_eq!(sum.all.functions.len(), 2);
        sum.sub(&first);
        assert_eq!(sum.all, second.all);
        assert!(
            sum.processes.is_empty(),
            "the process left with its interval"
        );
        assert_eq!(sum.losses().map(|(_, n)| n).sum::<u64>(), 0);
    }

    #[test]
    fn a_function_is_one_key_by_name_and_module() {
        let mut names = Names::default();
        let frame = |name: &str, module: &str| Frame {
            name: name.into(),
            module: Some(module.into()),
            kind: crate::profile::FrameKind::User,
        };
        let a = names.key(&frame("f", "app"));
        assert_eq!(names.key(&frame("f", "app")), a);
        let b = names.key(&frame("f", "libc.so.6"));
        assert_ne!(a, b);
        assert_eq!((names.name(b), names.module(b)), ("f", "libc.so.6"));
    }
}
