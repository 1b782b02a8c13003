//! One interval's profile made into an [`Aggregate`]: its stacks, whose
//! frame ids are the interval's own, counted by function key with the
//! rules of `analysis` (a function counts once per stack in its total, an
//! edge once per stack, pseudo-frames make no edge), by calling its
//! functions.

use std::collections::HashSet;

use super::aggregate::{Aggregate, Counts, EdgeCounts, Key, Names, Scope};
use crate::{
    analysis::{SelfTotal, paths::edge_weights, self_and_total},
    profile::{FrameKind, Profile, StackSite},
};

/// A function in one process: the process id in the high half, the key in
/// the low one, so one pass over the stacks splits them by process.
type Slot = u64;

fn slot(tgid: u32, key: Key) -> Slot {
    (u64::from(tgid) << 32) | u64::from(key)
}

fn tgid_of(slot: Slot) -> u32 {
    (slot >> 32) as u32
}

fn key_of(slot: Slot) -> Key {
    slot as Key
}

/// Weighted stacks of slots, in one buffer.
#[derive(Default)]
struct Stacks {
    slots: Vec<Slot>,
    /// Start and end in `slots`, process, weight.
    stacks: Vec<(usize, usize, u32, u64)>,
}

impl Stacks {
    fn new<'a>(sites: impl Iterator<Item = (&'a StackSite, u64)>, keys: &[Key]) -> Stacks {
        let mut stacks = Stacks::default();
        for (site, weight) in sites {
            let start = stacks.slots.len();
            let frames = site
                .frames
                .iter()
                .map(|&f| slot(site.tgid, keys[f as usize]));
            stacks.slots.extend(frames);
            let end = stacks.slots.len();
            stacks.stacks.push((start, end, site.tgid, weight));
        }
        stacks
    }

    fn iter(&self) -> impl Iterator<Item = (&[Slot], u64)> + '_ {
        self.stacks
            .iter()
            .map(|&(start, end, _, weight)| (&self.slots[start..end], weight))
    }
}

/// On-CPU (samples) or off-CPU (microseconds).
#[derive(Debug, Clone, Copy)]
enum Side {
    On,
    Off,
}

impl Side {
    fn weight(self, scope: &mut Scope) -> &mut u64 {
        match self {
            Side::On => &mut scope.on,
            Side::Off => &mut scope.off,
        }
    }

    fn function(self, counts: &mut Counts) -> &mut SelfTotal {
        match self {
            Side::On => &mut counts.on,
            Side::Off => &mut counts.off,
        }
    }

    fn edge(self, counts: &mut EdgeCounts) -> &mut u64 {
        match self {
            Side::On => &mut counts.on,
            Side::Off => &mut counts.off,
        }
    }
}

pub(super) fn aggregate(profile: &Profile, names: &mut Names) -> Aggregate {
    let frames = profile.frames.all();
    let keys: Vec<Key> = frames.iter().map(|f| names.key(f)).collect();
    let pseudo: HashSet<Key> = frames
        .iter()
        .zip(&keys)
        .filter(|(f, _)| f.kind == FrameKind::Pseudo)
        .map(|(_, &key)| key)
        .collect();
    let mut aggregate = Aggregate::default();
    for (count, (_, n)) in aggregate.losses.iter_mut().zip(profile.losses.entries()) {
        *count = n;
    }
    let on = Stacks::new(profile.on_cpu.iter().map(|(s, &n)| (s, n)), &keys);
    add(&mut aggregate, &on, Side::On, &pseudo);
    let off_sites = profile.off_cpu.iter().map(|(o, &us)| (&o.site, us));
    add(
        &mut aggregate,
        &Stacks::new(off_sites, &keys),
        Side::Off,
        &pseudo,
    );
    for (tgid, process) in &mut aggregate.processes {
        process.name = profile.processes.get(tgid).map(|p| p.name.clone());
    }
    aggregate
}

fn add(aggregate: &mut Aggregate, stacks: &Stacks, side: Side, pseudo: &HashSet<Key>) {
    let Aggregate { all, processes, .. } = aggregate;
    for &(_, _, tgid, weight) in &stacks.stacks {
        *side.weight(all) += weight;
        *side.weight(&mut processes.entry(tgid).or_default().scope) += weight;
    }
    for (slot, counts) in self_and_total(stacks.iter()) {
        let scope = &mut processes.entry(tgid_of(slot)).or_default().scope;
        for scope in [scope, &mut *all] {
            let function = side.function(scope.functions.entry(key_of(slot)).or_default());
            function.self_count += counts.self_count;
            function.total += counts.total;
        }
    }
    let (edges, _) = edge_weights(stacks.iter(), |s| pseudo.contains(&key_of(s)));
    for ((caller, callee), weight) in edges {
        let scope = &mut processes.entry(tgid_of(caller)).or_default().scope;
        for scope in [scope, &mut *all] {
            let edge = (key_of(caller), key_of(callee));
            *side.edge(scope.edges.entry(edge).or_default()) += weight;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::hot_functions,
        profile::{Frame, OffState},
    };

    fn site(profile: &mut Profile, tgid: u32, names: &[&str]) -> StackSite {
        let frames = names
            .iter()
            .map(|n| {
                let kind = if n.starts_with('[') {
                    FrameKind::Pseudo
                } else {
                    FrameKind::User
                };
                let module = (kind == FrameKind::User).then(|| "app".to_string());
                profile.frames.intern(Frame {
                    name: n.to_string(),
                    module,
                    kind,
                })
            })
            .collect();
        StackSite {
            tgid,
            tid: tgid,
            frames,
            ..StackSite::default()
        }
    }

    #[test]
    fn counts_match_the_analysis_and_split_by_process() {
        let mut p = Profile::default();
        p.name_process(1, || "one".into());
        let s = site(&mut p, 1, &["main", "fib", "fib", "fib"]);
        p.add(s, 4);
        let s = site(&mut p, 1, &["[truncated]", "main", "work"]);
        p.add(s, 2);
        let s = site(&mut p, 2, &["main", "work"]);
        p.add(s, 3);
        let s = site(&mut p, 2, &["main", "wait"]);
        p.add_off_cpu(s, OffState::Sleeping, 500);
        let mut names = Names::default();
        let aggregate = aggregate(&p, &mut names);
        let named = |scope: &Scope, name: &str| {
            let (_, counts) = scope
                .functions
                .iter()
                .find(|&(&k, _)| names.name(k) == name)
                .unwrap();
            *counts
        };
        for stat in hot_functions(&p) {
            let counts = named(&aggregate.all, &stat.name);
            assert_eq!(counts.on.self_count, stat.self_samples, "{}", stat.name);
            assert_eq!(counts.on.total, stat.total_samples, "{}", stat.name);
        }
        assert_eq!(named(&aggregate.all, "fib").on.total, 4, "once per stack");
        assert_eq!((aggregate.all.on, aggregate.all.off), (9, 500));
        let one = &aggregate.processes[&1];
        assert_eq!(one.name.as_deref(), Some("one"));
        assert_eq!((one.scope.on, named(&one.scope, "work").on.total), (6, 2));
        let two = &aggregate.processes[&2];
        assert_eq!(two.name, None, "never named");
        assert_eq!(named(&two.scope, "wait").off.self_count, 500);
        let edge = |scope: &Scope, from: &str, to: &str| {
            scope
                .edges
                .iter()
                .find(|((a, b), _)| names.name(*a) == from && names.name(*b) == to)
                .map(|(_, counts)| *counts)
        };
        let main_work = edge(&aggregate.all, "main", "work").unwrap();
        assert_eq!((main_work.on, main_work.off), (5, 0));
        assert_eq!(edge(&aggregate.all, "fib", "fib").unwrap().on, 4);
        assert_eq!(edge(&aggregate.all, "[truncated]", "main"), None);
        assert_eq!(edge(&two.scope, "main", "wait").unwrap().off, 500);
    }
}
