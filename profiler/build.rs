//! Builds the BPF programs (profiler-ebpf) and embeds the object, so a plain
//! `cargo build --release` or `cargo install --path profiler` gives a
//! bpfprof that profiles with no flags, as aya-template does with
//! aya-build. That needs the nightly toolchain with rust-src and
//! bpf-linker; `cargo xtask build-ebpf` installs them.
//!
//! `cargo xtask` builds the object once itself and passes it in
//! `BPFPROF_EBPF_OBJ`, so its builds (debug, release, clippy) share one.
//! `AYA_BUILD_SKIP=1` builds without the BPF toolchain; such a bpfprof
//! then needs `--bpf-object PATH`.

use std::{env, path::PathBuf};

const EBPF_PACKAGE: &str = "profiler-ebpf";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(bpfprof_embedded_obj)");
    println!("cargo::rerun-if-env-changed=BPFPROF_EBPF_OBJ");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let embedded = out_dir.join("profiler-ebpf.o");
    let object = match env::var_os("BPFPROF_EBPF_OBJ") {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo::rerun-if-changed={}", path.display());
            Some(path)
        }
        None => build_with_aya(&out_dir),
    };
    if let Some(object) = object {
        std::fs::copy(&object, &embedded)
            .unwrap_or_else(|e| panic!("copying the BPF object {}: {e}", object.display()));
        println!("cargo::rustc-cfg=bpfprof_embedded_obj");
    }
}

/// The object aya-build made, or None when asked to skip it.
fn build_with_aya(out_dir: &std::path::Path) -> Option<PathBuf> {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest.parent().expect("profiler/ is in the workspace");
    let ebpf_dir = workspace.join(EBPF_PACKAGE);
    // aya-build watches the BPF crate; the types it shares live here.
    println!(
        "cargo::rerun-if-changed={}",
        workspace.join("profiler-common/src").display()
    );
    let package = aya_build::Package {
        name: EBPF_PACKAGE,
        root_dir: ebpf_dir.to_str().expect("a UTF-8 workspace path"),
        ..Default::default()
    };
    if let Err(err) = aya_build::build_ebpf([package], aya_build::Toolchain::default()) {
        panic!(
            "building the BPF programs failed: {err:#}\n\
             They need the nightly toolchain with rust-src and bpf-linker: \
             `cargo xtask build-ebpf` installs them. AYA_BUILD_SKIP=1 builds \
             bpfprof without them (it then needs --bpf-object PATH)."
        );
    }
    let object = out_dir.join(EBPF_PACKAGE);
    if object.is_file() {
        Some(object)
    } else {
        println!(
            "cargo::warning=no BPF object built (AYA_BUILD_SKIP?): this bpfprof needs --bpf-object PATH"
        );
        None
    }
}
