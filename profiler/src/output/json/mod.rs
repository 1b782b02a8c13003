//! report.json: the run's metadata, totals, losses, processes and hot
//! functions, for scripts and for later re-rendering. [`Report`] is its one
//! shape, written here and read back by `saved::read_report`.

use serde::{Deserialize, Serialize};

use crate::{
    analysis::{
        FunctionStat, Summary,
        off_cpu::{OffCpuSummary, WallEntity},
        paths::CallEdge,
        percent, top_by_self,
    },
    meta::RunMeta,
    profile::{Losses, StateTimes},
};

/// Functions listed in the report: enough for any table a user asks for.
const REPORT_FUNCTIONS: usize = 200;

/// report.json. Read back, every part but `run` may be missing (as in
/// reports of older versions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) run: RunMeta,
    #[serde(default)]
    pub(crate) totals: Totals,
    #[serde(default)]
    pub(crate) errors: Losses,
    #[serde(default)]
    pub(crate) processes: Vec<ProcessRow>,
    #[serde(default)]
    pub(crate) hot_functions: Vec<FunctionRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) off_cpu: Option<OffCpuReport>,
    #[serde(default)]
    pub(crate) call_paths: Vec<EdgeRow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) off_cpu_call_paths: Vec<EdgeRow>,
    #[serde(default)]
    pub(crate) recommendations: Vec<String>,
    #[serde(default)]
    pub(crate) outputs: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Totals {
    pub(crate) samples: u64,
    pub(crate) processes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProcessRow {
    pub(crate) pid: u32,
    pub(crate) name: String,
    pub(crate) samples: u64,
    pub(crate) percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FunctionRow {
    pub(crate) name: String,
    pub(crate) module: String,
    /// Samples where this function was the innermost frame.
    #[serde(rename = "self")]
    pub(crate) self_samples: u64,
    /// Samples with this function anywhere on the stack, each stack once.
    #[serde(rename = "total")]
    pub(crate) total_samples: u64,
    pub(crate) self_percent: f64,
    pub(crate) total_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EdgeRow {
    pub(crate) caller: String,
    pub(crate) callee: String,
    /// Samples on-CPU, microseconds off-CPU.
    pub(crate) value: u64,
    pub(crate) percent: f64,
}

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

/// A process's or a thread's times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Times {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) on_cpu_us: u64,
    pub(crate) off_cpu_us: States,
    pub(crate) wall_us: u64,
}

impl From<&WallEntity> for Times {
    fn from(e: &WallEntity) -> Times {
        Times {
            id: e.id,
            name: e.name.clone(),
            on_cpu_us: e.cpu_us,
            off_cpu_us: (&e.off_us).into(),
            wall_us: e.wall_us(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProcessTimes {
    #[serde(flatten)]
    pub(crate) times: Times,
    pub(crate) threads: Vec<Times>,
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

impl Report {
    /// The report of a run: `outputs` are the files written with it.
    pub(crate) fn new(
        meta: &RunMeta,
        summary: &Summary,
        losses: &Losses,
        outputs: &[&str],
    ) -> Report {
        let total = summary.total_samples;
        Report {
            run: meta.clone(),
            totals: Totals {
                samples: total,
                processes: summary.processes.len(),
            },
            errors: losses.clone(),
            processes: summary
                .processes
                .iter()
                .map(|p| ProcessRow {
                    pid: p.pid,
                    name: p.name.clone(),
                    samples: p.samples,
                    percent: round2(percent(p.samples, total)),
                })
                .collect(),
            hot_functions: hot_functions(summary)
                .into_iter()
                .map(|stat| FunctionRow {
                    name: stat.name.clone(),
                    module: stat.module.clone(),
                    self_samples: stat.self_samples,
                    total_samples: stat.total_samples,
                    self_percent: round2(percent(stat.self_samples, total)),
                    total_percent: round2(percent(stat.total_samples, total)),
                })
                .collect(),
            off_cpu: summary.off_cpu.as_ref().map(off_cpu_report),
            call_paths: edge_rows(&summary.call_paths),
            off_cpu_call_paths: edge_rows(&summary.off_cpu_call_paths),
            recommendations: summary.recommendations.clone(),
            outputs: outputs.iter().map(|o| o.to_string()).collect(),
        }
    }

    /// The text of report.json.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes") + "\n"
    }
}

/// The union of the top functions by total and by self, so both tables
/// can be rebuilt from the report.
fn hot_functions(summary: &Summary) -> Vec<&FunctionStat> {
    let mut functions: Vec<&FunctionStat> =
        summary.functions.iter().take(REPORT_FUNCTIONS).collect();
    let by_self = top_by_self(&summary.functions, REPORT_FUNCTIONS);
    for stat in &by_self {
        if let Some(f) = summary.functions.iter().find(|f| f == &stat)
            && !functions.contains(&f)
        {
            functions.push(f);
        }
    }
    functions
}

fn edge_rows(edges: &[CallEdge]) -> Vec<EdgeRow> {
    edges
        .iter()
        .map(|e| EdgeRow {
            caller: e.caller.clone(),
            callee: e.callee.clone(),
            value: e.value,
            percent: round2(e.percent),
        })
        .collect()
}

fn off_cpu_report(off: &OffCpuSummary) -> OffCpuReport {
    OffCpuReport {
        total_us: off.total_us,
        by_state_us: (&off.by_state).into(),
        processes: off
            .processes
            .iter()
            .map(|p| ProcessTimes {
                times: p.into(),
                threads: off
                    .threads
                    .iter()
                    .filter(|t| t.tgid == p.id)
                    .map(Times::from)
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

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis,
        profile::{Frame, FrameKind, OffState, Profile, StackSite},
    };

    fn profile() -> Profile {
        let mut p = Profile::default();
        p.name_process(7, || "app".into());
        p.name_thread(7, 8, || "worker".into());
        let mut frame = |name: &str, kind| {
            p.frames.intern(Frame {
                name: name.into(),
                module: Some("app".into()),
                kind,
            })
        };
        let frames = vec![
            frame("main", FrameKind::User),
            frame("work", FrameKind::User),
        ];
        let site = StackSite {
            tgid: 7,
            tid: 8,
            pcs: vec![0x10, 0x20],
            frames,
        };
        p.add(site.clone(), 3);
        p.add_off_cpu(site, OffState::Sleeping, 1500);
        p.losses
            .unknown_frames_by_module
            .insert("libx.so".into(), 2);
        p
    }

    /// What `report` reads is what was written: the text written, read
    /// back and written again, is the same, off-CPU parts included.
    #[test]
    fn a_report_reads_back_as_written() {
        let profile = profile();
        let summary = analysis::summarize(&profile, true, 10_000.0);
        let meta = RunMeta::new(
            100,
            "pid 7".into(),
            std::time::UNIX_EPOCH,
            Default::default(),
        );
        let written = Report::new(&meta, &summary, &profile.losses, &["report.json"]);
        assert!(written.off_cpu.is_some() && !written.hot_functions.is_empty());
        let text = written.to_json();
        let read: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(read, written);
        assert_eq!(read.to_json(), text);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let function = &value["hot_functions"][0];
        assert!(
            function["self"].is_u64() && function["total"].is_u64(),
            "{function}"
        );
        assert_eq!(value["off_cpu"]["processes"][0]["id"], 7);
        assert_eq!(value["off_cpu"]["processes"][0]["threads"][0]["id"], 8);
        assert!(value.get("off_cpu_call_paths").is_some());
    }
}
