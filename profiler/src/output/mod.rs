//! Renderers: each writes one view of the profile model (folded stacks,
//! flame graph, pprof, speedscope, the JSON report, terminal tables) into
//! an output directory (`dir`, which owns how files are created safely).
//! [`write_all`] writes the views a run asked for. They read the model
//! only.

pub(crate) mod dir;
pub mod folded;
pub(crate) mod json;
pub(crate) mod pprof;
pub(crate) mod speedscope;
pub(crate) mod stdout;
pub mod svg;
pub(crate) mod table;

use std::{
    io::Write,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Result;
use inferno::flamegraph::{
    Palette,
    color::{BasicPalette, MultiPalette},
};

use self::dir::OutDir;
use crate::{
    analysis,
    cli::{Config, Format, RenderArgs},
    meta::RunMeta,
    profile::Profile,
};

/// How a profile is rendered.
pub(crate) struct Render<'a> {
    pub(crate) args: &'a RenderArgs,
    pub(crate) off_cpu: bool,
    pub(crate) wakers: bool,
    /// When the run started, for pprof.
    pub(crate) started_unix_nanos: i64,
}

impl Render<'_> {
    /// How a run of `config` that started at `started` is rendered.
    pub(crate) fn new(config: &Config, started: SystemTime) -> Render<'_> {
        Render {
            args: &config.render,
            off_cpu: config.off_cpu.is_some(),
            wakers: config.off_cpu.as_ref().is_some_and(|o| o.wakers),
            started_unix_nanos: started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64),
        }
    }
}

/// What rendering left: the text for stdout, and the files.
pub(crate) struct Rendered {
    /// The tables, or report.json with `--json`.
    pub(crate) stdout: String,
    /// The files written, by name.
    pub(crate) written: Vec<String>,
    /// How many files could not be written (each said so on stderr).
    pub(crate) failed: usize,
}

/// Writes every requested output file into `dir`, each on its own: a file
/// that cannot be written is named on stderr and the others still are.
pub(crate) fn write_all(
    dir: &OutDir,
    meta: &RunMeta,
    profile: &Profile,
    render: &Render,
) -> Rendered {
    let mut files = Files {
        dir,
        render,
        written: Vec::new(),
        failed: 0,
    };
    write_graphs(&mut files, meta, profile);
    if files.wants(Format::Pprof) {
        let message = pprof::build(profile, meta, render.off_cpu, render.started_unix_nanos);
        files.put("profile.pb.gz", |w| Ok(pprof::write(w, &message)?));
    }
    if files.wants(Format::Speedscope) {
        files.put("speedscope.json", |w| {
            Ok(speedscope::write(w, profile, meta, render.off_cpu)?)
        });
    }
    let summary = analysis::summarize(profile, render.off_cpu, sample_period_us(meta));
    let report = write_report(&mut files, meta, &summary, profile);
    let stdout = if render.args.json {
        report
    } else {
        let mut tables = table::render(meta, &summary, &profile.losses, render.args.top);
        if !files.written.is_empty() {
            tables.push_str(&format!(
                "\nWrote {} in {}\n",
                files.written.join(", "),
                dir.path().display()
            ));
        }
        tables
    };
    Rendered {
        stdout,
        written: files.written,
        failed: files.failed,
    }
}

fn sample_period_us(meta: &RunMeta) -> f64 {
    1e6 / meta.freq_hz as f64
}

/// The flame graphs and their folded stacks: on-CPU; with off-CPU time,
/// off-CPU and wall-clock; with wakers, off-CPU with wakers.
fn write_graphs(files: &mut Files, meta: &RunMeta, profile: &Profile) {
    let subtitle = |what: String| {
        Some(format!(
            "{} · {:.1} s at {} Hz · {} CPUs · {what}",
            meta.target, meta.duration_secs, meta.freq_hz, meta.cpus
        ))
    };
    files.graph(
        "on-cpu",
        &folded::fold(profile),
        svg::GraphStyle {
            title: format!("On-CPU: {}", meta.hostname),
            subtitle: subtitle(format!("{} samples", profile.total_samples())),
            count_name: "samples",
            palette: Palette::default(),
        },
    );
    if files.render.off_cpu {
        let off = folded::fold_off_cpu(profile);
        let blocked = table::time(off.values().sum());
        files.graph(
            "off-cpu",
            &off,
            svg::GraphStyle {
                title: "Off-CPU time".into(),
                subtitle: subtitle(format!("{blocked} blocked")),
                count_name: "us",
                palette: Palette::Basic(BasicPalette::Io),
            },
        );
        files.graph(
            "wall",
            &folded::fold_wall(profile, sample_period_us(meta)),
            svg::GraphStyle {
                title: "Wall-clock time: on-CPU and off-CPU".into(),
                subtitle: subtitle("[on-cpu] or why it waited, at the top of each stack".into()),
                count_name: "us",
                palette: Palette::default(),
            },
        );
    }
    if files.render.wakers {
        files.graph(
            "off-cpu-wakers",
            &folded::fold_wakers(profile),
            svg::GraphStyle {
                title: "Off-CPU time with wakers".into(),
                subtitle: subtitle("blocked stack, then --, then the waker's stack".into()),
                count_name: "us",
                palette: Palette::Multi(MultiPalette::Wakeup),
            },
        );
    }
}

/// report.json, listing the files written (and itself, when it is one of
/// them); returns its text, for `--json`.
fn write_report(
    files: &mut Files,
    meta: &RunMeta,
    summary: &analysis::Summary,
    profile: &Profile,
) -> String {
    let mut listed: Vec<&str> = files.written.iter().map(String::as_str).collect();
    if files.wants(Format::Json) {
        listed.push("report.json");
    }
    let report = json::Report::new(meta, summary, &profile.losses, &listed).to_json();
    if files.wants(Format::Json) {
        files.put("report.json", |w| Ok(w.write_all(report.as_bytes())?));
    }
    report
}

/// The files of one render, written one by one.
struct Files<'a> {
    dir: &'a OutDir,
    render: &'a Render<'a>,
    written: Vec<String>,
    failed: usize,
}

impl Files<'_> {
    fn wants(&self, format: Format) -> bool {
        self.render.args.format.contains(&format)
    }

    /// A graph's folded file and SVG, as the formats asked.
    fn graph(&mut self, name: &str, folded: &folded::Folded, style: svg::GraphStyle) {
        if self.wants(Format::Folded) {
            self.put(&format!("{name}.folded"), |w| Ok(folded::write(w, folded)?));
        }
        if self.wants(Format::Svg) {
            let min_width = self.render.args.min_width;
            self.put(&format!("{name}.svg"), |w| {
                Ok(svg::write(
                    w,
                    folded,
                    style,
                    svg::percent_of_total(min_width),
                )?)
            });
        }
    }

    fn put(&mut self, name: &str, render: impl FnOnce(&mut dyn Write) -> Result<()>) {
        match self.dir.write(name, render) {
            Ok(()) => self.written.push(name.to_string()),
            Err(err) => {
                eprintln!("bpfprof: error: {err:#}");
                self.failed += 1;
            }
        }
    }
}
