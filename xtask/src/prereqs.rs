//! Installs what the BPF build needs and a fresh machine lacks: rust-src for
//! the nightly toolchain, LLVM's development files of the nightly's LLVM
//! major, and bpf-linker built against them; and the programs the test
//! suite reads outputs with, and the Python venv its push tests' receivers
//! run in. Where it cannot install (not root, no apt-get), it stops with
//! the exact commands to run.

use std::{path::Path, process::Command};

use anyhow::{Context, Result, bail};

use crate::{cargo, is_root, progress, run_checked};

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn ensure() -> Result<()> {
    let llvm_major = nightly_llvm_major()?;
    ensure_rust_src()?;
    ensure_bpf_linker(llvm_major)
}

/// The LLVM major of the nightly rustc: bpf-linker must be built against
/// the same one, or it cannot read the bitcode rustc emits.
fn nightly_llvm_major() -> Result<u32> {
    let out = Command::new("rustup")
        .args(["run", "nightly", "rustc", "-vV"])
        .output()
        .context("running `rustup run nightly rustc -vV` (is rustup installed?)")?;
    if !out.status.success() {
        bail!(
            "the nightly toolchain is missing; install it with `rustup toolchain install nightly --component rust-src`"
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next()?.parse().ok())
        .context("cannot read the LLVM version from `rustc +nightly -vV`")
}

/// The readers the suite checks outputs with, as their users would:
/// `go tool pprof` for profile.pb.gz, groff for the man page; Python for
/// the push tests' receivers (tests/receivers/), openssl for the
/// certificate of their TLS test.
const TEST_TOOLS: &[(&str, &str)] = &[
    ("go", "golang-go"),
    ("groff", "groff-base"),
    ("python3", "python3"),
    ("openssl", "openssl"),
    ("tmux", "tmux"),
];

/// The receivers decode with the official OpenTelemetry classes: this
/// release carries profiles v1development of proto v1.10.0, which is what
/// bpfprof sends.
const OTLP_PROTO: &str = "opentelemetry-proto==1.45.2";

/// The test tools, then the test venv (see [`ensure_test_venv`]).
pub fn ensure_test_tools(root: &Path) -> Result<()> {
    ensure_test_programs()?;
    ensure_test_venv(root)
}

fn ensure_test_programs() -> Result<()> {
    let packages: Vec<&str> = TEST_TOOLS
        .iter()
        .filter(|(tool, _)| !on_path(tool))
        .map(|&(_, package)| package)
        .collect();
    if packages.is_empty() {
        return Ok(());
    }
    let has_apt = Path::new("/usr/bin/apt-get").exists();
    if !(is_root() && has_apt) {
        bail!(
            "the test suite reads its outputs with {0}; install it:\n  \
             sudo apt-get update && sudo apt-get install -y {0}",
            packages.join(" ")
        );
    }
    progress(&format!(
        "installing {} for the test suite",
        packages.join(", ")
    ));
    apt_install(&packages)
}

/// target/test-venv: a Python venv with [`OTLP_PROTO`], which the push
/// tests run their receivers with (tests/src/receiver.rs looks for it
/// there). Made once; later runs only check it (a tenth of a second).
pub fn ensure_test_venv(root: &Path) -> Result<()> {
    let venv = root.join("target/test-venv");
    let python = venv.join("bin/python");
    if has_otlp_proto(&python) {
        return Ok(());
    }
    if !python.is_file() || !has_pip(&python) {
        progress("making the test venv, target/test-venv");
        if !make_venv(&venv) {
            // Debian's python3 makes venvs only with python3-venv.
            if !(is_root() && Path::new("/usr/bin/apt-get").exists()) {
                bail!(
                    "`python3 -m venv` failed; install python3-venv:\n  \
                     sudo apt-get update && sudo apt-get install -y python3-venv"
                );
            }
            apt_install(&["python3-venv"])?;
            if !make_venv(&venv) {
                bail!("`python3 -m venv {}` failed", venv.display());
            }
        }
    }
    progress(&format!("installing {OTLP_PROTO} into target/test-venv"));
    run_checked(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(OTLP_PROTO),
        &format!("installing {OTLP_PROTO}"),
    )?;
    if !has_otlp_proto(&python) {
        bail!("{} still cannot import {OTLP_PROTO}", python.display());
    }
    Ok(())
}

/// Whether `python` imports the profiles service classes of exactly the
/// release [`OTLP_PROTO`] names.
fn has_otlp_proto(python: &Path) -> bool {
    let version = OTLP_PROTO.split("==").nth(1).unwrap_or_default();
    let check = format!(
        "import importlib.metadata as m, sys\n\
         import opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2\n\
         sys.exit(m.version('opentelemetry-proto') != '{version}')"
    );
    python.is_file()
        && Command::new(python)
            .args(["-c", &check])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn has_pip(python: &Path) -> bool {
    Command::new(python)
        .args(["-m", "pip", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `python3 -m venv --clear VENV`: a venv made anew (one whose Python has
/// gone, or without pip, is replaced).
fn make_venv(venv: &Path) -> bool {
    Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(venv)
        .status()
        .is_ok_and(|s| s.success())
}

/// `apt-get update`, then the packages installed, without questions.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    run_checked(
        Command::new("apt-get").args(["update", "-qq"]),
        "apt-get update",
    )?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("installing {}", packages.join(", ")),
    )
}

/// Whether `tool` can be run: a path to a file, or a name found on PATH.
pub fn on_path(tool: &str) -> bool {
    if tool.contains('/') {
        return Path::new(tool).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

fn ensure_rust_src() -> Result<()> {
    let out = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .context("asking nightly rustc for its sysroot")?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib/src/rust/library/Cargo.lock")
        .exists()
    {
        return Ok(());
    }
    progress("installing rust-src for the nightly toolchain");
    run_checked(
        Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]),
        "installing rust-src",
    )
}

fn ensure_bpf_linker(llvm_major: u32) -> Result<()> {
    match installed_bpf_linker() {
        Linker::Matches => return Ok(()),
        Linker::Links(linked) if linked == llvm_major => return Ok(()),
        Linker::Links(linked) => progress(&format!(
            "bpf-linker is built against LLVM {linked}, nightly rustc uses LLVM {llvm_major}: rebuilding it"
        )),
        Linker::Missing => {}
    }
    let prefix = format!("/usr/lib/llvm-{llvm_major}");
    if !Path::new(&prefix).join("bin/llvm-config").exists() {
        install_llvm_dev(llvm_major)?;
    }
    progress(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against LLVM {llvm_major} (about a minute)"
    ));
    run_checked(
        Command::new(cargo())
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args(["--locked", "--force", "--no-default-features"])
            .args(["--features", &format!("llvm-{llvm_major}")])
            .env("LLVM_PREFIX", &prefix)
            .env_remove("RUSTUP_TOOLCHAIN"),
        "building bpf-linker",
    )
}

enum Linker {
    Missing,
    /// Dynamically linked against libLLVM of this major.
    Links(u32),
    /// Present, but statically linked: its LLVM cannot be told; trust it.
    Matches,
}

fn installed_bpf_linker() -> Linker {
    let Some(path) = Command::new("sh")
        .args(["-c", "command -v bpf-linker"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    else {
        return Linker::Missing;
    };
    let Ok(ldd) = Command::new("ldd").arg(&path).output() else {
        return Linker::Matches;
    };
    let text = String::from_utf8_lossy(&ldd.stdout);
    // libLLVM.so.<major>.<minor> (LLVM >= 18) or libLLVM-<major>.so (older).
    let after = text
        .split("libLLVM.so.")
        .nth(1)
        .or_else(|| text.split("libLLVM-").nth(1));
    after
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .map_or(Linker::Matches, Linker::Links)
}

fn install_llvm_dev(llvm_major: u32) -> Result<()> {
    let package = format!("llvm-{llvm_major}-dev");
    let has_apt = Path::new("/usr/bin/apt-get").exists();
    if !(is_root() && has_apt) {
        bail!(
            "bpf-linker needs {package}, and this xtask can only install it as root on Debian/Ubuntu. Run:\n  \
             sudo apt-get update && sudo apt-get install -y {package}\n  \
             LLVM_PREFIX=/usr/lib/llvm-{llvm_major} cargo install bpf-linker --version {BPF_LINKER_VERSION} \
             --locked --no-default-features --features llvm-{llvm_major}"
        );
    }
    progress(&format!("installing {package} (about a minute)"));
    apt_install(&[&package])
}
