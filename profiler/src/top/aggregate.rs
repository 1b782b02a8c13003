//! What the view counts of each interval, in maps small and cheap enough
//! to add up every interval. Functions are keyed by name and module
//! (interned in [`Names`], as each interval's frame table is its own), per
//! process and for all. [`Tables`] is what the tables show (self and total
//! per function, weight per process, losses): it is added, and taken away
//! again as an interval leaves the decaying window. [`Edges`] holds the
//! caller → callee weights only a function's detail shows.

use std::hash::Hash;

use foldhash::HashMap;
use profiler_common::Loss;

use crate::{
    analysis::{SelfTotal, module_label},
    profile::{Frame, FrameKind},
};

/// A function, as an index into [`Names`].
pub(super) type Key = u32;

/// Every function seen, by name and module, so that the intervals count
/// the same function under one key.
#[derive(Debug, Default)]
pub(super) struct Names {
    /// Module label, then name.
    keys: HashMap<String, HashMap<String, Key>>,
    names: Vec<(String, String)>,
    /// Pseudo-frames (`[truncated]`...) make no call edge.
    pseudo: Vec<bool>,
}

impl Names {
    pub(super) fn key(&mut self, frame: &Frame) -> Key {
        let module = module_label(frame.kind, frame.module.as_deref());
        let known = self.keys.get(&module).and_then(|m| m.get(&frame.name));
        let key = match known {
            Some(&key) => key,
            None => {
                let key = self.names.len() as Key;
                let by_name = self.keys.entry(module.clone()).or_default();
                by_name.insert(frame.name.clone(), key);
                self.names.push((frame.name.clone(), module));
                self.pseudo.push(false);
                key
            }
        };
        self.pseudo[key as usize] |= frame.kind == FrameKind::Pseudo;
        key
    }

    pub(super) fn name(&self, key: Key) -> &str {
        &self.names[key as usize].0
    }

    pub(super) fn module(&self, key: Key) -> &str {
        &self.names[key as usize].1
    }

    pub(super) fn is_pseudo(&self, key: Key) -> bool {
        self.pseudo[key as usize]
    }
}

/// Functions with their self and total weight, and the weight of all
/// their stacks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Functions {
    pub(super) weight: u64,
    pub(super) functions: HashMap<Key, SelfTotal>,
}

/// On-CPU samples or off-CPU microseconds, by process and for all.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Side {
    pub(super) processes: HashMap<u32, Functions>,
    pub(super) all: Functions,
}

/// What the tables show, of one interval or a sum of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Tables {
    /// Samples.
    pub(super) on: Side,
    /// Microseconds.
    pub(super) off: Side,
    /// Process names, as the intervals gave them.
    pub(super) names: HashMap<u32, String>,
    /// Indexed as `Loss::ALL`.
    pub(super) losses: [u64; Loss::ALL.len()],
}

/// Caller → callee weights of one process.
pub(super) type Calls = HashMap<(Key, Key), u64>;

/// Caller → callee weights by process: on-CPU samples and off-CPU
/// microseconds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Edges {
    pub(super) on: HashMap<u32, Calls>,
    pub(super) off: HashMap<u32, Calls>,
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

impl Tally for Functions {
    fn apply(&mut self, other: &Functions, op: Op) {
        self.weight.apply(&other.weight, op);
        merge(&mut self.functions, &other.functions, op);
    }

    fn is_zero(&self) -> bool {
        self.weight == 0 && self.functions.is_empty()
    }
}

impl Side {
    fn apply(&mut self, other: &Side, op: Op) {
        merge(&mut self.processes, &other.processes, op);
        self.all.apply(&other.all, op);
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

impl Tables {
    pub(super) fn add(&mut self, other: &Tables) {
        self.apply(other, Op::Add);
        for (&pid, name) in &other.names {
            self.names.insert(pid, name.clone());
        }
    }

    /// Takes away what `add` added, but the names of the processes.
    pub(super) fn sub(&mut self, other: &Tables) {
        self.apply(other, Op::Sub);
    }

    fn apply(&mut self, other: &Tables, op: Op) {
        self.on.apply(&other.on, op);
        self.off.apply(&other.off, op);
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

    fn side(tgid: u32, key: Key, weight: u64) -> Side {
        let counts = SelfTotal {
            self_count: weight,
            total: weight,
        };
        let functions = Functions {
            weight,
            functions: [(key, counts)].into_iter().collect(),
        };
        Side {
            processes: [(tgid, functions.clone())].into_iter().collect(),
            all: functions,
        }
    }

    #[test]
    fn what_is_added_then_taken_away_leaves_nothing_behind_but_names() {
        let mut first = Tables {
            on: side(7, 1, 5),
            names: [(7, "app".to_string())].into_iter().collect(),
            ..Tables::default()
        };
        first.losses[0] = 2;
        let second = Tables {
            off: side(8, 2, 300),
            ..Tables::default()
        };
        let mut sum = Tables::default();
        sum.add(&first);
        sum.add(&second);
        assert_eq!((sum.on.all.weight, sum.off.all.weight), (5, 300));
        sum.sub(&first);
        assert_eq!(sum.on, Side::default(), "entries at zero are gone");
        assert_eq!(sum.off, second.off);
        assert_eq!(sum.losses().map(|(_, n)| n).sum::<u64>(), 0);
        assert_eq!(sum.names[&7], "app");
    }

    #[test]
    fn a_function_is_one_key_by_name_and_module() {
        let mut names = Names::default();
        let frame = |name: &str, module: Option<&str>, kind| Frame {
            name: name.into(),
            module: module.map(Into::into),
            kind,
        };
        let a = names.key(&frame("f", Some("app"), FrameKind::User));
        assert_eq!(names.key(&frame("f", Some("app"), FrameKind::Inlined)), a);
        let b = names.key(&frame("f", Some("libc.so.6"), FrameKind::User));
        assert_ne!(a, b);
        assert_eq!((names.name(b), names.module(b)), ("f", "libc.so.6"));
        let cut = names.key(&frame("[truncated]", None, FrameKind::Pseudo));
        assert!(names.is_pseudo(cut) && !names.is_pseudo(a));
    }
}
