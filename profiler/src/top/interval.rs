//! One interval's profile made into an [`Interval`]: its stacks, whose
//! frame ids are the interval's own, as function keys by process, and
//! counted into the tables; and their call edges, added up on demand. The
//! rules are those of `analysis`, whose functions do the counting: a
//! function counts once per stack in its total, an edge once per stack,
//! pseudo-frames make no edge.

use foldhash::{HashMap, fast::RandomState};

use super::aggregate::{Calls, Edges, Functions, Key, Names, Side, Tables};
use crate::{
    analysis::{paths::add_edge_weights, self_and_total_hashed},
    profile::{Profile, StackSite},
};

/// One interval: what the tables show, and the stacks the call edges are
/// read from, by process.
#[derive(Debug, Default)]
pub(super) struct Interval {
    pub(super) tables: Tables,
    pub(super) on: HashMap<u32, Stacks>,
    pub(super) off: HashMap<u32, Stacks>,
}

/// One process's weighted stacks of function keys, in one buffer.
#[derive(Debug, Default)]
pub(super) struct Stacks {
    pub(super) keys: Vec<Key>,
    /// Start and end in `keys`, weight.
    pub(super) stacks: Vec<(usize, usize, u64)>,
}

impl Stacks {
    fn by_process<'a>(
        sites: impl Iterator<Item = (&'a StackSite, u64)>,
        keys: &[Key],
    ) -> HashMap<u32, Stacks> {
        let mut by_process: HashMap<u32, Stacks> = HashMap::default();
        for (site, weight) in sites {
            let stacks = by_process.entry(site.tgid).or_default();
            let start = stacks.keys.len();
            stacks
                .keys
                .extend(site.frames.iter().map(|&f| keys[f as usize]));
            let end = stacks.keys.len();
            stacks.stacks.push((start, end, weight));
        }
        by_process
    }

    fn iter(&self) -> impl Iterator<Item = (&[Key], u64)> + '_ {
        self.stacks
            .iter()
            .map(|&(start, end, weight)| (&self.keys[start..end], weight))
    }
}

pub(super) fn interval(profile: &Profile, names: &mut Names) -> Interval {
    let keys: Vec<Key> = profile.frames.all().iter().map(|f| names.key(f)).collect();
    let on = Stacks::by_process(profile.on_cpu.iter().map(|(s, &n)| (s, n)), &keys);
    let off_sites = profile.off_cpu.iter().map(|(o, &us)| (&o.site, us));
    let off = Stacks::by_process(off_sites, &keys);
    let mut tables = Tables {
        on: count(&on),
        off: count(&off),
        ..Tables::default()
    };
    for (count, (_, n)) in tables.losses.iter_mut().zip(profile.losses.entries()) {
        *count = n;
    }
    let seen = on.keys().chain(off.keys());
    let named = seen.filter_map(|&tgid| Some((tgid, profile.processes.get(&tgid)?.name.clone())));
    tables.names.extend(named);
    Interval { tables, on, off }
}

/// Each process's functions, and all of them.
fn count(by_process: &HashMap<u32, Stacks>) -> Side {
    let mut side = Side::default();
    for (&tgid, stacks) in by_process {
        let process = Functions {
            weight: stacks.stacks.iter().map(|&(_, _, weight)| weight).sum(),
            functions: self_and_total_hashed::<_, RandomState>(stacks.iter()),
        };
        side.all.weight += process.weight;
        for (&key, counts) in &process.functions {
            let function = side.all.functions.entry(key).or_default();
            function.self_count += counts.self_count;
            function.total += counts.total;
        }
        side.processes.insert(tgid, process);
    }
    side
}

/// Adds the call edges of every stack of `interval`.
pub(super) fn add_edges(edges: &mut Edges, interval: &Interval, names: &Names) {
    add_calls(&mut edges.on, &interval.on, names, |_| true);
    add_calls(&mut edges.off, &interval.off, names, |_| true);
}

/// The call edges of the stacks of `intervals` that `key` is on: all the
/// edges to and from it.
pub(super) fn edges_of<'a>(
    key: Key,
    intervals: impl Iterator<Item = &'a Interval>,
    names: &Names,
) -> Edges {
    let mut edges = Edges::default();
    for interval in intervals {
        let on_it = |keys: &[Key]| keys.contains(&key);
        add_calls(&mut edges.on, &interval.on, names, on_it);
        add_calls(&mut edges.off, &interval.off, names, on_it);
    }
    edges
}

fn add_calls(
    into: &mut HashMap<u32, Calls>,
    by_process: &HashMap<u32, Stacks>,
    names: &Names,
    keep: impl Fn(&[Key]) -> bool,
) {
    for (&tgid, stacks) in by_process {
        let kept = stacks.iter().filter(|&(keys, _)| keep(keys));
        let calls = into.entry(tgid).or_default();
        add_edge_weights(calls, kept, |key| names.is_pseudo(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{analysis::hot_functions, profile::OffState, top::tests::site};

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
        let interval = interval(&p, &mut names);
        let mut edges = Edges::default();
        add_edges(&mut edges, &interval, &names);
        let tables = &interval.tables;
        let mut key = |name: &str| {
            let frame = p.frames.all().iter().find(|f| f.name == name).unwrap();
            names.key(frame)
        };
        let [main, fib, work, wait, truncated] =
            ["main", "fib", "work", "wait", "[truncated]"].map(&mut key);
        let stats: Vec<(u64, u64, Key)> = hot_functions(&p)
            .into_iter()
            .map(|f| (f.self_samples, f.total_samples, key(&f.name)))
            .collect();
        let on = &tables.on;
        for (self_samples, total_samples, key) in stats {
            let counts = on.all.functions[&key];
            assert_eq!(
                (counts.self_count, counts.total),
                (self_samples, total_samples)
            );
        }
        assert_eq!(on.all.functions[&fib].total, 4, "once per stack");
        assert_eq!((on.all.weight, tables.off.all.weight), (9, 500));
        assert_eq!((on.processes[&1].weight, on.processes[&2].weight), (6, 3));
        assert_eq!(on.processes[&1].functions[&work].total, 2);
        assert_eq!(on.processes[&2].functions[&work].total, 3);
        let wait_off = tables.off.processes[&2].functions[&wait];
        assert_eq!(wait_off.self_count, 500);
        assert_eq!(tables.names[&1], "one");
        assert!(!tables.names.contains_key(&2), "never named");
        let edge = |by_process: &HashMap<u32, Calls>, tgid, from, to| {
            by_process[&tgid].get(&(from, to)).copied()
        };
        assert_eq!(edge(&edges.on, 1, main, work), Some(2));
        assert_eq!(edge(&edges.on, 2, main, work), Some(3));
        assert_eq!(edge(&edges.on, 1, fib, fib), Some(4), "once per stack");
        assert_eq!(edge(&edges.on, 1, truncated, main), None);
        assert_eq!(edge(&edges.off, 2, main, wait), Some(500));
        let of_wait = edges_of(wait, [&interval].into_iter(), &names);
        assert_eq!(edge(&of_wait.off, 2, main, wait), Some(500));
        assert_eq!(
            edge(&of_wait.on, 2, main, work),
            None,
            "a stack without wait"
        );
    }
}
