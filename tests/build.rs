//! Builds the C and C++ workload programs with a frame pointer in every
//! function, without inlining, so each has the exact call chain its source
//! shows.
//!
//! -O0, because gcc 12 drops the frame of leaf functions at -O1 and above
//! even with -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer; these
//! workloads test the frame-pointer walk, not the frameless-leaf case. The
//! one exception, wl-inline, is built -O2 to have DWARF inlining records.

use std::{env, path::PathBuf, process::Command};

/// Name, source, and the optimisation flags (the rest are common).
const WORKLOADS: &[(&str, &str, &[&str])] = &[
    ("wl-ratio", "ratio.c", O0),
    ("wl-syscall", "syscall.c", O0),
    ("wl-spin", "spin.c", O0),
    // Go's own pprof disassembles only code that runs at its link address.
    (
        "wl-spin-nopie",
        "spin.c",
        &["-O0", "-fno-inline", "-no-pie"],
    ),
    ("wl-forker", "forker.c", O0),
    ("wl-sleeps", "sleeps.c", O0),
    ("wl-samesite", "samesite.c", O0),
    ("wl-stacks", "stacks.c", O0),
    // The bench's native stack of a known depth (beside Python's).
    ("wl-deep", "deep.c", O0),
    // For unwinding: no frame pointers at all; a frameless leaf under
    // frame pointers; a hot path inside Debian's libc.
    ("wl-omitfp", "omitfp.c", &["-O2", "-fomit-frame-pointer"]),
    ("wl-leaf", "leaf.c", &["-O2"]),
    ("wl-qsort", "qsort.c", O0),
    ("wl-signal", "signal.c", &["-O2", "-fomit-frame-pointer"]),
    ("wl-dlopen", "dlopen.c", O0),
    ("wl-vdso", "vdso.c", &["-O2", "-fomit-frame-pointer"]),
    // Loaded by wl-dlopen while it runs.
    (
        "libwl-plugin.so",
        "plugin.c",
        &["-O2", "-fomit-frame-pointer", "-shared", "-fPIC"],
    ),
    ("wl-mixed", "mixed.c", O0),
    ("wl-contend", "contend.c", O0),
    ("wl-preempt", "preempt.c", O0),
    ("wl-fsync", "fsync.c", O0),
    ("wl-pipe", "pipe.c", O0),
    ("wl-short", "short.c", O0),
    // Shipped as many binaries are: no symbols, no debug info.
    ("wl-stripped", "short.c", &["-O0", "-fno-inline", "-s"]),
    ("wl-burst", "burst.c", O0),
    ("wl-jit", "jit.c", O0),
    ("wl-cpp", "cpp.cpp", O0),
    // A release build with debug info: DWARF records the inlining.
    ("wl-inline", "inline.c", &["-O2"]),
];

const O0: &[&str] = &["-O0", "-fno-inline"];

fn main() {
    let src = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("workloads");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("workloads");
    std::fs::create_dir_all(&out).unwrap();
    println!("cargo::rerun-if-changed={}", src.display());
    for (name, file, optimisation) in WORKLOADS {
        let compiler = if file.ends_with(".cpp") { "g++" } else { "gcc" };
        // The workload's own flags come last, so they win.
        let status = Command::new(compiler)
            .args(["-g", "-fno-omit-frame-pointer", "-pthread"])
            .arg("-fno-optimize-sibling-calls")
            .args(*optimisation)
            .arg("-o")
            .arg(out.join(name))
            .arg(src.join(file))
            .status()
            .unwrap_or_else(|e| panic!("{compiler} is needed to build the test workloads: {e}"));
        assert!(
            status.success(),
            "building workload {name} from {file} failed"
        );
    }
    // A Rust release build as users ship it: no frame pointers.
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args(["-O", "-g", "-C", "force-frame-pointers=no", "-o"])
        .arg(out.join("wl-rust-nofp"))
        .arg(src.join("nofp.rs"))
        .status()
        .expect("rustc is needed to build the Rust workload");
    assert!(status.success(), "building wl-rust-nofp failed");
    println!("cargo::rustc-env=WORKLOAD_DIR={}", out.display());
}
