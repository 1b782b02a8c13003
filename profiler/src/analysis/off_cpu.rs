//! Off-CPU analyses: time per state, per process and thread; functions
//! ranked by wall time (on-CPU plus off-CPU, inclusive); and the places
//! threads waited, by the innermost user-space function (the leaf is always
//! the scheduler, which tells the user nothing).

use std::collections::HashMap;

use super::module_label;
use crate::profile::{FrameId, FrameKind, OffState, Profile, StackSite, StateTimes};

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct OffCpuSummary {
    pub(crate) total_us: u64,
    pub(crate) by_state: StateTimes,
    /// By wall time, descending.
    pub(crate) functions: Vec<WallStat>,
    /// By off-CPU time, descending.
    pub(crate) wait_sites: Vec<WaitSite>,
    /// By wall time, descending.
    pub(crate) processes: Vec<WallEntity>,
    /// By wall time, descending.
    pub(crate) threads: Vec<WallEntity>,
}

/// A function's time, inclusive of its callees.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct WallStat {
    pub(crate) name: String,
    pub(crate) module: String,
    pub(crate) cpu_us: u64,
    pub(crate) off_us: StateTimes,
}

impl WallStat {
    pub(crate) fn off_total(&self) -> u64 {
        self.off_us.iter().sum()
    }

    /// Off-CPU times add up within 64 bits (a saved run's are bounded by
    /// `saved::MAX_TOTAL`), but on-CPU time is samples times the period,
    /// which a made-up run can push past them: the sum saturates.
    pub(crate) fn wall_us(&self) -> u64 {
        self.cpu_us.saturating_add(self.off_total())
    }
}

/// Where threads waited: an innermost user function and its off-CPU time.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct WaitSite {
    pub(crate) name: String,
    pub(crate) module: String,
    pub(crate) off_us: StateTimes,
}

impl WaitSite {
    pub(crate) fn total(&self) -> u64 {
        self.off_us.iter().sum()
    }
}

/// A process or thread with its on-CPU and off-CPU time.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct WallEntity {
    /// pid or tid.
    pub(crate) id: u32,
    /// For a thread, its process.
    pub(crate) tgid: u32,
    pub(crate) name: String,
    pub(crate) cpu_us: u64,
    pub(crate) off_us: StateTimes,
}

impl WallEntity {
    /// Saturates, as `WallStat::wall_us`.
    pub(crate) fn wall_us(&self) -> u64 {
        self.cpu_us.saturating_add(self.off_us.iter().sum::<u64>())
    }
}

pub(crate) fn summarize(profile: &Profile, sample_period_us: f64) -> OffCpuSummary {
    let cpu_us = |samples: u64| (samples as f64 * sample_period_us).round() as u64;
    let mut by_state = StateTimes::default();
    for (site, us) in &profile.off_cpu {
        by_state[site.state.index()] += us;
    }
    let mut processes: Vec<WallEntity> = profile
        .processes
        .iter()
        .map(|(&pid, p)| WallEntity {
            id: pid,
            tgid: pid,
            name: p.name.clone(),
            cpu_us: cpu_us(p.samples),
            off_us: p.off_us,
        })
        .collect();
    let mut threads: Vec<WallEntity> = profile
        .threads
        .iter()
        .map(|(&tid, t)| WallEntity {
            id: tid,
            tgid: t.tgid,
            name: t.name.clone(),
            cpu_us: cpu_us(t.samples),
            off_us: t.off_us,
        })
        .collect();
    for list in [&mut processes, &mut threads] {
        list.retain(|e| e.wall_us() > 0);
        list.sort_by(|a, b| (b.wall_us(), a.id).cmp(&(a.wall_us(), b.id)));
    }
    OffCpuSummary {
        total_us: by_state.iter().sum(),
        by_state,
        functions: functions_by_wall(profile, sample_period_us),
        wait_sites: wait_sites(profile),
        processes,
        threads,
    }
}

fn functions_by_wall(profile: &Profile, sample_period_us: f64) -> Vec<WallStat> {
    let mut cpu_samples: HashMap<FrameId, u64> = HashMap::new();
    let mut off: HashMap<FrameId, StateTimes> = HashMap::new();
    for (site, &samples) in &profile.on_cpu {
        for frame in distinct(&site.frames) {
            *cpu_samples.entry(frame).or_default() += samples;
        }
    }
    for (site, &us) in &profile.off_cpu {
        for frame in distinct(&site.site.frames) {
            off.entry(frame).or_default()[site.state.index()] += us;
        }
    }
    let ids: Vec<FrameId> = cpu_samples.keys().chain(off.keys()).copied().collect();
    let mut stats: Vec<WallStat> = distinct(&ids)
        .into_iter()
        .map(|id| {
            let frame = profile.frames.get(id);
            let samples = cpu_samples.get(&id).copied().unwrap_or(0);
            WallStat {
                name: frame.name.clone(),
                module: module_label(frame.kind, frame.module.as_deref()),
                cpu_us: (samples as f64 * sample_period_us).round() as u64,
                off_us: off.get(&id).copied().unwrap_or_default(),
            }
        })
        .collect();
    stats.sort_by(|a, b| (b.wall_us(), &a.name).cmp(&(a.wall_us(), &b.name)));
    stats
}

/// A stack's frames with each frame once (recursion counts once).
fn distinct(frames: &[FrameId]) -> Vec<FrameId> {
    let mut frames = frames.to_vec();
    frames.sort_unstable();
    frames.dedup();
    frames
}

fn wait_sites(profile: &Profile) -> Vec<WaitSite> {
    let mut sites: HashMap<(String, String), StateTimes> = HashMap::new();
    for (site, &us) in &profile.off_cpu {
        let (name, module) = innermost_user_function(profile, &site.site);
        sites.entry((name, module)).or_default()[site.state.index()] += us;
    }
    let mut sites: Vec<WaitSite> = sites
        .into_iter()
        .map(|((name, module), off_us)| WaitSite {
            name,
            module,
            off_us,
        })
        .collect();
    sites.sort_by(|a, b| (b.total(), &a.name).cmp(&(a.total(), &b.name)));
    sites
}

/// The innermost frame outside the kernel; kernel threads, which have
/// none, are named by their process in brackets.
fn innermost_user_function(profile: &Profile, site: &StackSite) -> (String, String) {
    site.frames
        .iter()
        .rev()
        .map(|&id| profile.frames.get(id))
        .find(|f| f.kind != FrameKind::Kernel)
        .map_or_else(
            || {
                (
                    format!("[{}]", profile.process_name(site.tgid)),
                    "[kernel]".to_string(),
                )
            },
            |f| (f.name.clone(), module_label(f.kind, f.module.as_deref())),
        )
}

/// The states in table and report order, with their names.
pub(crate) fn states() -> impl Iterator<Item = (usize, &'static str)> {
    OffState::ALL.iter().map(|s| (s.index(), s.name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Frame;

    fn profile() -> Profile {
        let mut p = Profile::default();
        p.name_process(1, || "app".into());
        p.name_thread(1, 1, || "app".into());
        let user = |n: &str| Frame {
            name: n.into(),
            module: Some("app".into()),
            kind: FrameKind::User,
        };
        let kernel = |n: &str| Frame {
            name: n.into(),
            module: None,
            kind: FrameKind::Kernel,
        };
        let main = p.frames.intern(user("main"));
        let work = p.frames.intern(user("work"));
        let wait = p.frames.intern(user("wait_for_reply"));
        let schedule = p.frames.intern(kernel("schedule"));
        p.add(
            StackSite {
                tgid: 1,
                tid: 1,
                frames: vec![main, work],
                ..StackSite::default()
            },
            100,
        );
        let blocked = StackSite {
            tgid: 1,
            tid: 1,
            frames: vec![main, wait, schedule],
            ..StackSite::default()
        };
        p.add_off_cpu(blocked.clone(), OffState::Sleeping, 3_000_000);
        p.add_off_cpu(blocked, OffState::Preempted, 500_000);
        p
    }

    #[test]
    fn wall_time_adds_cpu_and_off_cpu_per_function() {
        // 100 samples at 100 Hz = 1 s on-CPU.
        let summary = summarize(&profile(), 10_000.0);
        assert_eq!(summary.total_us, 3_500_000);
        assert_eq!(summary.by_state, [3_000_000, 0, 500_000, 0]);
        let main = &summary.functions[0];
        assert_eq!(
            (main.name.as_str(), main.cpu_us, main.wall_us()),
            ("main", 1_000_000, 4_500_000)
        );
        let work = summary.functions.iter().find(|f| f.name == "work").unwrap();
        assert_eq!((work.cpu_us, work.off_total()), (1_000_000, 0));
        let schedule = summary
            .functions
            .iter()
            .find(|f| f.name == "schedule")
            .unwrap();
        assert_eq!(schedule.module, "[kernel]");
        assert_eq!(summary.processes[0].wall_us(), 4_500_000);
        assert_eq!(summary.threads[0].off_us, [3_000_000, 0, 500_000, 0]);
    }

    #[test]
    fn waits_are_ranked_by_the_innermost_user_function() {
        let summary = summarize(&profile(), 10_000.0);
        assert_eq!(summary.wait_sites.len(), 1);
        let site = &summary.wait_sites[0];
        assert_eq!(
            (site.name.as_str(), site.module.as_str()),
            ("wait_for_reply", "app")
        );
        assert_eq!(site.total(), 3_500_000);
    }

    #[test]
    fn kernel_threads_wait_under_their_own_name() {
        let mut p = Profile::default();
        p.name_process(9, || "kworker/0:1".into());
        let k = p.frames.intern(Frame {
            name: "worker_thread".into(),
            module: None,
            kind: FrameKind::Kernel,
        });
        p.add_off_cpu(
            StackSite {
                tgid: 9,
                tid: 9,
                frames: vec![k],
                ..StackSite::default()
            },
            OffState::Sleeping,
            10,
        );
        let summary = summarize(&p, 10_000.0);
        assert_eq!(summary.wait_sites[0].name, "[kworker/0:1]");
    }
}
