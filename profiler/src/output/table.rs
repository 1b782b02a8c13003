//! The hot-path tables printed at the end of a run, sized for a
//! 100-column terminal.

use std::fmt::Write;

use crate::{
    analysis::{FunctionStat, Summary, percent, top_by_self},
    meta::RunMeta,
    profile::Losses,
};

const FUNCTION_WIDTH: usize = 52;
const MODULE_WIDTH: usize = 18;

pub fn render(meta: &RunMeta, summary: &Summary, losses: &Losses, top: usize) -> String {
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
    if !losses.is_empty() {
        let _ = writeln!(out, "\nLosses");
        for (name, value) in losses.entries().into_iter().filter(|(_, v)| *v > 0) {
            let _ = writeln!(out, "  {name:<36} {value:>9}");
        }
    }
    out
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
fn truncate(text: &str, width: usize) -> String {
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
    use crate::analysis::ProcessStat;

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
        }
    }

    #[test]
    fn tables_rank_fit_100_columns_and_show_losses() {
        let losses = Losses {
            stack_collisions: 3,
            ..Losses::default()
        };
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
    fn an_empty_profile_says_so() {
        let empty = Summary {
            total_samples: 0,
            functions: vec![],
            processes: vec![],
        };
        let text = render(&meta(), &empty, &Losses::default(), 20);
        assert!(text.contains("No samples"));
        assert!(!text.contains("Losses"));
    }
}
