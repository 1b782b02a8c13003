//! report.json: the run's metadata, totals, losses, processes and hot
//! functions, for scripts and for later re-rendering.

use serde::Serialize;

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

#[derive(Serialize)]
struct Report<'a> {
    run: &'a RunMeta,
    totals: Totals,
    errors: &'a Losses,
    processes: Vec<ProcessRow<'a>>,
    hot_functions: Vec<FunctionRow<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    off_cpu: Option<OffCpuReport<'a>>,
    call_paths: Vec<EdgeRow<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    off_cpu_call_paths: Vec<EdgeRow<'a>>,
    recommendations: &'a [String],
    outputs: &'a [&'a str],
}

#[derive(Serialize)]
struct EdgeRow<'a> {
    caller: &'a str,
    callee: &'a str,
    /// Samples on-CPU, microseconds off-CPU.
    value: u64,
    percent: f64,
}

fn edge_rows(edges: &[CallEdge]) -> Vec<EdgeRow<'_>> {
    edges
        .iter()
        .map(|e| EdgeRow {
            caller: &e.caller,
            callee: &e.callee,
            value: e.value,
            percent: round2(e.percent),
        })
        .collect()
}

#[derive(Serialize)]
struct OffCpuReport<'a> {
    total_us: u64,
    by_state_us: States,
    processes: Vec<ProcessTimes<'a>>,
    functions_by_wall: Vec<WallRow<'a>>,
    wait_sites: Vec<WaitRow<'a>>,
}

/// Microseconds per off-CPU state.
#[derive(Serialize)]
struct States {
    sleeping: u64,
    uninterruptible: u64,
    preempted: u64,
    other: u64,
    total: u64,
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

#[derive(Serialize)]
struct Times<'a> {
    id: u32,
    name: &'a str,
    on_cpu_us: u64,
    off_cpu_us: States,
    wall_us: u64,
}

impl<'a> From<&'a WallEntity> for Times<'a> {
    fn from(e: &'a WallEntity) -> Times<'a> {
        Times {
            id: e.id,
            name: &e.name,
            on_cpu_us: e.cpu_us,
            off_cpu_us: (&e.off_us).into(),
            wall_us: e.wall_us(),
        }
    }
}

#[derive(Serialize)]
struct ProcessTimes<'a> {
    #[serde(flatten)]
    times: Times<'a>,
    threads: Vec<Times<'a>>,
}

#[derive(Serialize)]
struct WallRow<'a> {
    name: &'a str,
    module: &'a str,
    on_cpu_us: u64,
    off_cpu_us: States,
    wall_us: u64,
}

#[derive(Serialize)]
struct WaitRow<'a> {
    name: &'a str,
    module: &'a str,
    off_cpu_us: States,
}

#[derive(Serialize)]
struct Totals {
    samples: u64,
    processes: usize,
}

#[derive(Serialize)]
struct ProcessRow<'a> {
    pid: u32,
    name: &'a str,
    samples: u64,
    percent: f64,
}

#[derive(Serialize)]
struct FunctionRow<'a> {
    #[serde(flatten)]
    stat: &'a FunctionStat,
    self_percent: f64,
    total_percent: f64,
}

fn off_cpu_report(off: &OffCpuSummary) -> OffCpuReport<'_> {
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
                name: &f.name,
                module: &f.module,
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
                name: &w.name,
                module: &w.module,
                off_cpu_us: (&w.off_us).into(),
            })
            .collect(),
    }
}

pub fn render(meta: &RunMeta, summary: &Summary, losses: &Losses, outputs: &[&str]) -> String {
    let total = summary.total_samples;
    // The union of the top functions by total and by self, so both tables
    // can be rebuilt from the report.
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
    let report = Report {
        run: meta,
        totals: Totals {
            samples: total,
            processes: summary.processes.len(),
        },
        errors: losses,
        processes: summary
            .processes
            .iter()
            .map(|p| ProcessRow {
                pid: p.pid,
                name: &p.name,
                samples: p.samples,
                percent: round2(percent(p.samples, total)),
            })
            .collect(),
        hot_functions: functions
            .into_iter()
            .map(|stat| FunctionRow {
                stat,
                self_percent: round2(percent(stat.self_samples, total)),
                total_percent: round2(percent(stat.total_samples, total)),
            })
            .collect(),
        off_cpu: summary.off_cpu.as_ref().map(off_cpu_report),
        call_paths: edge_rows(&summary.call_paths),
        off_cpu_call_paths: edge_rows(&summary.off_cpu_call_paths),
        recommendations: &summary.recommendations,
        outputs,
    };
    serde_json::to_string_pretty(&report).expect("the report serializes") + "\n"
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
