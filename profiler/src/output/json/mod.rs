//! report.json: the run's metadata, totals, losses, processes and hot
//! functions, for scripts and for later re-rendering. [`Report`] is its one
//! shape, written here and read back by `saved::read_report`;
//! docs/report.schema.json describes every field, and a test holds the two
//! together.

use serde::{Deserialize, Serialize};

mod off_cpu;

pub(crate) use off_cpu::OffCpuReport;

use crate::{
    analysis::{FunctionStat, Summary, paths::CallEdge, percent, top_by_self},
    meta::RunMeta,
    profile::Losses,
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
    /// With `off_cpu`, and only then (even when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) off_cpu_call_paths: Option<Vec<EdgeRow>>,
    #[serde(default)]
    pub(crate) recommendations: Vec<String>,
    /// The files written into the output directory with it, by name.
    #[serde(default)]
    pub(crate) outputs: Vec<String>,
    /// What each backend was sent.
    #[serde(default)]
    pub(crate) push: Vec<crate::meta::PushReport>,
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
            off_cpu: summary.off_cpu.as_ref().map(off_cpu::report),
            call_paths: edge_rows(&summary.call_paths),
            off_cpu_call_paths: summary
                .off_cpu
                .is_some()
                .then(|| edge_rows(&summary.off_cpu_call_paths)),
            recommendations: summary.recommendations.clone(),
            outputs: outputs.iter().map(|o| o.to_string()).collect(),
            push: meta.push.clone(),
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

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests;
