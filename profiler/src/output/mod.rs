//! Renderers: each writes one view of the profile model (folded stacks,
//! flame graph, JSON report, terminal tables). They read the model only.

pub mod folded;
pub mod json;
pub mod svg;
pub mod table;

use std::path::Path;

use anyhow::Result;
use inferno::flamegraph::{
    Palette,
    color::{BasicPalette, MultiPalette},
};

use crate::{analysis, capture::Capture, meta::RunMeta};

/// Writes every output file into `dir` and returns the tables for stdout.
pub fn write_all(dir: &Path, meta: &RunMeta, capture: &Capture, top: usize) -> Result<String> {
    let profile = &capture.profile;
    let off_cpu = capture.off_cpu;
    let sample_period_us = 1e6 / meta.freq_hz as f64;
    let subtitle = |what: String| {
        Some(format!(
            "{} · {:.1} s at {} Hz · {} CPUs · {what}",
            meta.target, meta.duration_secs, meta.freq_hz, meta.cpus
        ))
    };
    let mut written = Vec::new();
    let mut graph =
        |name: &'static str, folded: &folded::Folded, style: svg::GraphStyle| -> Result<()> {
            folded::write(&dir.join(format!("{name}.folded")), folded)?;
            svg::write(&dir.join(format!("{name}.svg")), folded, style)?;
            written.extend([format!("{name}.folded"), format!("{name}.svg")]);
            Ok(())
        };
    graph(
        "on-cpu",
        &folded::fold(profile),
        svg::GraphStyle {
            title: format!("On-CPU: {}", meta.hostname),
            subtitle: subtitle(format!("{} samples", profile.total_samples())),
            count_name: "samples",
            palette: Palette::default(),
        },
    )?;
    if off_cpu {
        let off = folded::fold_off_cpu(profile);
        let blocked = table::time(off.values().sum());
        graph(
            "off-cpu",
            &off,
            svg::GraphStyle {
                title: "Off-CPU time".into(),
                subtitle: subtitle(format!("{blocked} blocked")),
                count_name: "us",
                palette: Palette::Basic(BasicPalette::Io),
            },
        )?;
        graph(
            "wall",
            &folded::fold_wall(profile, sample_period_us),
            svg::GraphStyle {
                title: "Wall-clock time: on-CPU and off-CPU".into(),
                subtitle: subtitle("[on-cpu] or why it waited, at the top of each stack".into()),
                count_name: "us",
                palette: Palette::default(),
            },
        )?;
    }
    if capture.wakers {
        graph(
            "off-cpu-wakers",
            &folded::fold_wakers(profile),
            svg::GraphStyle {
                title: "Off-CPU time with wakers".into(),
                subtitle: subtitle("blocked stack, then --, then the waker's stack".into()),
                count_name: "us",
                palette: Palette::Multi(MultiPalette::Wakeup),
            },
        )?;
    }
    written.push("report.json".into());
    let summary = analysis::summarize(profile, off_cpu, sample_period_us);
    let names: Vec<&str> = written.iter().map(String::as_str).collect();
    json::write(
        &dir.join("report.json"),
        meta,
        &summary,
        &profile.losses,
        &names,
    )?;
    let mut tables = table::render(meta, &summary, &profile.losses, top);
    tables.push_str(&format!(
        "\nWrote {} in {}\n",
        names.join(", "),
        dir.display()
    ));
    Ok(tables)
}
