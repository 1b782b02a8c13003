//! Renderers: each writes one view of the profile model (folded stacks,
//! flame graph, JSON report, terminal tables). They read the model only.

pub mod folded;
pub mod json;
pub mod svg;
pub mod table;

use std::path::Path;

use anyhow::Result;

use crate::{analysis, capture::Capture, meta::RunMeta};

/// Writes every output file into `dir` and returns the tables for stdout.
pub fn write_all(dir: &Path, meta: &RunMeta, capture: &Capture, top: usize) -> Result<String> {
    let profile = &capture.profile;
    let folded_stacks = folded::fold(profile);
    folded::write(&dir.join("on-cpu.folded"), &folded_stacks)?;
    let style = svg::GraphStyle {
        title: format!("On-CPU: {}", meta.hostname),
        subtitle: Some(format!(
            "{} · {:.1} s at {} Hz · {} CPUs · {} samples",
            meta.target,
            meta.duration_secs,
            meta.freq_hz,
            meta.cpus,
            profile.total_samples()
        )),
        count_name: "samples",
    };
    svg::write(&dir.join("on-cpu.svg"), &folded_stacks, style)?;
    let summary = analysis::summarize(profile);
    json::write(&dir.join("report.json"), meta, &summary, &profile.losses)?;
    Ok(table::render(meta, &summary, &profile.losses, top))
}
