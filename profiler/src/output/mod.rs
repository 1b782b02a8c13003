//! Renderers: each writes one view of the profile model (folded stacks,
//! flame graph, JSON report, terminal tables). They read the model only.

pub mod folded;
pub mod json;
pub mod pprof;
pub mod speedscope;
pub mod svg;
pub mod table;

use std::path::Path;

use anyhow::Result;
use inferno::flamegraph::{
    Palette,
    color::{BasicPalette, MultiPalette},
};

use crate::{
    analysis,
    cli::{Format, RenderArgs},
    meta::RunMeta,
    profile::Profile,
};

/// How a profile is rendered.
pub struct Render<'a> {
    pub args: &'a RenderArgs,
    pub off_cpu: bool,
    pub wakers: bool,
    /// When the run started, for pprof.
    pub started_unix_nanos: i64,
}

/// The text for stdout: the tables, or report.json with `--json`.
pub struct Rendered {
    pub stdout: String,
}

/// Writes every requested output file into `dir`.
pub fn write_all(
    dir: &Path,
    meta: &RunMeta,
    profile: &Profile,
    render: &Render,
) -> Result<Rendered> {
    let wants = |format| render.args.format.contains(&format);
    let sample_period_us = 1e6 / meta.freq_hz as f64;
    let subtitle = |what: String| {
        Some(format!(
            "{} · {:.1} s at {} Hz · {} CPUs · {what}",
            meta.target, meta.duration_secs, meta.freq_hz, meta.cpus
        ))
    };
    let mut files = Vec::new();
    let mut graph = |name: &str, folded: &folded::Folded, style: svg::GraphStyle| -> Result<()> {
        if wants(Format::Folded) {
            folded::write(&dir.join(format!("{name}.folded")), folded)?;
            files.push(format!("{name}.folded"));
        }
        if wants(Format::Svg) {
            svg::write(
                &dir.join(format!("{name}.svg")),
                folded,
                style,
                render.args.min_width,
            )?;
            files.push(format!("{name}.svg"));
        }
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
    if render.off_cpu {
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
    if render.wakers {
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
    if wants(Format::Pprof) {
        let message = pprof::build(profile, meta, render.off_cpu, render.started_unix_nanos);
        pprof::write(&dir.join("profile.pb.gz"), &message)?;
        files.push("profile.pb.gz".into());
    }
    if wants(Format::Speedscope) {
        speedscope::write(&dir.join("speedscope.json"), profile, meta, render.off_cpu)?;
        files.push("speedscope.json".into());
    }
    let summary = analysis::summarize(profile, render.off_cpu, sample_period_us);
    if wants(Format::Json) {
        files.push("report.json".into());
    }
    let names: Vec<&str> = files.iter().map(String::as_str).collect();
    let report = json::render(meta, &summary, &profile.losses, &names);
    if wants(Format::Json) {
        json::write(&dir.join("report.json"), &report)?;
    }
    let stdout = if render.args.json {
        report
    } else {
        let mut tables = table::render(meta, &summary, &profile.losses, render.args.top);
        tables.push_str(&format!(
            "\nWrote {} in {}\n",
            names.join(", "),
            dir.display()
        ));
        tables
    };
    Ok(Rendered { stdout })
}
