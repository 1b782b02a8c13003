//! Embeds the BPF object when one has been built (`cargo xtask build-ebpf`),
//! so `cargo test` and `cargo clippy` still work on a machine without the
//! BPF toolchain; such a bpfprof then needs `--bpf-object PATH`.

use std::{env, path::PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(bpfprof_embedded_obj)");
    println!("cargo::rerun-if-env-changed=BPFPROF_EBPF_OBJ");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let candidates = [
        env::var_os("BPFPROF_EBPF_OBJ").map(PathBuf::from),
        Some(manifest.join("../target/ebpf/bpfel-unknown-none/release/profiler-ebpf")),
    ];
    for path in candidates.into_iter().flatten() {
        println!("cargo::rerun-if-changed={}", path.display());
        if path.is_file() {
            let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"))
                .join("profiler-ebpf.o");
            std::fs::copy(&path, &out).expect("copying the BPF object into OUT_DIR");
            println!("cargo::rustc-cfg=bpfprof_embedded_obj");
            return;
        }
    }
    println!(
        "cargo::warning=no BPF object found: run `cargo xtask build` for a self-contained bpfprof"
    );
}
