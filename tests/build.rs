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
    ("wl-forker", "forker.c", O0),
    ("wl-sleeps", "sleeps.c", O0),
    ("wl-samesite", "samesite.c", O0),
    ("wl-stacks", "stacks.c", O0),
    ("wl-mixed", "mixed.c", O0),
    ("wl-contend", "contend.c", O0),
    ("wl-fsync", "fsync.c", O0),
    ("wl-pipe", "pipe.c", O0),
    ("wl-short", "short.c", O0),
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
        let status = Command::new(compiler)
            .args(*optimisation)
            .args(["-g", "-fno-omit-frame-pointer", "-pthread"])
            .args(["-fno-optimize-sibling-calls", "-o"])
            .arg(out.join(name))
            .arg(src.join(file))
            .status()
            .unwrap_or_else(|e| panic!("{compiler} is needed to build the test workloads: {e}"));
        assert!(
            status.success(),
            "building workload {name} from {file} failed"
        );
    }
    println!("cargo::rustc-env=WORKLOAD_DIR={}", out.display());
}
