//! Analyses of a profile: the hot functions by self and by total (inclusive)
//! samples, and the processes by samples; with off-CPU time, the functions
//! by wall time and the places threads waited (`off_cpu`). Pure functions
//! of the model.

pub(crate) mod advice;
pub(crate) mod off_cpu;
pub(crate) mod paths;

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash},
};

use crate::profile::{FrameKind, Profile};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionStat {
    pub(crate) name: String,
    pub(crate) module: String,
    /// Samples where this function was the innermost frame.
    pub(crate) self_samples: u64,
    /// Samples with this function anywhere on the stack, each stack once.
    pub(crate) total_samples: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcessStat {
    pub(crate) pid: u32,
    pub(crate) name: String,
    pub(crate) samples: u64,
}

/// Everything the tables and the JSON report show, computed once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    pub(crate) total_samples: u64,
    /// By total samples, descending.
    pub(crate) functions: Vec<FunctionStat>,
    pub(crate) processes: Vec<ProcessStat>,
    /// Present when off-CPU time was recorded.
    pub(crate) off_cpu: Option<off_cpu::OffCpuSummary>,
    /// The hottest caller → callee edges by on-CPU samples.
    pub(crate) call_paths: Vec<paths::CallEdge>,
    /// The same by off-CPU time (empty without off-CPU time).
    pub(crate) off_cpu_call_paths: Vec<paths::CallEdge>,
    pub(crate) recommendations: Vec<String>,
}

/// Call paths kept for the report; the tables show `--top` of them.
const CALL_PATHS: usize = 100;

/// `sample_period_us`: on-CPU time one sample stands for (1e6 / freq).
pub(crate) fn summarize(profile: &Profile, off_cpu: bool, sample_period_us: f64) -> Summary {
    let mut summary = Summary {
        total_samples: profile.total_samples(),
        functions: hot_functions(profile),
        processes: processes(profile),
        off_cpu: off_cpu.then(|| off_cpu::summarize(profile, sample_period_us)),
        call_paths: paths::on_cpu_edges(profile, CALL_PATHS),
        off_cpu_call_paths: if off_cpu {
            paths::off_cpu_edges(profile, CALL_PATHS)
        } else {
            Vec::new()
        },
        recommendations: Vec::new(),
    };
    summary.recommendations = advice::recommend(profile, &summary);
    summary
}

/// Every function with its self and total samples, by total descending.
pub(crate) fn hot_functions(profile: &Profile) -> Vec<FunctionStat> {
    let stacks = profile
        .on_cpu
        .iter()
        .map(|(site, &count)| (site.frames.as_slice(), count));
    let mut stats: Vec<FunctionStat> = self_and_total(stacks)
        .into_iter()
        .map(|(id, counts)| {
            let frame = profile.frames.get(id);
            FunctionStat {
                name: frame.name.clone(),
                module: module_label(frame.kind, frame.module.as_deref()),
                self_samples: counts.self_count,
                total_samples: counts.total,
            }
        })
        .collect();
    stats.sort_by(|a, b| {
        (b.total_samples, b.self_samples, &a.name).cmp(&(a.total_samples, a.self_samples, &b.name))
    });
    stats
}

/// A frame's weight over many stacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SelfTotal {
    /// The weight of the stacks where it is the innermost frame.
    pub(crate) self_count: u64,
    /// The weight of the stacks it is on, each stack once.
    pub(crate) total: u64,
}

/// Self and total weight of every frame of weighted stacks (outermost
/// frame first). A recursive function is on a stack more than once but
/// spent the stack's time only once.
pub(crate) fn self_and_total<'a, F: Copy + Ord + Hash + 'a>(
    stacks: impl IntoIterator<Item = (&'a [F], u64)>,
) -> HashMap<F, SelfTotal> {
    self_and_total_hashed(stacks)
}

/// [`self_and_total`] into a map of the caller's hasher (`top` counts
/// every interval, and hashes its own small keys faster).
pub(crate) fn self_and_total_hashed<'a, F: Copy + Ord + Hash + 'a, S: BuildHasher + Default>(
    stacks: impl IntoIterator<Item = (&'a [F], u64)>,
) -> HashMap<F, SelfTotal, S> {
    let mut counts: HashMap<F, SelfTotal, S> = HashMap::default();
    let mut on_stack: Vec<F> = Vec::new();
    for (frames, weight) in stacks {
        if let Some(&leaf) = frames.last() {
            counts.entry(leaf).or_default().self_count += weight;
        }
        on_stack.clear();
        on_stack.extend_from_slice(frames);
        on_stack.sort_unstable();
        on_stack.dedup();
        for &frame in &on_stack {
            counts.entry(frame).or_default().total += weight;
        }
    }
    counts
}

/// The top `n` by self samples (functions with no self time left out).
pub(crate) fn top_by_self(functions: &[FunctionStat], n: usize) -> Vec<FunctionStat> {
    let mut by_self: Vec<FunctionStat> = functions
        .iter()
        .filter(|f| f.self_samples > 0)
        .cloned()
        .collect();
    by_self.sort_by(|a, b| (b.self_samples, &a.name).cmp(&(a.self_samples, &b.name)));
    by_self.truncate(n);
    by_self
}

pub(crate) fn processes(profile: &Profile) -> Vec<ProcessStat> {
    let mut stats: Vec<ProcessStat> = profile
        .processes
        .iter()
        .filter(|(_, p)| p.samples > 0)
        .map(|(&pid, p)| ProcessStat {
            pid,
            name: p.name.clone(),
            samples: p.samples,
        })
        .collect();
    stats.sort_by(|a, b| (b.samples, a.pid).cmp(&(a.samples, b.pid)));
    stats
}

pub(crate) fn module_label(kind: FrameKind, module: Option<&str>) -> String {
    match (kind, module) {
        (FrameKind::Kernel, _) => "[kernel]".into(),
        (_, Some(module)) => module.into(),
        (_, None) => String::new(),
    }
}

pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Frame, StackSite};

    fn frame(name: &str) -> Frame {
        Frame {
            name: name.into(),
            module: Some("app".into()),
            kind: FrameKind::User,
        }
    }

    fn profile(stacks: &[(&[&str], u64)]) -> Profile {
        let mut profile = Profile::default();
        profile.name_process(1, || "app".into());
        for (names, count) in stacks {
            let frames = names
                .iter()
                .map(|n| profile.frames.intern(frame(n)))
                .collect();
            profile.add(
                StackSite {
                    tgid: 1,
                    tid: 1,
                    frames,
                    ..StackSite::default()
                },
                *count,
            );
        }
        profile
    }

    fn stat<'a>(stats: &'a [FunctionStat], name: &str) -> &'a FunctionStat {
        stats.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn self_is_leaf_time_and_total_is_inclusive_time() {
        let p = profile(&[
            (&["main", "a", "b"], 3),
            (&["main", "a"], 2),
            (&["main", "c"], 5),
        ]);
        let stats = hot_functions(&p);
        assert_eq!(
            (
                stat(&stats, "main").self_samples,
                stat(&stats, "main").total_samples
            ),
            (0, 10)
        );
        assert_eq!(
            (
                stat(&stats, "a").self_samples,
                stat(&stats, "a").total_samples
            ),
            (2, 5)
        );
        assert_eq!(
            (
                stat(&stats, "b").self_samples,
                stat(&stats, "b").total_samples
            ),
            (3, 3)
        );
        assert_eq!(
            (
                stat(&stats, "c").self_samples,
                stat(&stats, "c").total_samples
            ),
            (5, 5)
        );
        assert_eq!(stats[0].name, "main", "sorted by total");
        let by_self = top_by_self(&stats, 2);
        assert_eq!(
            by_self.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["c", "b"]
        );
    }

    #[test]
    fn recursion_counts_each_stack_once_in_total() {
        let p = profile(&[(&["main", "fib", "fib", "fib"], 4), (&["main", "other"], 4)]);
        let fib = stat(&hot_functions(&p), "fib").clone();
        assert_eq!(fib.total_samples, 4, "not 12");
        assert_eq!(fib.self_samples, 4);
        assert_eq!(percent(fib.total_samples, p.total_samples()), 50.0);
    }

    #[test]
    fn processes_rank_by_samples() {
        let mut p = profile(&[(&["main"], 1)]);
        p.name_process(2, || "busy".into());
        let f = p.frames.intern(frame("spin"));
        p.add(
            StackSite {
                tgid: 2,
                tid: 2,
                frames: vec![f],
                ..StackSite::default()
            },
            9,
        );
        let stats = processes(&p);
        assert_eq!(
            stats[0],
            ProcessStat {
                pid: 2,
                name: "busy".into(),
                samples: 9
            }
        );
        assert_eq!(stats[1].samples, 1);
    }

    #[test]
    fn percent_of_nothing_is_zero() {
        assert_eq!(percent(0, 0), 0.0);
    }
}
