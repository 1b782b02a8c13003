//! `cargo xtask`: the project's front door. Installs what is missing,
//! builds the BPF object and the self-contained `bpfprof` binary, runs it,
//! tests it and installs it. Each step prints one line of progress.

mod bench;
mod prereqs;
mod soak;

use std::{
    env,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
};

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  build-ebpf            install missing prerequisites, build the BPF object
  build                 build-ebpf, then target/release/bpfprof with the object embedded
  run [-- ARGS]         build, then run bpfprof ARGS (under sudo when not root)
  test [-- ARGS]        build, then the whole test suite (ARGS go to `cargo test`)
  install [--root DIR]  build, then copy bpfprof to DIR (default /usr/local/bin as
                        root, else ~/.cargo/bin)
  soak [MINUTES]        build, then the continuous-mode soak test (default 10 min)
  bench [--quick]       build, then bpfprof side by side with perf and bpftrace;
                        writes docs/benchmarks.md and docs/benchmarks.json
        [--only CASE]   just one case (e.g. unwind_cost), printed, docs untouched
        [--update-docs] with --only: that case's results put into docs/";

fn main() -> ExitCode {
    match run(env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<ExitCode> {
    let root = workspace_root();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => ("help", &[][..]),
    };
    let passthrough = rest.strip_prefix(&["--".to_string()][..]).unwrap_or(rest);
    match task {
        // `run` and `test` pass theirs on: `cargo xtask run -- --help` is
        // bpfprof's help.
        _ if !matches!(task, "run" | "test") && rest.iter().any(|a| a == "-h" || a == "--help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        "build-ebpf" | "build" if !rest.is_empty() => {
            bail!(
                "{task} takes no arguments, not `{}`\n{USAGE}",
                rest.join(" ")
            )
        }
        "build-ebpf" => build_ebpf(&root).map(|_| ExitCode::SUCCESS),
        "build" => build(&root).map(|_| ExitCode::SUCCESS),
        "run" => {
            let bin = build(&root)?;
            run_bpfprof(&bin, passthrough)
        }
        "test" => {
            let bin = build(&root)?;
            test(&root, &bin, passthrough)
        }
        "soak" => {
            let minutes = match rest {
                [] => 10,
                [m] => m
                    .parse()
                    .with_context(|| format!("soak: `{m}` is not a number of minutes"))?,
                _ => bail!("usage: cargo xtask soak [MINUTES]"),
            };
            let bin = build(&root)?;
            soak::run(&bin, minutes)
        }
        "bench" => {
            // Checked before the build, which can take minutes.
            let args = bench::Args::parse(rest)?;
            let bin = build(&root)?;
            bench::run(&root, &bin, &args)
        }
        "install" => {
            let bin = build(&root)?;
            install(&bin, rest).map(|_| ExitCode::SUCCESS)
        }
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown task `{other}`\n{USAGE}"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Where `build-ebpf` leaves the object; `profiler/build.rs` looks here too.
fn ebpf_object(root: &Path) -> PathBuf {
    root.join("target/ebpf/bpfel-unknown-none/release/profiler-ebpf")
}

fn build_ebpf(root: &Path) -> Result<PathBuf> {
    prereqs::ensure()?;
    progress("building the BPF object (nightly, bpfel-unknown-none)");
    let rustflags = [
        "--cfg=bpf_target_arch=\"x86_64\"",
        "-Cdebuginfo=2",
        "-Clink-arg=--btf",
    ]
    .join("\x1f");
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root)
        .args(["run", "nightly", "cargo", "build", "--quiet"])
        .args(["--package", "profiler-ebpf", "--bins", "--release"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .args(["--target-dir", "target/ebpf"])
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags);
    // `cargo xtask` itself runs under stable: keep its toolchain out of the nightly build.
    for var in [
        "RUSTC",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    run_checked(&mut cmd, "building the BPF object")?;
    Ok(ebpf_object(root))
}

fn build(root: &Path) -> Result<PathBuf> {
    let object = build_ebpf(root)?;
    progress("building target/release/bpfprof");
    run_checked(
        Command::new(cargo())
            .current_dir(root)
            .args(["build", "--quiet", "--release", "--package", "profiler"])
            .env("BPFPROF_EBPF_OBJ", &object),
        "building bpfprof",
    )?;
    Ok(root.join("target/release/bpfprof"))
}

fn run_bpfprof(bin: &Path, args: &[String]) -> Result<ExitCode> {
    let mut cmd = if is_root() {
        Command::new(bin)
    } else {
        progress("not root: running bpfprof under sudo");
        let mut sudo = Command::new("sudo");
        sudo.arg("--preserve-env").arg(bin);
        sudo
    };
    let status = cmd.args(args).status().context("starting bpfprof")?;
    Ok(ExitCode::from(status.code().unwrap_or(1) as u8))
}

fn test(root: &Path, bin: &Path, args: &[String]) -> Result<ExitCode> {
    // Tests that need root and BPF are #[ignore]d: run them when we can,
    // so that otherwise they count as skipped, never as passed.
    let mut args = args.to_vec();
    if is_root() {
        prereqs::ensure_test_tools(root)?;
        if !args.iter().any(|a| a == "--") {
            args.push("--".into());
        }
        args.push("--include-ignored".into());
    } else if env::var_os("CI").is_some() {
        bail!("the suite needs root in CI: its BPF tests would be skipped");
    } else {
        progress("not root: the tests that need root and BPF are skipped");
    }
    progress("running the test suite (cargo test --workspace)");
    let mut child = Command::new(cargo())
        .current_dir(root)
        // Every test binary runs, so the summary counts the whole suite.
        .args([
            "test",
            "--workspace",
            "--exclude",
            "profiler-ebpf",
            "--no-fail-fast",
        ])
        .args(&args)
        .env("BPFPROF_BIN", bin)
        // The object just built: profiler's build.rs embeds it rather than
        // building its own for the test profile.
        .env("BPFPROF_EBPF_OBJ", ebpf_object(root))
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let mut totals = TestTotals::default();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.context("reading cargo test's output")?;
        println!("{line}");
        totals.add(&line);
    }
    let status = child.wait().context("waiting for cargo test")?;
    // One closing line for the whole suite, whatever binary cargo ran last.
    println!(
        "\nsummary: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Default)]
struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTotals {
    /// Adds a `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line.
    fn add(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match kind {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

fn install(bin: &Path, args: &[String]) -> Result<()> {
    let dir = match args {
        [flag, dir] if flag == "--root" => PathBuf::from(dir),
        [] if is_root() => PathBuf::from("/usr/local/bin"),
        [] => PathBuf::from(env::var("HOME").context("HOME is not set")?).join(".cargo/bin"),
        _ => bail!("usage: cargo xtask install [--root DIR]"),
    };
    let target = dir.join("bpfprof");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::copy(bin, &target).with_context(|| format!("copying to {}", target.display()))?;
    progress(&format!("installed {}", target.display()));
    Ok(())
}

pub(crate) fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

pub(crate) fn progress(msg: &str) {
    eprintln!("xtask: {msg}");
}

pub(crate) fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("{what}: cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
