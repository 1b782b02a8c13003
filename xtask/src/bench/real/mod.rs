//! Real workloads (#15): a cargo build of a crate depending on regex and
//! serde, a g++ -O2 build of a large C++ file, and a Java program, each
//! profiled system-wide at 99 Hz by bpfprof, by `perf record
//! --call-graph dwarf` and by `perf record -g`, one after the other on
//! runs of the same workload, the tool that goes first changing with each
//! run. The workloads' sources are in xtask/workloads/.

mod capture;
mod reference;
pub(super) mod report;
mod tools;
mod unnamed;

use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::Bench;
use crate::run_checked;

pub(super) const JAVA_HOME: &str = "/usr/lib/jvm/java-17-openjdk-amd64";

/// The demo crate: its manifest and lock file (kept as `.in` so cargo
/// never takes them for a package of this workspace), and its main.
const DEMO_MANIFEST: &str = include_str!("../../../workloads/demo/Cargo.toml.in");
const DEMO_LOCK: &str = include_str!("../../../workloads/demo/Cargo.lock.in");
const DEMO_MAIN: &str = include_str!("../../../workloads/demo/main.rs");
/// One unit of the C++ file, repeated with `UNIT` numbered.
const CPP_UNIT: &str = include_str!("../../../workloads/heavy.cpp");
const CPP_UNITS: usize = 8;
const CPP_HEADERS: &[&str] = &[
    "algorithm",
    "cstdio",
    "functional",
    "map",
    "numeric",
    "regex",
    "set",
    "sstream",
    "string",
    "tuple",
    "unordered_map",
    "variant",
    "vector",
];
const JAVA_SOURCE: &str = include_str!("../../../workloads/Churn.java");
/// How often the Java program dumps its perf map, in milliseconds.
const JAVA_PERF_MAP_MS: &str = "250";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Workload {
    Cargo,
    Cpp,
    Java,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Cargo, Workload::Cpp, Workload::Java];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Cargo => "cargo",
            Workload::Cpp => "g++",
            Workload::Java => "java",
        }
    }
}

/// Where the prepared workloads are.
pub(super) struct Prepared {
    demo: PathBuf,
    cpp: PathBuf,
    java: PathBuf,
    java_seconds: u64,
}

impl Bench {
    pub fn real_workloads(&self) -> Result<Value> {
        let prepared = self.prepare_real()?;
        let runs = if self.quick { 1 } else { 3 };
        let mut rows = Vec::new();
        for workload in Workload::ALL {
            let mut figures = tools::Figures::default();
            for run in 0..runs {
                crate::progress(&format!(
                    "bench: real_workloads: {} run {}/{runs}",
                    workload.name(),
                    run + 1
                ));
                for tool in tools::Tool::order(run) {
                    let mut cmd = prepared.command(workload)?;
                    self.measure_tool(tool, &mut cmd, run == 0, &mut figures)?;
                    prepared.clean_up(workload, &figures)?;
                }
            }
            rows.push(figures.json(workload));
        }
        let date = Command::new("date").arg("-u").output()?;
        Ok(json!({
            "date": String::from_utf8_lossy(&date.stdout).trim(),
            "bpfprof": super::report::version(&self.bpfprof.display().to_string(), "--version"),
            "freq_hz": 99,
            "runs": runs,
            "java_seconds": prepared.java_seconds,
            "workloads": rows,
        }))
    }

    /// Writes the workloads' sources into the scratch directory, fetches
    /// the crate's dependencies (the only step that may need the network)
    /// and builds it once, so that each measured build runs offline on a
    /// warm page cache; compiles the Java program.
    fn prepare_real(&self) -> Result<Prepared> {
        let dir = self.tmp("real");
        let demo = dir.join("demo");
        std::fs::create_dir_all(demo.join("src"))?;
        std::fs::write(demo.join("Cargo.toml"), DEMO_MANIFEST)?;
        std::fs::write(demo.join("Cargo.lock"), DEMO_LOCK)?;
        std::fs::write(demo.join("src/main.rs"), DEMO_MAIN)?;
        let cargo = || {
            let mut cmd = Command::new("cargo");
            cmd.current_dir(&demo).env_remove("CARGO_TARGET_DIR");
            cmd
        };
        run_checked(
            cargo().args(["fetch", "-q"]),
            "fetching the demo crate's dependencies",
        )?;
        run_checked(
            cargo().args(["build", "--release", "--offline", "-q"]),
            "building the demo crate",
        )?;
        let cpp = dir.join("heavy.cpp");
        std::fs::write(&cpp, cpp_source())?;
        let java = dir.join("java");
        std::fs::create_dir_all(&java)?;
        std::fs::write(java.join("Churn.java"), JAVA_SOURCE)?;
        run_checked(
            Command::new(format!("{JAVA_HOME}/bin/javac"))
                .arg("-d")
                .arg(&java)
                .arg(java.join("Churn.java")),
            "compiling the Java workload",
        )?;
        Ok(Prepared {
            demo,
            cpp,
            java,
            java_seconds: if self.quick { 8 } else { 15 },
        })
    }
}

/// The C++ file: the headers, the unit repeated, and a main calling each.
fn cpp_source() -> String {
    let mut text: String = CPP_HEADERS
        .iter()
        .map(|h| format!("#include <{h}>\n"))
        .collect();
    for unit in 0..CPP_UNITS {
        text += &CPP_UNIT
            .replace("UNIT_MOD", &(unit + 3).to_string())
            .replace("UNIT", &unit.to_string());
    }
    text += "int main() {\n    std::vector<std::string> w{\"ab1\", \"cd\", \"ef22\"};\n    long t = 0;\n";
    for unit in 0..CPP_UNITS {
        text += &format!("    t += u{unit}::run(w);\n");
    }
    text + "    std::printf(\"%ld\\n\", t);\n}\n"
}

impl Prepared {
    /// The command of one run of a workload, its build made to start
    /// from nothing.
    fn command(&self, workload: Workload) -> Result<Command> {
        Ok(match workload {
            Workload::Cargo => {
                run_checked(
                    Command::new("cargo")
                        .args(["clean", "-q"])
                        .current_dir(&self.demo),
                    "cargo clean",
                )?;
                let mut cmd = Command::new("cargo");
                cmd.args(["build", "--release", "--offline", "-q"])
                    .current_dir(&self.demo)
                    .env_remove("CARGO_TARGET_DIR");
                cmd
            }
            Workload::Cpp => {
                let mut cmd = Command::new("g++");
                cmd.args(["-O2", "-o"])
                    .arg(self.cpp.with_extension(""))
                    .arg(&self.cpp);
                cmd
            }
            Workload::Java => {
                let mut cmd = Command::new(format!("{JAVA_HOME}/bin/java"));
                cmd.args([
                    "-XX:+UnlockDiagnosticVMOptions",
                    "-XX:+DumpPerfMapAtExit",
                    "-cp",
                ])
                .arg(&self.java)
                .args(["Churn", &self.java_seconds.to_string(), JAVA_PERF_MAP_MS]);
                cmd
            }
        })
    }

    /// Removes the perf map the Java program left, once both tools have
    /// read it.
    fn clean_up(&self, workload: Workload, figures: &tools::Figures) -> Result<()> {
        if workload == Workload::Java
            && let Some(pid) = figures.last_pid
        {
            let map = PathBuf::from(format!("/tmp/perf-{pid}.map"));
            if map.exists() {
                std::fs::remove_file(&map)
                    .with_context(|| format!("removing {}", map.display()))?;
            }
        }
        Ok(())
    }
}
