//! report.json: the run's metadata, totals, losses, processes and hot
//! functions, for scripts and for later re-rendering.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::{
    analysis::{FunctionStat, Summary, percent, top_by_self},
    meta::RunMeta,
    profile::Losses,
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
    outputs: Outputs,
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

#[derive(Serialize)]
struct Outputs {
    folded: &'static str,
    svg: &'static str,
}

pub fn render(meta: &RunMeta, summary: &Summary, losses: &Losses) -> String {
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
        outputs: Outputs {
            folded: "on-cpu.folded",
            svg: "on-cpu.svg",
        },
    };
    serde_json::to_string_pretty(&report).expect("the report serializes") + "\n"
}

pub fn write(path: &Path, meta: &RunMeta, summary: &Summary, losses: &Losses) -> Result<()> {
    std::fs::write(path, render(meta, summary, losses))
        .with_context(|| format!("writing {}", path.display()))
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
