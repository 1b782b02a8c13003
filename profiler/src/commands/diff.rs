//! `bpfprof diff BASE NEW`: a differential flame graph (inferno's, with the
//! base normalized to the new total) and the functions whose share of the
//! samples grew, shrank, appeared or vanished by more than `--threshold`
//! points, largest change first.

use std::{collections::BTreeMap, fmt::Write as _, path::Path, process::ExitCode};

use anyhow::{Result, bail};
use inferno::{differential, flamegraph};

use crate::{
    analysis,
    cli::DiffArgs,
    output::{dir::OutDir, stdout},
    saved::{self, FoldedCounts},
};

pub(crate) fn run(args: &DiffArgs) -> Result<ExitCode> {
    if args.threshold.is_nan() || args.threshold < 0.0 {
        bail!("--threshold must be a number of points, 0 or more");
    }
    let base_path = saved::folded_path(&args.base, "on-cpu.folded")?;
    let new_path = saved::folded_path(&args.new, "on-cpu.folded")?;
    let base = saved::read_folded(&base_path)?;
    let new = saved::read_folded(&new_path)?;
    for (path, counts) in [(&base_path, &base), (&new_path, &new)] {
        if counts.values().sum::<u64>() == 0 {
            bail!("{}: no samples to compare", path.display());
        }
    }
    // diff writes two files of its own names, into the current directory
    // by default: an existing directory is used (never through a link), and
    // the files replace any of the same names.
    let dir = args.output.clone().unwrap_or_else(|| ".".into());
    let out =
        OutDir::named(&dir, true, crate::ownership::invoking_user()).map_err(anyhow::Error::msg)?;
    let failed = write_graph(&out, &base, &new)?;
    let changes = function_changes(&base, &new);
    let mut text = render(
        &base_path,
        &new_path,
        &base,
        &new,
        &changes,
        args.threshold,
        args.top,
    );
    if failed == 0 {
        let _ = writeln!(text, "\nWrote diff.folded, diff.svg in {}", dir.display());
    }
    Ok(if failed == 0 && stdout::print(text) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes diff.folded and diff.svg, each on its own; returns how many
/// could not be written (each said so on stderr).
fn write_graph(out: &OutDir, base: &FoldedCounts, new: &FoldedCounts) -> Result<usize> {
    let text = |counts: &FoldedCounts| {
        counts
            .iter()
            .map(|(s, n)| format!("{s} {n}\n"))
            .collect::<String>()
    };
    let mut folded = Vec::new();
    let options = differential::Options {
        normalize: true,
        strip_hex: false,
    };
    differential::from_readers(
        options,
        text(base).as_bytes(),
        text(new).as_bytes(),
        &mut folded,
    )?;
    let mut options = flamegraph::Options::default();
    options.title = "Differential flame graph: red grew, blue shrank".into();
    options.subtitle = Some("widths are the new profile; colours the change from the base".into());
    options.deterministic = true;
    let results = [
        out.write("diff.folded", |w| Ok(w.write_all(&folded)?)),
        out.write("diff.svg", |w| {
            Ok(flamegraph::from_reader(&mut options, folded.as_slice(), w)?)
        }),
    ];
    let mut failed = 0;
    for err in results.into_iter().filter_map(Result::err) {
        eprintln!("bpfprof: error: {err:#}");
        failed += 1;
    }
    Ok(failed)
}

/// A function's share of the samples in each profile, in percent.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Change {
    pub(crate) name: String,
    pub(crate) base_self: f64,
    pub(crate) new_self: f64,
    pub(crate) base_total: f64,
    pub(crate) new_total: f64,
}

impl Change {
    pub(crate) fn delta(&self) -> f64 {
        self.new_self - self.base_self
    }
}

/// Every function of either profile with its self and total share in both.
pub(crate) fn function_changes(base: &FoldedCounts, new: &FoldedCounts) -> Vec<Change> {
    let mut changes: BTreeMap<String, Change> = BTreeMap::new();
    for (counts, is_new) in [(base, false), (new, true)] {
        let whole: u64 = counts.values().sum();
        let share = |n: u64| n as f64 * 100.0 / whole as f64;
        // Skip the root frame: it is the process, not a function.
        let stacks: Vec<(Vec<&str>, u64)> = counts
            .iter()
            .map(|(stack, &n)| (stack.split(';').skip(1).collect(), n))
            .collect();
        let frames = stacks.iter().map(|(frames, n)| (frames.as_slice(), *n));
        for (name, counts) in analysis::self_and_total(frames) {
            let c = changes.entry(name.to_string()).or_default();
            let (self_share, total_share) = if is_new {
                (&mut c.new_self, &mut c.new_total)
            } else {
                (&mut c.base_self, &mut c.base_total)
            };
            *self_share = share(counts.self_count);
            *total_share = share(counts.total);
        }
    }
    changes
        .into_iter()
        .map(|(name, c)| Change { name, ..c })
        .collect()
}

fn render(
    base_path: &Path,
    new_path: &Path,
    base: &FoldedCounts,
    new: &FoldedCounts,
    changes: &[Change],
    threshold: f64,
    top: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Differential profile: {} ({} samples) -> {} ({} samples); shares in % of each profile",
        base_path.display(),
        base.values().sum::<u64>(),
        new_path.display(),
        new.values().sum::<u64>()
    );
    let pick = |keep: &dyn Fn(&Change) -> bool, key: &dyn Fn(&Change) -> f64| {
        let mut rows: Vec<&Change> = changes.iter().filter(|c| keep(c)).collect();
        rows.sort_by(|a, b| key(b).total_cmp(&key(a)).then_with(|| a.name.cmp(&b.name)));
        rows
    };
    let present = |c: &Change| c.base_total > 0.0 && c.new_total > 0.0;
    let lists = [
        (
            "Regressions (self time grew)",
            pick(&|c| present(c) && c.delta() >= threshold, &|c| c.delta()),
        ),
        (
            "Improvements (self time shrank)",
            pick(&|c| present(c) && -c.delta() >= threshold, &|c| -c.delta()),
        ),
        (
            "New functions",
            pick(&|c| c.base_total == 0.0 && c.new_total >= threshold, &|c| {
                c.new_total
            }),
        ),
        (
            "Vanished functions",
            pick(&|c| c.new_total == 0.0 && c.base_total >= threshold, &|c| {
                c.base_total
            }),
        ),
    ];
    let mut net = Vec::new();
    for ((title, rows), label) in lists.iter().zip(["grew", "shrank", "new", "vanished"]) {
        // An empty f64 sum is -0.0; adding 0.0 prints it as +0.0.
        let points: f64 = rows.iter().map(|c| c.delta()).sum::<f64>() + 0.0;
        net.push(format!("{} {label} ({points:+.1} points)", rows.len()));
        let _ = writeln!(out, "\n{title}, by more than {threshold} points");
        write_rows(&mut out, rows, top);
    }
    let _ = writeln!(
        out,
        "\nNet change of self time, in points: {}",
        net.join(", ")
    );
    out
}

/// One list's table, its first `top` rows.
fn write_rows(out: &mut String, rows: &[&Change], top: usize) {
    if rows.is_empty() {
        let _ = writeln!(out, "  none");
        return;
    }
    let _ = writeln!(
        out,
        "  {:>7} {:>7} {:>8}  {:>7} {:>7}  function",
        "base", "new", "change", "base", "new"
    );
    let _ = writeln!(
        out,
        "  {:>7} {:>7} {:>8}  {:>7} {:>7}",
        "self%", "self%", "", "total%", "total%"
    );
    for c in rows.iter().take(top) {
        let _ = writeln!(
            out,
            "  {:>6.1}% {:>6.1}% {:>+8.1}  {:>6.1}% {:>6.1}%  {}",
            c.base_self,
            c.new_self,
            c.delta(),
            c.base_total,
            c.new_total,
            c.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saved::parse_folded;

    const BASE: &str = "app;main;steady 50\napp;main;grows 20\napp;main;vanishes 30\n";
    const NEW: &str = "app;main;steady 50\napp;main;grows 40\napp;main;appears 10\n";

    #[test]
    fn shares_of_both_profiles_per_function() {
        let changes = function_changes(&parse_folded(BASE).unwrap(), &parse_folded(NEW).unwrap());
        let get = |name: &str| changes.iter().find(|c| c.name == name).unwrap().clone();
        assert_eq!(
            (get("grows").base_self, get("grows").new_self),
            (20.0, 40.0)
        );
        assert_eq!(get("vanishes").new_total, 0.0);
        assert_eq!(get("appears").base_total, 0.0);
        assert_eq!(get("main").base_total, 100.0);
        assert!(
            changes.iter().all(|c| c.name != "app"),
            "the process is not a function"
        );
    }

    #[test]
    fn lists_regressions_new_and_vanished_functions_largest_first() {
        let (base, new) = (parse_folded(BASE).unwrap(), parse_folded(NEW).unwrap());
        let changes = function_changes(&base, &new);
        let text = render(
            Path::new("a"),
            Path::new("b"),
            &base,
            &new,
            &changes,
            1.0,
            20,
        );
        let section = |title: &str| {
            text.split(title)
                .nth(1)
                .unwrap()
                .split("\n\n")
                .next()
                .unwrap()
                .to_string()
        };
        assert!(
            section("Regressions").contains("+20.0  ") && section("Regressions").contains("grows"),
            "{text}"
        );
        assert!(
            section("Improvements").contains("none"),
            "steady stays: {text}"
        );
        assert!(section("New functions").contains("appears"), "{text}");
        assert!(section("Vanished functions").contains("vanishes"), "{text}");
        assert!(
            text.contains(
                "points: 1 grew (+20.0 points), 0 shrank (+0.0 points), 1 new (+10.0 points)"
            ),
            "{text}"
        );
        let high = render(
            Path::new("a"),
            Path::new("b"),
            &base,
            &new,
            &changes,
            25.0,
            20,
        );
        assert!(!high.contains("grows"), "below the threshold: {high}");
    }
}
