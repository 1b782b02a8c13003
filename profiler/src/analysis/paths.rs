//! Call paths: the hottest caller → callee edges, each stack counted once
//! per edge, with their share of on-CPU samples and of off-CPU time.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash},
};

use crate::profile::{FrameId, FrameKind, Profile, StackSite};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallEdge {
    pub(crate) caller: String,
    pub(crate) callee: String,
    /// On-CPU samples, or off-CPU microseconds.
    pub(crate) value: u64,
    /// Share of all on-CPU samples, or of all off-CPU time, in percent.
    pub(crate) percent: f64,
}

/// The `top` edges by on-CPU samples.
pub(crate) fn on_cpu_edges(profile: &Profile, top: usize) -> Vec<CallEdge> {
    edges(profile, profile.on_cpu.iter().map(|(s, &n)| (s, n)), top)
}

/// The `top` edges by off-CPU microseconds.
pub(crate) fn off_cpu_edges(profile: &Profile, top: usize) -> Vec<CallEdge> {
    edges(
        profile,
        profile.off_cpu.iter().map(|(o, &us)| (&o.site, us)),
        top,
    )
}

fn edges<'a>(
    profile: &Profile,
    stacks: impl Iterator<Item = (&'a StackSite, u64)>,
    top: usize,
) -> Vec<CallEdge> {
    let (totals, whole) = edge_weights(
        stacks.map(|(site, value)| (site.frames.as_slice(), value)),
        |f: FrameId| profile.frames.get(f).kind == FrameKind::Pseudo,
    );
    let mut edges: Vec<CallEdge> = totals
        .into_iter()
        .map(|((caller, callee), value)| CallEdge {
            caller: profile.frames.get(caller).name.clone(),
            callee: profile.frames.get(callee).name.clone(),
            value,
            percent: super::percent(value, whole),
        })
        .collect();
    edges.sort_by(|a, b| (b.value, &a.caller, &a.callee).cmp(&(a.value, &b.caller, &b.callee)));
    edges.truncate(top);
    edges
}

/// The caller → callee edges of weighted stacks (outermost frame first)
/// with their weights, and the weight of all the stacks. An edge counts
/// once per stack (a recursive one is on it many times but spent its time
/// once); frames `not_a_call` says are pseudo-frames, and make no edge.
pub(crate) fn edge_weights<'a, F: Copy + Ord + Hash + 'a>(
    stacks: impl IntoIterator<Item = (&'a [F], u64)>,
    not_a_call: impl Fn(F) -> bool,
) -> (HashMap<(F, F), u64>, u64) {
    let mut totals = HashMap::new();
    let whole = add_edge_weights(&mut totals, stacks, not_a_call);
    (totals, whole)
}

/// [`edge_weights`] added into `totals`, a map of the caller's hasher
/// (`top` adds every interval into one, and hashes its own small keys
/// faster); returns the weight of the stacks.
pub(crate) fn add_edge_weights<'a, F: Copy + Ord + Hash + 'a, S: BuildHasher>(
    totals: &mut HashMap<(F, F), u64, S>,
    stacks: impl IntoIterator<Item = (&'a [F], u64)>,
    not_a_call: impl Fn(F) -> bool,
) -> u64 {
    let mut whole = 0;
    let mut on_stack: Vec<(F, F)> = Vec::new();
    for (frames, value) in stacks {
        whole += value;
        on_stack.clear();
        let calls = frames.windows(2).map(|pair| (pair[0], pair[1]));
        on_stack
            .extend(calls.filter(|&(caller, callee)| !not_a_call(caller) && !not_a_call(callee)));
        on_stack.sort_unstable();
        on_stack.dedup();
        for &edge in &on_stack {
            *totals.entry(edge).or_default() += value;
        }
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Frame;

    #[test]
    fn edges_count_each_stack_once_and_rank_by_share() {
        let mut p = Profile::default();
        let f = |p: &mut Profile, n: &str| {
            p.frames.intern(Frame {
                name: n.into(),
                module: None,
                kind: FrameKind::User,
            })
        };
        let (main, a, b, rec) = (
            f(&mut p, "main"),
            f(&mut p, "a"),
            f(&mut p, "b"),
            f(&mut p, "rec"),
        );
        let site = |frames| StackSite {
            tgid: 1,
            tid: 1,
            frames,
            ..StackSite::default()
        };
        p.add(site(vec![main, a]), 6);
        p.add(site(vec![main, b, rec, rec, rec]), 4);
        let edges = on_cpu_edges(&p, 10);
        assert_eq!(
            (
                edges[0].caller.as_str(),
                edges[0].callee.as_str(),
                edges[0].value
            ),
            ("main", "a", 6)
        );
        assert_eq!(edges[0].percent, 60.0);
        let recursive = edges
            .iter()
            .find(|e| e.caller == "rec" && e.callee == "rec")
            .unwrap();
        assert_eq!(recursive.value, 4, "counted once per stack");
        assert_eq!(on_cpu_edges(&p, 1).len(), 1);
    }
}
