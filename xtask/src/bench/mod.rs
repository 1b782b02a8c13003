//! `cargo xtask bench [--quick]`: bpfprof measured side by side with perf
//! and bpftrace on this machine. Installs what it compares against, runs
//! every comparison (each figure the median of repeated runs, with min and
//! max; ratios taken within one run), and writes docs/benchmarks.md and
//! docs/benchmarks.json. Not part of `test`.

mod cases;
mod push;
mod python;
mod real;
mod report;
mod run;
mod scale;
mod top;
mod unwind;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context, Result};

use crate::{is_root, progress, run_checked};

/// One comparison: its name in the results, and how to run it.
type Case = (&'static str, fn(&Bench) -> Result<serde_json::Value>);

pub struct Bench {
    bpfprof: PathBuf,
    workloads: PathBuf,
    scratch: PathBuf,
    runs: usize,
    quick: bool,
    cpus: usize,
    capture_seconds: u64,
}

/// Every comparison, in the order a whole run makes them.
const CASES: [Case; 10] = [
    ("off_cpu_cost", Bench::off_cpu_cost),
    ("sampling_cost", Bench::sampling_cost),
    ("accuracy", Bench::accuracy),
    ("report_time_and_memory", Bench::report_time_and_memory),
    ("scale", Bench::scale),
    ("unwind_cost", Bench::unwind_cost),
    ("python_cost", Bench::python_cost),
    ("real_workloads", Bench::real_workloads),
    ("push_cost", Bench::push_cost),
    ("top_cost", Bench::top_cost),
];

/// `cargo xtask bench`'s arguments.
pub struct Args {
    quick: bool,
    /// Run just that case and print its JSON, leaving docs/ alone...
    only: Option<String>,
    /// ...unless set: then its results replace that case's in
    /// docs/benchmarks.json, the others' kept, and docs/benchmarks.md is
    /// written anew from them.
    update_docs: bool,
}

impl Args {
    /// Refuses what it does not know, naming it: a bench run is long, and
    /// a misspelt flag would otherwise be found out at its end.
    pub fn parse(args: &[String]) -> Result<Args> {
        let mut parsed = Args {
            quick: false,
            only: None,
            update_docs: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => parsed.quick = true,
                "--update-docs" => parsed.update_docs = true,
                "--only" => {
                    let case = args.next().context("bench: --only needs a case")?;
                    anyhow::ensure!(
                        CASES.iter().any(|(name, _)| name == case),
                        "bench: no case `{case}`; the cases: {}",
                        CASES.map(|(name, _)| name).join(", ")
                    );
                    parsed.only = Some(case.clone());
                }
                other => anyhow::bail!(
                    "bench: unknown argument `{other}` (--quick, --only CASE, --update-docs)"
                ),
            }
        }
        anyhow::ensure!(
            !parsed.update_docs || parsed.only.is_some(),
            "bench: --update-docs goes with --only CASE (a whole run always writes docs/)"
        );
        Ok(parsed)
    }
}

pub fn run(root: &Path, bpfprof: &Path, args: &Args) -> Result<ExitCode> {
    let (quick, only) = (args.quick, args.only.as_deref());
    ensure_tools()?;
    let bench = Bench {
        bpfprof: bpfprof.to_path_buf(),
        workloads: build_workloads(root)?,
        scratch: std::env::temp_dir().join("bpfprof-bench"),
        runs: if quick { 3 } else { 5 },
        quick,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        capture_seconds: if quick { 10 } else { 30 },
    };
    std::fs::create_dir_all(&bench.scratch)?;
    let mut results = serde_json::Map::new();
    for (name, case) in CASES {
        if only.is_some_and(|only| only != name) {
            continue;
        }
        progress(&format!("bench: {name} ({} runs)", bench.runs));
        let value = case(&bench).with_context(|| format!("bench case {name}"))?;
        if only.is_some() {
            println!("{}", serde_json::to_string_pretty(&value)?);
            if args.update_docs {
                update_one(root, name, value)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        results.insert(name.into(), value);
    }
    let docs = root.join("docs");
    std::fs::create_dir_all(&docs)?;
    let machine = report::machine(&bench)?;
    let results = serde_json::json!({ "machine": machine, "results": results });
    std::fs::write(
        docs.join("benchmarks.json"),
        serde_json::to_string_pretty(&results)? + "\n",
    )?;
    std::fs::write(
        docs.join("benchmarks.md"),
        report::markdown(&results, quick),
    )?;
    progress("bench: wrote docs/benchmarks.md and docs/benchmarks.json");
    Ok(ExitCode::SUCCESS)
}

/// Puts one case's results into docs/benchmarks.json and writes
/// docs/benchmarks.md anew from all the results there.
fn update_one(root: &Path, name: &str, value: serde_json::Value) -> Result<()> {
    let docs = root.join("docs");
    let path = docs.join("benchmarks.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: run the whole bench first", path.display()))?;
    let mut all: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    all["results"][name] = value;
    std::fs::write(&path, serde_json::to_string_pretty(&all)? + "\n")?;
    let quick = all["machine"]["quick"].as_bool().unwrap_or(false);
    std::fs::write(docs.join("benchmarks.md"), report::markdown(&all, quick))?;
    progress(&format!(
        "bench: {name} written into docs/benchmarks.md and docs/benchmarks.json"
    ));
    Ok(())
}

/// perf, bpftrace, bpftool (for bpftrace's programs' costs), g++ and
/// OpenJDK 17 (the real workloads) from Debian's packages, inferno's
/// command-line tools for perf's post-processing.
fn ensure_tools() -> Result<()> {
    let missing = |tool: &str| !crate::prereqs::on_path(tool);
    let java = format!("{}/bin/javac", real::JAVA_HOME);
    let packages: Vec<&str> = [
        ("perf", "linux-perf"),
        ("bpftrace", "bpftrace"),
        ("bpftool", "bpftool"),
        ("g++", "g++"),
        (java.as_str(), "openjdk-17-jdk-headless"),
    ]
    .into_iter()
    .filter(|(tool, _)| missing(tool))
    .map(|(_, package)| package)
    .collect();
    if !packages.is_empty() {
        anyhow::ensure!(
            is_root(),
            "the benchmark needs {} installed (apt-get install -y {})",
            packages.join(", "),
            packages.join(" ")
        );
        progress(&format!("bench: installing {}", packages.join(", ")));
        crate::prereqs::apt_install(&packages)?;
    }
    if missing("inferno-collapse-perf") {
        progress("bench: installing inferno's command-line tools (for perf's flame graphs)");
        run_checked(
            Command::new(crate::cargo()).args([
                "install",
                "inferno",
                "--version",
                "0.12.8",
                "--locked",
            ]),
            "installing inferno",
        )?;
    }
    Ok(())
}

/// The test workloads, built as the tests build them.
fn build_workloads(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    const O0: &[&str] = &["-O0", "-fno-inline"];
    for (name, source, flags) in [
        ("wl-pingpong", "pingpong.c", O0),
        ("wl-fixed", "fixed.c", O0),
        ("wl-ratio", "ratio.c", O0),
        ("wl-sleeps", "sleeps.c", O0),
        ("wl-stacks", "stacks.c", O0),
        ("wl-deep", "deep.c", O0),
        (
            "wl-omitfp",
            "omitfp.c",
            &["-O2", "-fomit-frame-pointer"][..],
        ),
        ("wl-leaf", "leaf.c", &["-O2"][..]),
        ("wl-qsort", "qsort.c", O0),
    ] {
        run_checked(
            Command::new("gcc")
                .args([
                    "-g",
                    "-fno-omit-frame-pointer",
                    "-fno-optimize-sibling-calls",
                ])
                .args(flags)
                .arg("-o")
                .arg(dir.join(name))
                .arg(root.join("tests/workloads").join(source)),
            &format!("building {name}"),
        )?;
    }
    run_checked(
        Command::new("rustc")
            .args(["-O", "-g", "-C", "force-frame-pointers=no", "-o"])
            .arg(dir.join("wl-rust-nofp"))
            .arg(root.join("tests/workloads/nofp.rs")),
        "building wl-rust-nofp",
    )?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn parse(args: &[&str]) -> Result<Args, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Args::parse(&args).map_err(|e| e.to_string())
    }

    #[test]
    fn known_arguments_are_taken_and_others_named() {
        let args = parse(&["--quick", "--only", "scale", "--update-docs"]).unwrap();
        assert!(args.quick && args.update_docs);
        assert_eq!(args.only.as_deref(), Some("scale"));
        let err = parse(&["--quik"]).err().unwrap();
        assert!(err.contains("`--quik`"), "{err}");
        let err = parse(&["--only", "scal"]).err().unwrap();
        assert!(err.contains("`scal`") && err.contains("scale"), "{err}");
        assert!(parse(&["--only"]).is_err());
        assert!(parse(&["--update-docs"]).is_err());
    }
}
