//! The hot-path tables printed at the end of a run, sized for a
//! 100-column terminal.

use std::fmt::Write;

mod off_cpu;

pub(crate) use off_cpu::time;

use crate::{
    analysis::{FunctionStat, Summary, paths::CallEdge, percent, top_by_self},
    meta::RunMeta,
    profile::Losses,
};
use profiler_common::Loss;

const FUNCTION_WIDTH: usize = 52;
const MODULE_WIDTH: usize = 18;

pub(crate) fn render(meta: &RunMeta, summary: &Summary, losses: &Losses, top: usize) -> String {
    let total = summary.total_samples;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "On-CPU: {total} samples in {:.1} s at {} Hz on {} CPUs ({})",
        meta.duration_secs, meta.freq_hz, meta.cpus, meta.target
    );
    if total == 0 {
        let _ = writeln!(
            out,
            "No samples: nothing ran on the CPUs that was profiled."
        );
    } else {
        let _ = writeln!(
            out,
            "\nTop {top} functions by self time (where the CPU was)"
        );
        function_table(&mut out, &top_by_self(&summary.functions, top), total, true);
        let _ = writeln!(out, "\nTop {top} functions by total time (self + callees)");
        let by_total: Vec<FunctionStat> = summary.functions.iter().take(top).cloned().collect();
        function_table(&mut out, &by_total, total, false);
        let _ = writeln!(out, "\nTop processes by CPU");
        let _ = writeln!(out, "  {:>8}  {:>9}  {:>6}  process", "pid", "samples", "%");
        for p in summary.processes.iter().take(top) {
            let share = percent(p.samples, total);
            let _ = writeln!(
                out,
                "  {:>8}  {:>9}  {share:>5.1}%  {}",
                p.pid, p.samples, p.name
            );
        }
    }
    if total > 0 {
        call_paths(
            &mut out,
            "Hottest call paths on-CPU (caller -> callee, samples)",
            &summary.call_paths,
            top,
        );
    }
    if let Some(off) = &summary.off_cpu {
        off_cpu::tables(&mut out, off, top);
        if off.total_us > 0 {
            call_paths(
                &mut out,
                "Hottest call paths off-CPU (caller -> callee, time)",
                &summary.off_cpu_call_paths,
                top,
            );
        }
    }
    quality(&mut out, meta, losses);
    if !summary.recommendations.is_empty() {
        let _ = writeln!(out, "\nRecommendations");
        for advice in &summary.recommendations {
            let _ = writeln!(out, "- {advice}");
        }
    }
    out
}

fn call_paths(out: &mut String, title: &str, edges: &[CallEdge], top: usize) {
    let _ = writeln!(out, "\n{title}");
    let off_cpu = title.contains("off-CPU");
    for e in edges.iter().take(top) {
        let value = if off_cpu {
            time(e.value)
        } else {
            e.value.to_string()
        };
        let path = format!("{} -> {}", e.caller, e.callee);
        let _ = writeln!(
            out,
            "  {value:>9}  {:>5.1}%  {}",
            e.percent,
            truncate(&path, PATH_WIDTH)
        );
    }
}

const PATH_WIDTH: usize = 80;

/// Losses and unnamed frames, when there are any, with what to do about
/// each one that touches more than 5% of the samples.
fn quality(out: &mut String, meta: &RunMeta, losses: &Losses) {
    if losses.is_empty() && meta.push.is_empty() {
        return;
    }
    let share = |n: u64| percent(n, losses.samples.max(1));
    let _ = writeln!(out, "\nQuality");
    for push in &meta.push {
        let _ = writeln!(
            out,
            "  pushed to {} ({}): {} windows sent, {} dropped, {} rejected",
            push.backend, push.url, push.windows_sent, push.windows_dropped, push.windows_rejected
        );
        if let Some(error) = &push.last_error {
            let _ = writeln!(out, "    last error: {}", truncate(error, 120));
        }
    }
    for (loss, value) in losses.entries().filter(|(_, v)| *v > 0) {
        let _ = writeln!(out, "  {:<40} {value:>9}", loss.label());
        if loss == Loss::UnknownFrames {
            for (module, n) in &losses.unknown_frames_by_module {
                let _ = writeln!(out, "    in {:<37} {n:>9}", truncate(module, 37));
            }
        }
        if loss == Loss::UnwindTablesNotLoaded {
            for (binary, rows) in &losses.unwind_tables_not_loaded_by_binary {
                let _ = writeln!(out, "    {:<34} {rows:>9} rows", truncate(binary, 34));
            }
        }
        if loss == Loss::PythonProcessesNotWalked {
            for (process, why) in &losses.python_not_walked_by_process {
                let _ = writeln!(out, "    {}: {}", truncate(process, 34), truncate(why, 120));
            }
        }
    }
    for warning in warnings(meta, losses, share) {
        let _ = writeln!(out, "warning: {warning}");
    }
}

fn warnings(meta: &RunMeta, losses: &Losses, share: impl Fn(u64) -> f64) -> Vec<String> {
    const LIMIT: f64 = 5.0;
    let mut warnings = Vec::new();
    let lost_stacks = losses[Loss::StackCollisions] + losses[Loss::StackMapFull];
    if share(lost_stacks) > LIMIT {
        warnings.push(format!(
            "{:.1}% of samples lost a stack to a full stack map: run with --stack-map-size {}",
            share(lost_stacks),
            (meta.stack_map_size.max(1) * 4).next_power_of_two()
        ));
    }
    if share(losses[Loss::CountsMapFull]) > LIMIT {
        warnings.push(format!(
            "{:.1}% of samples were not counted (counts map full): run with --max-stacks {} or a shorter --interval",
            share(losses[Loss::CountsMapFull]),
            (meta.max_stacks.max(1) * 4).next_power_of_two()
        ));
    }
    for (module, &n) in &losses.unknown_frames_by_module {
        if share(n) <= LIMIT {
            continue;
        }
        let advice = match module.as_str() {
            "[no file]" => "JIT code needs a perf map (node --perf-basic-prof, Java with perf-map-agent, \
                            python -X perf); elsewhere, build the target with frame pointers"
                .to_string(),
            special if special.starts_with('[') => {
                "frame-pointer walks through code built without them end up here: build the target with \
                 -fno-omit-frame-pointer (Rust: -C force-frame-pointers=yes)"
                    .to_string()
            }
            _ => format!("install debug symbols for {module}, or build it unstripped and with frame pointers"),
        };
        warnings.push(format!(
            "{:.1}% of samples have unnamed frames in {module}: {advice}",
            share(n)
        ));
    }
    if share(losses[Loss::UserStackMissing]) > LIMIT {
        warnings.push(format!(
            "{:.1}% of samples of user threads came without a user stack",
            share(losses[Loss::UserStackMissing])
        ));
    }
    if share(losses[Loss::TruncatedStacks]) > LIMIT {
        warnings.push(format!(
            "{:.1}% of stacks were deeper than 127 frames and are cut at the root ([truncated])",
            share(losses[Loss::TruncatedStacks])
        ));
    }
    if losses[Loss::StackReuseMismatch] > 0 {
        warnings.push(format!(
            "{} off-CPU block sites reused stacks that a check walk found different; they walked \
             every time after, but up to 31 earlier records each may show another stack from the \
             same site: rerun with --no-stack-reuse for exact stacks",
            losses[Loss::StackReuseMismatch]
        ));
    }
    warnings
}

fn function_table(out: &mut String, rows: &[FunctionStat], total: u64, self_first: bool) {
    let (first, second) = if self_first {
        ("self", "total")
    } else {
        ("total", "self")
    };
    let _ = writeln!(
        out,
        "  {:>9}  {:>6}  {:>6}  {:<FUNCTION_WIDTH$}  module",
        "samples",
        format!("{first}%"),
        format!("{second}%"),
        "function"
    );
    for row in rows {
        let (lead, other) = if self_first {
            (row.self_samples, row.total_samples)
        } else {
            (row.total_samples, row.self_samples)
        };
        let _ = writeln!(
            out,
            "  {lead:>9}  {:>5.1}%  {:>5.1}%  {:<FUNCTION_WIDTH$}  {}",
            percent(lead, total),
            percent(other, total),
            truncate(&row.name, FUNCTION_WIDTH),
            truncate(&row.module, MODULE_WIDTH)
        );
    }
}

/// Shortens to `width` characters, keeping the end of the name, which is
/// the distinctive part of long qualified names (`...::Vec<T>::push`).
pub(crate) fn truncate(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return text.to_string();
    }
    let tail: String = text.chars().skip(count - (width - 1)).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests;
