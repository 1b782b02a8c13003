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
    if losses.is_empty() {
        return;
    }
    let share = |n: u64| percent(n, losses.samples.max(1));
    let _ = writeln!(out, "\nQuality");
    for (loss, value) in losses.entries().filter(|(_, v)| *v > 0) {
        let _ = writeln!(out, "  {:<40} {value:>9}", loss.label());
        if loss == Loss::UnknownFrames {
            for (module, n) in &losses.unknown_frames_by_module {
                let _ = writeln!(out, "    in {:<37} {n:>9}", truncate(module, 37));
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
mod tests {
    use super::*;
    use crate::analysis::{
        ProcessStat,
        off_cpu::{OffCpuSummary, WaitSite, WallEntity, WallStat},
    };

    fn meta() -> RunMeta {
        let mut meta = RunMeta::new(
            99,
            "all processes".into(),
            std::time::SystemTime::now(),
            Default::default(),
        );
        meta.cpus = 2;
        meta.duration_secs = 10.0;
        meta
    }

    fn summary() -> Summary {
        let f = |name: &str, s, t| FunctionStat {
            name: name.into(),
            module: "app".into(),
            self_samples: s,
            total_samples: t,
        };
        Summary {
            total_samples: 200,
            functions: vec![
                f("main", 0, 200),
                f("hot_a", 150, 150),
                f(&"x".repeat(120), 50, 50),
            ],
            processes: vec![ProcessStat {
                pid: 42,
                name: "app".into(),
                samples: 200,
            }],
            ..Summary::default()
        }
    }

    #[test]
    fn the_quality_block_counts_and_advises_above_5_percent() {
        let mut losses = Losses::default();
        losses.samples = 200;
        losses[Loss::StackCollisions] = 30;
        losses[Loss::UnknownFrames] = 40;
        losses
            .unknown_frames_by_module
            .insert("libfoo.so".into(), 36);
        losses
            .unknown_frames_by_module
            .insert("[no file]".into(), 4);
        let mut meta = meta();
        meta.stack_map_size = 16384;
        let text = render(&meta, &summary(), &losses, 20);
        assert!(text.contains("Quality"), "{text}");
        assert!(text.contains("    in libfoo.so"), "{text}");
        assert!(text.contains("warning: 15.0% of samples lost a stack to a full stack map: run with --stack-map-size 65536"), "{text}");
        assert!(text.contains("warning: 18.0% of samples have unnamed frames in libfoo.so: install debug symbols for libfoo.so"), "{text}");
        assert!(
            !text.contains("unnamed frames in [no file]"),
            "2% is under the limit: {text}"
        );
        for line in text.lines().filter(|l| !l.starts_with("warning:")) {
            assert!(line.chars().count() <= 100, "too wide: {line}");
        }
    }

    #[test]
    fn the_quality_block_lists_every_loss_by_its_label_in_table_order() {
        let mut losses = Losses::default();
        losses.samples = 1_000_000;
        for (i, loss) in Loss::ALL.into_iter().enumerate() {
            losses[loss] = 100 + i as u64;
        }
        losses
            .unknown_frames_by_module
            .insert("libfoo.so".into(), 100);
        let text = render(&meta(), &summary(), &losses, 20);
        let block: Vec<&str> = text
            .split("\nQuality\n")
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|l| !l.is_empty() && !l.starts_with("warning:"))
            .collect();
        let mut expected = Vec::new();
        for (i, loss) in Loss::ALL.into_iter().enumerate() {
            expected.push(format!("  {:<40} {:>9}", loss.label(), 100 + i));
            if loss == Loss::UnknownFrames {
                expected.push(format!("    in {:<37} {:>9}", "libfoo.so", 100));
            }
        }
        assert_eq!(block, expected, "{text}");
        // A counter at 0 has no line.
        losses[Loss::PerfMapsCut] = 0;
        let text = render(&meta(), &summary(), &losses, 20);
        assert!(!text.contains(Loss::PerfMapsCut.label()), "{text}");
    }

    #[test]
    fn tables_rank_fit_100_columns_and_show_losses() {
        let mut losses = Losses::default();
        losses.samples = 200;
        losses[Loss::StackCollisions] = 3;
        let text = render(&meta(), &summary(), &losses, 20);
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "too wide: {line}");
        }
        let self_table = text.split("by self time").nth(1).unwrap();
        let first_row = self_table.lines().nth(2).unwrap();
        assert!(
            first_row.contains("hot_a") && first_row.contains("75.0%"),
            "{first_row}"
        );
        assert!(
            !self_table
                .split("by total")
                .next()
                .unwrap()
                .contains(" main "),
            "main has no self time"
        );
        assert!(text.contains("stack id collisions"));
        assert!(text.contains("       42        200  100.0%  app"), "{text}");
    }

    #[test]
    fn off_cpu_tables_fit_and_rank_by_wall() {
        let mut summary =
            crate::analysis::summarize(&crate::profile::Profile::default(), false, 10_000.0);
        summary.total_samples = 200;
        let long = "a_very_long_function_name_that_goes_on_and_on_and_on".to_string();
        summary.off_cpu = Some(OffCpuSummary {
            total_us: 2_500_000,
            by_state: [2_000_000, 0, 500_000, 0],
            functions: vec![WallStat {
                name: long.clone(),
                module: "app".into(),
                cpu_us: 1_000_000,
                off_us: [2_000_000, 0, 500_000, 0],
            }],
            wait_sites: vec![WaitSite {
                name: "wait_for_reply".into(),
                module: "app".into(),
                off_us: [2_000_000, 0, 0, 0],
            }],
            processes: vec![WallEntity {
                id: 42,
                tgid: 42,
                name: "app".into(),
                cpu_us: 1_000_000,
                off_us: [2_000_000, 0, 500_000, 0],
            }],
            threads: vec![],
        });
        let text = render(&meta(), &summary, &Losses::default(), 20);
        for line in text.lines() {
            assert!(
                line.chars().count() <= 100,
                "too wide ({}): {line}",
                line.chars().count()
            );
        }
        assert!(
            text.contains("Off-CPU: 2.50 s blocked (sleeping 2.00 s, preempted 500.0 ms)"),
            "{text}"
        );
        assert!(
            text.contains("   3.50 s    1.00 s    2.00 s         -  500.0 ms         -  …"),
            "{text}"
        );
        assert!(text.contains("wait_for_reply"));
        assert_eq!(time(999), "999 us");
        assert_eq!(time(1500), "1.5 ms");
    }

    #[test]
    fn an_empty_profile_says_so() {
        let empty = Summary {
            total_samples: 0,
            functions: vec![],
            ..Summary::default()
        };
        let text = render(&meta(), &empty, &Losses::default(), 20);
        assert!(text.contains("No samples"));
        assert!(!text.contains("Losses"));
    }
}
