//! The three tools on one run of a workload, and the figures each gives:
//! bpfprof's from its outputs and `-v`, perf's from `perf script`.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{
    Workload,
    capture::{Ready, bounded, capture},
    unnamed::{self, Tally},
};
use crate::bench::{
    Bench,
    cases::bpf_ns_per_run,
    run::{Series, measure_lossy},
};

/// How long `perf script` may take to name inlined frames (perf's
/// default) before it is given up on, in a full run and with --quick.
const INLINE_LIMIT: Duration = Duration::from_secs(120);
const INLINE_LIMIT_QUICK: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Tool {
    Bpfprof,
    PerfDwarf,
    PerfFp,
}

impl Tool {
    const ALL: [Tool; 3] = [Tool::Bpfprof, Tool::PerfDwarf, Tool::PerfFp];

    /// The tools in the order of run `run`: each goes first in turn.
    pub fn order(run: usize) -> [Tool; 3] {
        let mut tools = Tool::ALL;
        tools.rotate_left(run % 3);
        tools
    }

    fn key(self) -> &'static str {
        match self {
            Tool::Bpfprof => "bpfprof",
            Tool::PerfDwarf => "perf_dwarf",
            Tool::PerfFp => "perf_fp",
        }
    }
}

/// One tool's figures over the runs of one workload.
#[derive(Default)]
struct ToolFigures {
    series: BTreeMap<&'static str, Series>,
    unnamed: Tally,
    /// perf script with inlined frames named, first run only: seconds, or
    /// None when it did not finish within the limit.
    inline_seconds: Option<Result<f64, u64>>,
}

impl ToolFigures {
    fn push(&mut self, figure: &'static str, value: f64) {
        self.series.entry(figure).or_default().push(value);
    }

    fn add_unnamed(&mut self, tally: &Tally) {
        self.push("samples", tally.samples as f64);
        self.push("unnamed_percent", tally.percent());
        self.unnamed.merge(tally);
    }

    fn json(&self) -> Value {
        let mut out: serde_json::Map<String, Value> = self
            .series
            .iter()
            .map(|(k, s)| (k.to_string(), s.json()))
            .collect();
        let top: serde_json::Map<String, Value> = self
            .unnamed
            .top(5)
            .into_iter()
            .map(|(p, (unnamed, samples))| (p, json!({ "unnamed": unnamed, "samples": samples })))
            .collect();
        out.insert("unnamed_samples_by_process".into(), Value::Object(top));
        if let Some(inline) = self.inline_seconds {
            out.insert(
                "script_inline_seconds".into(),
                match inline {
                    Ok(seconds) => json!(seconds),
                    Err(limit) => json!(format!("did not finish in {limit} s")),
                },
            );
        }
        Value::Object(out)
    }
}

/// The figures of all tools on one workload.
#[derive(Default)]
pub(super) struct Figures {
    tools: BTreeMap<&'static str, ToolFigures>,
    /// The pid of the workload's last run (the Java program's perf map).
    pub last_pid: Option<u32>,
}

impl Figures {
    fn of(&mut self, tool: Tool) -> &mut ToolFigures {
        self.tools.entry(tool.key()).or_default()
    }

    pub fn json(&self, workload: Workload) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("workload".into(), json!(workload.name()));
        for (key, figures) in &self.tools {
            out.insert(key.to_string(), figures.json());
        }
        Value::Object(out)
    }
}

impl Bench {
    /// One capture of `workload` by `tool`, its figures added.
    pub(super) fn measure_tool(
        &self,
        tool: Tool,
        workload: &mut Command,
        first: bool,
        figures: &mut Figures,
    ) -> Result<()> {
        match tool {
            Tool::Bpfprof => self.measure_bpfprof(workload, figures),
            Tool::PerfDwarf | Tool::PerfFp => self.measure_perf(tool, workload, first, figures),
        }
    }

    fn measure_bpfprof(&self, workload: &mut Command, figures: &mut Figures) -> Result<()> {
        let dir = self.tmp("real-bpfprof");
        let mut profiler = Command::new(&self.bpfprof);
        profiler.args(["-v", "-F", "99", "--force", "-o"]).arg(&dir);
        let run = capture(
            &mut profiler,
            Ready::Line("bpfprof: sampling"),
            workload,
            true,
        )?;
        figures.last_pid = Some(run.workload_pid);
        let folded = std::fs::read_to_string(dir.join("on-cpu.folded"))
            .context("bpfprof wrote no on-cpu.folded")?;
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("report.json")).context("bpfprof's report.json")?,
        )?;
        let errors = &report["errors"];
        let own = errors["samples_with_unknown_frames"]
            .as_f64()
            .unwrap_or(f64::NAN)
            * 100.0
            / errors["samples"].as_f64().unwrap_or(f64::NAN).max(1.0);
        let f = figures.of(Tool::Bpfprof);
        f.add_unnamed(&unnamed::folded(&folded));
        f.push("quality_unnamed_percent", own);
        f.push("workload_seconds", run.workload_seconds);
        f.push("peak_rss_mib", run.cost.max_rss_kb as f64 / 1024.0);
        f.push("cpu_seconds", run.cost.cpu);
        if let Some(ns) = bpf_ns_per_run(&run.stderr, "on_cpu_sample") {
            f.push("bpf_ns_per_sample", ns);
            if let Some(r) = run.references {
                f.push("bpftrace_floor_ns_per_sample", r.floor_ns);
                f.push("bpftrace_stacks_ns_per_sample", r.stacks_ns);
                f.push("bpf_ns_over_floor", ns / r.floor_ns);
                f.push("bpf_ns_over_bpftrace_stacks", ns / r.stacks_ns);
            }
        }
        if let Some(ms) = outputs_ms(&run.stderr) {
            f.push("outputs_ms", ms);
        }
        Ok(())
    }

    fn measure_perf(
        &self,
        tool: Tool,
        workload: &mut Command,
        first: bool,
        figures: &mut Figures,
    ) -> Result<()> {
        let data = self.tmp("real.perf");
        let mut profiler = Command::new("perf");
        profiler.args(["record", "-q", "-a", "-F", "99"]);
        match tool {
            Tool::PerfDwarf => profiler.args(["--call-graph", "dwarf"]),
            _ => profiler.arg("-g"),
        };
        profiler.arg("-o").arg(&data);
        let run = capture(
            &mut profiler,
            Ready::After(Duration::from_secs(1)),
            workload,
            false,
        )?;
        figures.last_pid = Some(run.workload_pid);
        let (script, text) = measure_lossy(perf_script(&data).arg("--no-inline"))?;
        let f = figures.of(tool);
        f.add_unnamed(&unnamed::perf_script(&text, run.profiler_pid));
        f.push("workload_seconds", run.workload_seconds);
        f.push("script_seconds", script.wall);
        f.push("record_peak_rss_mib", run.cost.max_rss_kb as f64 / 1024.0);
        f.push("script_peak_rss_mib", script.max_rss_kb as f64 / 1024.0);
        f.push("cpu_seconds", run.cost.cpu + script.cpu);
        f.push(
            "data_mib",
            std::fs::metadata(&data)?.len() as f64 / (1 << 20) as f64,
        );
        if first {
            let limit = if self.quick {
                INLINE_LIMIT_QUICK
            } else {
                INLINE_LIMIT
            };
            let inline = bounded(&mut perf_script(&data), limit)?;
            f.inline_seconds = Some(inline.map(|cost| cost.wall).ok_or(limit.as_secs()));
        }
        Ok(())
    }
}

/// `perf script` printing each sample's process and frames.
fn perf_script(data: &Path) -> Command {
    let mut cmd = Command::new("perf");
    cmd.args(["script", "-F", "comm,pid,tid,ip,sym,dso", "-i"])
        .arg(data);
    cmd
}

/// `outputs written in N ms after the capture ended`, from `bpfprof -v`.
fn outputs_ms(stderr: &str) -> Option<f64> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("bpfprof: outputs written in "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
