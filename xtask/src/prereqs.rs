//! Installs what the BPF build needs and a fresh machine lacks: rust-src for
//! the nightly toolchain, LLVM's development files of the nightly's LLVM
//! major, and bpf-linker built against them; and the programs the test
//! suite reads outputs with. Where it cannot install (not root, no
//! apt-get), it stops with the exact commands to run.

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
/// `go tool pprof` for profile.pb.gz, groff for the man page.
const TEST_TOOLS: &[(&str, &str)] = &[("go", "golang-go"), ("groff", "groff-base")];

pub fn ensure_test_tools() -> Result<()> {
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
