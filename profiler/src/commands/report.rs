//! `bpfprof report DIR`: re-renders the tables and graphs of a saved run
//! (other `--top`, `--format`, `--min-width`) from its folded files and
//! report.json, without profiling again. The saved run is only read: what
//! can be rebuilt from it has less in it (no addresses, processes of one
//! name merged), so the new files go to `-o DIR` or a new `DIR-report`.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail};

use crate::{
    cli::ReportArgs,
    output::{self, dir::OutDir, stdout, svg},
    saved::{self, Rebuilder},
};

pub(crate) fn run(args: &ReportArgs) -> Result<ExitCode> {
    let dir = &args.dir;
    let report = saved::read_report(dir)?;
    let mut pids = HashMap::new();
    for p in &report.processes {
        // Two processes of one name cannot be told apart in folded text.
        // Names are keyed as the folded files read back have them.
        pids.entry(p.name.clone())
            .and_modify(|id| *id = 0)
            .or_insert(p.pid);
    }
    pids.retain(|_, pid| *pid != 0);
    let modules: HashMap<String, String> = report
        .hot_functions
        .iter()
        .map(|f| (f.name.clone(), f.module.clone()))
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
    profile.losses = report.errors;
    let render = output::Render {
        args: &args.render,
        off_cpu,
        wakers: false,
        started_unix_nanos: 0,
    };
    let out = output_dir(args)?;
    let rendered = output::write_all(&out, &report.run, &profile, &render);
    let failed = rendered.failed + rerender_wakers(dir, &out, &args.render)?;
    let printed = stdout::print(&rendered.stdout);
    Ok(if failed == 0 && printed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `-o DIR` (never the saved run itself), or a new directory named after
/// the saved run: `run-report`, `run-report-1`...
fn output_dir(args: &ReportArgs) -> Result<OutDir> {
    let owner = crate::ownership::invoking_user();
    let Some(path) = &args.output else {
        let base = report_dir_name(&args.dir)?;
        return OutDir::create_new(&base, owner)
            .with_context(|| format!("{}: cannot create", base.display()));
    };
    let out = OutDir::named(path, args.force, owner).map_err(anyhow::Error::msg)?;
    let saved = std::fs::metadata(&args.dir)
        .with_context(|| format!("{}: cannot read", args.dir.display()))?;
    if out.identity()? == (saved.dev(), saved.ino()) {
        bail!(
            "--output {}: is the saved run itself, which report only reads",
            path.display()
        );
    }
    Ok(out)
}

/// `DIR-report`, next to DIR.
fn report_dir_name(dir: &Path) -> Result<PathBuf> {
    let dir = match dir.file_name() {
        Some(_) => dir.to_path_buf(),
        // `.`, `..`, `/`: named after what they are.
        None => dir
            .canonicalize()
            .with_context(|| format!("{}: cannot resolve", dir.display()))?,
    };
    let Some(name) = dir.file_name() else {
        bail!("{}: give --output for the new files", dir.display());
    };
    let mut name = name.to_os_string();
    name.push("-report");
    Ok(dir.with_file_name(name))
}

/// The wakers graph is redrawn straight from its folded file; returns 1
/// when it could not be written (said so on stderr).
fn rerender_wakers(dir: &Path, out: &OutDir, render: &crate::cli::RenderArgs) -> Result<usize> {
    let path = dir.join("off-cpu-wakers.folded");
    if !path.is_file() || !render.format.contains(&crate::cli::Format::Svg) {
        return Ok(0);
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
    let written = out.write("off-cpu-wakers.svg", |w| {
        Ok(svg::write(
            w,
            &folded,
            style,
            svg::percent_of_total(render.min_width),
        )?)
    });
    Ok(match written {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("bpfprof: error: {err:#}");
            1
        }
    })
}
