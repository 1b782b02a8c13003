//! `bpfprof report DIR`: re-renders the tables and graphs of a saved run
//! (other `--top`, `--format`, `--min-width`) from its folded files and
//! report.json, without profiling again.

use std::{collections::HashMap, path::Path, process::ExitCode};

use anyhow::{Context, Result};

use crate::{
    cli::ReportArgs,
    meta::RunMeta,
    output::{self, svg},
    profile::{Losses, printable},
    saved::{self, MAX_REPORT_BYTES, Rebuilder},
};

pub fn run(args: &ReportArgs) -> Result<ExitCode> {
    let dir = &args.dir;
    let report = read_report(dir)?;
    let meta: RunMeta = serde_json::from_value::<RunMeta>(report["run"].clone())
        .with_context(|| {
            format!(
                "{}: `run` is not a bpfprof run description",
                dir.join("report.json").display()
            )
        })?
        .printable();
    let mut pids = HashMap::new();
    for p in report["processes"].as_array().into_iter().flatten() {
        if let (Some(name), Some(pid)) = (p["name"].as_str(), p["pid"].as_u64()) {
            // Two processes of one name cannot be told apart in folded text.
            // Names are keyed as the folded files read back have them.
            pids.entry(printable(name).into_owned())
                .and_modify(|id| *id = 0)
                .or_insert(pid as u32);
        }
    }
    pids.retain(|_, pid| *pid != 0);
    let modules: HashMap<String, String> = report["hot_functions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            Some((
                printable(f["name"].as_str()?).into_owned(),
                printable(f["module"].as_str()?).into_owned(),
            ))
        })
        .collect();
    let mut rebuilder = Rebuilder::new(&pids, &modules);
    rebuilder.add_on_cpu(&saved::read_folded(&saved::folded_path(
        dir,
        "on-cpu.folded",
    )?)?);
    let off_cpu_path = dir.join("off-cpu.folded");
    let off_cpu = off_cpu_path.is_file();
    if off_cpu {
        rebuilder.add_off_cpu(&saved::read_folded(&off_cpu_path)?);
    }
    let mut profile = rebuilder.profile;
    profile.losses = serde_json::from_value::<Losses>(report["errors"].clone()).unwrap_or_default();
    let by_module = std::mem::take(&mut profile.losses.unknown_frames_by_module);
    profile.losses.unknown_frames_by_module = by_module
        .into_iter()
        .map(|(module, n)| (printable(&module).into_owned(), n))
        .collect();
    let render = output::Render {
        args: &args.render,
        off_cpu,
        wakers: false,
        started_unix_nanos: 0,
    };
    let rendered = output::write_all(dir, &meta, &profile, &render)?;
    rerender_wakers(dir, &args.render)?;
    crate::ownership::give_to_invoking_user(dir);
    print!("{}", rendered.stdout);
    Ok(ExitCode::SUCCESS)
}

fn read_report(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("report.json");
    if !dir.is_dir() {
        anyhow::bail!("{}: not a directory", dir.display());
    }
    if !path.exists() {
        anyhow::bail!(
            "{}: not a bpfprof output directory (no report.json)",
            dir.display()
        );
    }
    let text = saved::read_bounded(&path, MAX_REPORT_BYTES)?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// The wakers graph is redrawn straight from its folded file.
fn rerender_wakers(dir: &Path, render: &crate::cli::RenderArgs) -> Result<()> {
    let path = dir.join("off-cpu-wakers.folded");
    if !path.is_file() || !render.format.contains(&crate::cli::Format::Svg) {
        return Ok(());
    }
    let folded = saved::read_folded(&path)?;
    let style = svg::GraphStyle {
        title: "Off-CPU time with wakers".into(),
        subtitle: Some("blocked stack, then --, then the waker's stack".into()),
        count_name: "us",
        palette: inferno::flamegraph::Palette::Multi(
            inferno::flamegraph::color::MultiPalette::Wakeup,
        ),
    };
    svg::write(
        &dir.join("off-cpu-wakers.svg"),
        &folded,
        style,
        render.min_width,
    )
}
