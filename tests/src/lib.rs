//! Test harness for bpfprof's end-to-end tests: finds the binary and the
//! workloads, runs bpfprof against the real kernel, and reads its outputs.
//!
//! Tests that need root and BPF are `#[ignore = "needs root and BPF"]` and
//! call [`require_bpf`]: `cargo xtask test` runs them as root, and counts
//! them as skipped when it is not root (with `CI` set, it fails instead).

use std::{
    collections::BTreeMap,
    io::Read,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, MutexGuard, OnceLock},
    thread,
    time::{Duration, Instant, SystemTime},
};

/// One capture at a time: concurrent profilers would see each other's
/// workloads and share two CPUs.
static BPF_LOCK: Mutex<()> = Mutex::new(());

mod elf;
pub mod pprof;
pub mod push;
pub mod receiver;
mod spawn;

pub use elf::function_ranges;
pub use spawn::{Sampling, as_nobody, spawn_profiler};
pub mod schemas;
pub mod speedscope;
pub mod tmux;

pub fn bpfprof_bin() -> PathBuf {
    std::env::var_os("BPFPROF_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/bpfprof"),
        PathBuf::from,
    )
}

pub fn workload(name: &str) -> PathBuf {
    Path::new(env!("WORKLOAD_DIR")).join(name)
}

/// Checks that this test can run (root, an up-to-date bpfprof binary) and
/// returns a guard to hold for the test. Every test that calls it is
/// `#[ignore = "needs root and BPF"]`: `cargo xtask test` runs them as root
/// with `--include-ignored`, and reports them as skipped otherwise. Asked for
/// explicitly where it cannot run, a test fails naming the reason rather
/// than passing without having run.
pub fn require_bpf() -> MutexGuard<'static, ()> {
    let test = thread::current().name().unwrap_or("this test").to_string();
    if unsafe { libc::geteuid() } != 0 {
        panic!("{test}: needs root (run `cargo xtask test` as root)");
    }
    if let Err(problem) = BINARY_CHECK.get_or_init(check_binary) {
        panic!("{test}: {problem}");
    }
    BPF_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

static BINARY_CHECK: OnceLock<Result<(), String>> = OnceLock::new();

/// The bpfprof under test must exist and be newer than every source it is
/// built from: an old binary would test old code without a word. Its
/// sources are what cargo's dep-info beside it lists, and the BPF crate's.
fn check_binary() -> Result<(), String> {
    let bin = bpfprof_bin();
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .map_err(|_| format!("{} is missing: run `cargo xtask build`", bin.display()))?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    newest_file(&root.join("profiler-ebpf/src"), &mut newest);
    match std::fs::read_to_string(bin.with_extension("d")) {
        Ok(dep_info) => {
            for source in dep_info_sources(&dep_info) {
                newest_file(&source, &mut newest);
            }
        }
        Err(_) => newest_file(&root.join("profiler/src"), &mut newest),
    }
    match newest {
        Some((modified, path)) if modified > built => Err(format!(
            "{} is older than its source {}: run `cargo xtask build` (or `cargo xtask test`)",
            bin.display(),
            path.display()
        )),
        _ => Ok(()),
    }
}

/// The prerequisites of the first rule of a make-style dep-info file.
fn dep_info_sources(dep_info: &str) -> Vec<PathBuf> {
    let rule = dep_info.lines().next().unwrap_or("");
    let Some((_, deps)) = rule.split_once(": ") else {
        return Vec::new();
    };
    // Spaces inside a path are escaped as `\ `.
    deps.replace("\\ ", "\0")
        .split_whitespace()
        .map(|p| PathBuf::from(p.replace('\0', " ")))
        .collect()
}

/// The most recently modified file at or under `path`.
fn newest_file(path: &Path, newest: &mut Option<(SystemTime, PathBuf)>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            newest_file(&entry.path(), newest);
        }
    } else if meta.is_file()
        && let Ok(modified) = meta.modified()
        && newest.as_ref().is_none_or(|(m, _)| modified > *m)
    {
        *newest = Some((modified, path.to_path_buf()));
    }
}

/// A workload process, killed when dropped.
pub struct Workload(pub Child);

impl Workload {
    pub fn start(name: &str, args: &[&str]) -> Workload {
        let child = Command::new(workload(name))
            .args(args)
            .spawn()
            .unwrap_or_else(|e| panic!("starting workload {name}: {e}"));
        // Let it get past exec and the dynamic loader.
        thread::sleep(Duration::from_millis(100));
        Workload(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A finished bpfprof run and its output directory, made by [`Run::new`]
/// only (non-exhaustive: tests cannot build one themselves), so that every
/// run's outputs are checked against their schemas.
#[non_exhaustive]
pub struct Run {
    pub output: Output,
    pub dir: PathBuf,
}

impl Run {
    /// The run that wrote `dir`, its report.json and speedscope.json
    /// checked (see `schemas`).
    pub fn new(output: Output, dir: PathBuf) -> Run {
        schemas::check_outputs(&dir);
        Run { output, dir }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn assert_success(&self) {
        assert!(
            self.output.status.success(),
            "bpfprof failed ({}):\n{}\n{}",
            self.output.status,
            self.stderr(),
            self.stdout()
        );
    }

    pub fn folded(&self) -> Folded {
        Folded::read(&self.dir.join("on-cpu.folded"))
    }

    pub fn report(&self) -> serde_json::Value {
        let path = self.dir.join("report.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
    }
}

/// A fresh output directory for one test.
pub fn output_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bpfprof-it-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs bpfprof to completion with `--output` set to a fresh directory.
pub fn profile(test: &str, args: &[&str]) -> Run {
    let dir = output_dir(test);
    // --output goes first: anything after `--` belongs to the command.
    let output = Command::new(bpfprof_bin())
        .arg("--output")
        .arg(&dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("starting bpfprof");
    if args.contains(&"--json") && output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        schemas::check_report(&stdout, "--json's stdout");
    }
    Run::new(output, dir)
}

/// A parsed folded-stacks file: frames root first, with counts.
pub struct Folded {
    pub stacks: Vec<(Vec<String>, u64)>,
}

impl Folded {
    pub fn read(path: &Path) -> Folded {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Folded::parse(&text)
    }

    pub fn parse(text: &str) -> Folded {
        let stacks = text
            .lines()
            .map(|line| {
                let (stack, count) = line
                    .rsplit_once(' ')
                    .expect("a folded line ends in a count");
                let frames = stack.split(';').map(str::to_string).collect();
                (frames, count.parse().expect("the count is a number"))
            })
            .collect();
        Folded { stacks }
    }

    /// Stacks whose root frame (the process name) is `process`.
    pub fn of_process<'a>(
        &'a self,
        process: &'a str,
    ) -> impl Iterator<Item = &'a (Vec<String>, u64)> {
        self.stacks
            .iter()
            .filter(move |(frames, _)| frames[0] == process)
    }

    pub fn samples_of(&self, process: &str) -> u64 {
        self.of_process(process).map(|(_, n)| n).sum()
    }

    /// Samples of `process` whose innermost frame is `leaf`.
    pub fn leaf_samples(&self, process: &str, leaf: &str) -> u64 {
        self.of_process(process)
            .filter(|(frames, _)| frames.last().is_some_and(|f| f == leaf))
            .map(|(_, n)| n)
            .sum()
    }

    /// Samples of `process` whose frames contain `chain` consecutively.
    pub fn chain_samples(&self, process: &str, chain: &[&str]) -> u64 {
        self.of_process(process)
            .filter(|(frames, _)| frames.windows(chain.len()).any(|w| w == chain))
            .map(|(_, n)| n)
            .sum()
    }

    /// Per-process sample totals.
    pub fn processes(&self) -> BTreeMap<String, u64> {
        let mut totals = BTreeMap::new();
        for (frames, n) in &self.stacks {
            *totals.entry(frames[0].clone()).or_default() += n;
        }
        totals
    }
}

/// A thread's times from report.json's `off_cpu.processes[].threads[]`.
#[derive(Debug, Clone)]
pub struct ThreadTimes {
    pub name: String,
    pub on_cpu_us: u64,
    /// sleeping, uninterruptible, preempted, other.
    pub off_us: [u64; 4],
    pub wall_us: u64,
}

impl ThreadTimes {
    pub fn off_total(&self) -> u64 {
        self.off_us.iter().sum()
    }
}

/// The threads of process `pid` in a report, by the report's numbers.
pub fn thread_times(report: &serde_json::Value, pid: u32) -> Vec<ThreadTimes> {
    let processes = report["off_cpu"]["processes"]
        .as_array()
        .expect("off_cpu.processes in report.json");
    let process = processes
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} missing from report.json's off_cpu.processes"));
    process["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let off = &t["off_cpu_us"];
            let state = |name: &str| off[name].as_u64().unwrap();
            ThreadTimes {
                name: t["name"].as_str().unwrap().to_string(),
                on_cpu_us: t["on_cpu_us"].as_u64().unwrap(),
                off_us: [
                    state("sleeping"),
                    state("uninterruptible"),
                    state("preempted"),
                    state("other"),
                ],
                wall_us: t["wall_us"].as_u64().unwrap(),
            }
        })
        .collect()
}

/// Runs `command` to its end, killing it after `limit`: a hang fails the
/// test instead of stalling it. Memory is capped too, so a bpfprof that
/// reads without bound fails fast rather than taking the machine down.
pub fn run_within(mut command: Command, limit: Duration, what: &str) -> Output {
    // SAFETY: setrlimit is async-signal-safe; only the child is limited.
    unsafe {
        command.pre_exec(|| {
            let cap = libc::rlimit {
                rlim_cur: 4 << 30,
                rlim_max: 4 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &cap);
            Ok(())
        });
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting bpfprof");
    let pipes = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let (stdout, stderr) = (read(Box::new(pipes.0)), read(Box::new(pipes.1)));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: bpfprof still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}
