//! Builds the C workload programs with a frame pointer in every function,
//! without inlining, so each has the exact call chain its source shows.
//!
//! -O0, because gcc 12 drops the frame of leaf functions at -O1 and above
//! even with -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer; these
//! workloads test the frame-pointer walk, not the frameless-leaf case.

use std::{env, path::PathBuf, process::Command};

const WORKLOADS: &[(&str, &str)] = &[
    ("wl-ratio", "ratio.c"),
    ("wl-syscall", "syscall.c"),
    ("wl-spin", "spin.c"),
    ("wl-forker", "forker.c"),
    ("wl-sleeps", "sleeps.c"),
    ("wl-mixed", "mixed.c"),
    ("wl-contend", "contend.c"),
    ("wl-fsync", "fsync.c"),
    ("wl-pipe", "pipe.c"),
];

fn main() {
    let src = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("workloads");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("workloads");
    std::fs::create_dir_all(&out).unwrap();
    println!("cargo::rerun-if-changed={}", src.display());
    for (name, file) in WORKLOADS {
        let status = Command::new("gcc")
            .args(["-O0", "-g", "-fno-omit-frame-pointer", "-pthread"])
            .args(["-fno-inline", "-fno-optimize-sibling-calls", "-o"])
            .arg(out.join(name))
            .arg(src.join(file))
            .status()
            .expect("gcc is needed to build the test workloads");
        assert!(
            status.success(),
            "building workload {name} from {file} failed"
        );
    }
    println!("cargo::rustc-env=WORKLOAD_DIR={}", out.display());
}
