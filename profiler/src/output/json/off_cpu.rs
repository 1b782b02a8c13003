//! report.json's `off_cpu` part: where the time off the CPU went, by
//! state, process, thread, function and wait site.

use serde::{Deserialize, Serialize};

use super::REPORT_FUNCTIONS;
use crate::{
    analysis::off_cpu::{OffCpuSummary, WallEntity},
    profile::StateTimes,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OffCpuReport {
    pub(crate) total_us: u64,
    pub(crate) by_state_us: States,
    pub(crate) processes: Vec<ProcessTimes>,
    pub(crate) functions_by_wall: Vec<WallRow>,
    pub(crate) wait_sites: Vec<WaitRow>,
}

/// Microseconds per off-CPU state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct States {
    pub(crate) sleeping: u64,
    pub(crate) uninterruptible: u64,
    pub(crate) preempted: u64,
    pub(crate) other: u64,
    pub(crate) total: u64,
}

impl From<&StateTimes> for States {
    fn from(t: &StateTimes) -> States {
        States {
            sleeping: t[0],
            uninterruptible: t[1],
            preempted: t[2],
            other: t[3],
            total: t.iter().sum(),
        }
    }
}

/// A process's or a thread's times, beside its pid or tid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Times {
    pub(crate) name: String,
    pub(crate) on_cpu_us: u64,
    pub(crate) off_cpu_us: States,
    pub(crate) wall_us: u64,
}

impl From<&WallEntity> for Times {
    fn from(e: &WallEntity) -> Times {
        Times {
            name: e.name.clone(),
            on_cpu_us: e.cpu_us,
            off_cpu_us: (&e.off_us).into(),
            wall_us: e.wall_us(),
        }
    }
}

/// A process, keyed `pid` as in `processes[]`. Older reports have `id`
/// here: saved runs of older versions still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProcessTimes {
    #[serde(alias = "id")]
    pub(crate) pid: u32,
    #[serde(flatten)]
    pub(crate) times: Times,
    pub(crate) threads: Vec<ThreadTimes>,
}

/// A thread, keyed `tid` (`id` in older reports, still read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ThreadTimes {
    #[serde(alias = "id")]
    pub(crate) tid: u32,
    #[serde(flatten)]
    pub(crate) times: Times,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WallRow {
    pub(crate) name: String,
    pub(crate) module: String,
    pub(crate) on_cpu_us: u64,
    pub(crate) off_cpu_us: States,
    pub(crate) wall_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WaitRow {
    pub(crate) name: String,
    pub(crate) module: String,
    pub(crate) off_cpu_us: States,
}

pub(crate) fn report(off: &OffCpuSummary) -> OffCpuReport {
    OffCpuReport {
        total_us: off.total_us,
        by_state_us: (&off.by_state).into(),
        processes: off
            .processes
            .iter()
            .map(|p| ProcessTimes {
                pid: p.id,
                times: p.into(),
                threads: off
                    .threads
                    .iter()
                    .filter(|t| t.tgid == p.id)
                    .map(|t| ThreadTimes {
                        tid: t.id,
                        times: t.into(),
                    })
                    .collect(),
            })
            .collect(),
        functions_by_wall: off
            .functions
            .iter()
            .take(REPORT_FUNCTIONS)
            .map(|f| WallRow {
                name: f.name.clone(),
                module: f.module.clone(),
                on_cpu_us: f.cpu_us,
                off_cpu_us: (&f.off_us).into(),
                wall_us: f.wall_us(),
            })
            .collect(),
        wait_sites: off
            .wait_sites
            .iter()
            .take(REPORT_FUNCTIONS)
            .map(|w| WaitRow {
                name: w.name.clone(),
                module: w.module.clone(),
                off_cpu_us: (&w.off_us).into(),
            })
            .collect(),
    }
}
