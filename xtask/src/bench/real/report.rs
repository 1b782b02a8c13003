//! The real workloads' section of docs/benchmarks.md: per workload, a row
//! per tool, then the targets of #15 with their verdicts.

use std::fmt::Write;

use serde_json::Value;

use crate::bench::report::{show, verdict};

/// At most this share of the cargo build's samples with an unnamed frame.
const UNNAMED_PERCENT: f64 = 1.0;
/// BPF cost per sample on the cargo build, ns.
const BPF_NS: f64 = 2000.0;
/// From the end of the cargo build's capture to the outputs written, ms.
const OUTPUTS_MS: f64 = 1000.0;
/// bpfprof's peak RSS on every real workload, MiB.
const RSS_MIB: f64 = 128.0;

pub(in crate::bench) fn section(out: &mut String, real: &Value) {
    if real.is_null() {
        return;
    }
    let _ = writeln!(
        out,
        "## Real workloads\n\nMeasured on {} ({}), {} run(s) of each workload; each run, the workload is run three times, once under each tool, the tool that goes first changing from run to run. Every tool samples the whole system at {} Hz, from before the workload starts to half a second after it ends: bpfprof with its defaults and `-v` (all outputs but speedscope), perf as `perf record -a -F 99 --call-graph dwarf` and as `perf record -a -F 99 -g`.\n",
        real["date"].as_str().unwrap_or(""),
        real["bpfprof"].as_str().unwrap_or(""),
        real["runs"],
        real["freq_hz"],
    );
    let _ = writeln!(
        out,
        "- **cargo**: `cargo build --release --offline` of a crate depending on regex, serde (with derive) and serde_json, after `cargo clean` (its dependencies fetched and built once before, so every run compiles them all from a warm page cache).\n- **g++**: `g++ -O2` of a generated C++ file of {{map, unordered_map, set, variant, regex, sort, function}} instantiated for eight key types.\n- **java**: OpenJDK 17, two threads of maps, sorting, strings, regular expressions and big integers for {} s; its JIT frames named from the perf map it dumps itself every 250 ms (jcmd's `Compiler.perfmap`, called in-process) and at exit (`-XX:+DumpPerfMapAtExit`). bpfprof names addresses as it drains them, once a second, so a map written only at exit comes too late for it; perf reads the map at `perf script`, after the exit.\n",
        real["java_seconds"]
    );
    let _ = writeln!(
        out,
        "**Unnamed**: the share of samples with at least one frame, kernel or user, the tool could not name: `[unknown]`, a bare address, or bpfprof's `[file+0xoffset]` (from bpfprof's on-cpu.folded; from `perf script --no-inline` for perf). Both tools' samples of the idle task and of the profiler itself are left out. Stacks recorded only part way are not counted (bpfprof's `[truncated]`; perf's `ffffffffffffffff [unknown]` where a DWARF walk ends, at the end of its 8 KiB copy of the stack, is not a frame): this is about naming, not completeness. **Post-processing**: bpfprof, from the end of the capture to its outputs written (`-v`); perf, `perf script --no-inline` to text, and once with perf's default of naming inlined frames (given up after a bound). **Peak RSS**: wait4's for bpfprof; for perf, `perf record`'s / `perf script`'s.\n"
    );
    let _ = writeln!(
        out,
        "**BPF ns per sample**: bpfprof's on-CPU program, from `-v`; beside it, in the same captures, bpftrace ran two reference programs on the same clock at the same rate: one that counts samples by process name, the least any perf_event program costs on this machine (**floor**), and one that counts `kstack, ustack` (the kernel's unwinder and frame pointers, as a bpftrace user records stacks). This machine's cost of a memory access varies severalfold from day to day; the ratios, taken within each capture, do not.\n"
    );
    let _ = writeln!(
        out,
        "| workload | tool | workload s | samples | unnamed, % | BPF ns per sample | post-processing | peak RSS, MiB | CPU s (profiler + post-processing) |\n|---|---|---|---|---|---|---|---|---|"
    );
    for row in real["workloads"].as_array().into_iter().flatten() {
        table_rows(out, row);
    }
    let _ = writeln!(out);
    targets(out, real);
    unnamed_by_process(out, real);
}

fn table_rows(out: &mut String, row: &Value) {
    let name = row["workload"].as_str().unwrap_or("");
    let b = &row["bpfprof"];
    let _ = writeln!(
        out,
        "| {name} | bpfprof | {} | {} | {} | {} | {} ms | {} | {} |",
        show(&b["workload_seconds"], 1),
        show(&b["samples"], 0),
        show(&b["unnamed_percent"], 2),
        bpf_ns(b),
        show(&b["outputs_ms"], 0),
        show(&b["peak_rss_mib"], 1),
        show(&b["cpu_seconds"], 2),
    );
    for (key, label) in [
        ("perf_dwarf", "perf --call-graph dwarf"),
        ("perf_fp", "perf -g"),
    ] {
        let p = &row[key];
        let inline = match &p["script_inline_seconds"] {
            Value::Number(s) => format!("{:.1} s", s.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => s.clone(),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {name} | {label} | {} | {} | {} | – | {} s; with inlined frames: {inline} | {} / {} | {} |",
            show(&p["workload_seconds"], 1),
            show(&p["samples"], 0),
            show(&p["unnamed_percent"], 2),
            show(&p["script_seconds"], 1),
            show(&p["record_peak_rss_mib"], 1),
            show(&p["script_peak_rss_mib"], 1),
            show(&p["cpu_seconds"], 2),
        );
    }
}

/// bpfprof's BPF ns per sample, with its ratios to the reference programs
/// when they ran.
fn bpf_ns(b: &Value) -> String {
    let ns = show(&b["bpf_ns_per_sample"], 0);
    if b["bpf_ns_over_floor"].is_null() {
        return ns;
    }
    format!(
        "{ns}; floor {}, bpftrace stacks {}; bpfprof / floor {}, / bpftrace stacks {}",
        show(&b["bpftrace_floor_ns_per_sample"], 0),
        show(&b["bpftrace_stacks_ns_per_sample"], 0),
        show(&b["bpf_ns_over_floor"], 1),
        show(&b["bpf_ns_over_bpftrace_stacks"], 2),
    )
}

fn median(v: &Value) -> f64 {
    v["median"].as_f64().unwrap_or(f64::NAN)
}

fn targets(out: &mut String, real: &Value) {
    let rows: Vec<&Value> = real["workloads"].as_array().into_iter().flatten().collect();
    let cargo = rows.iter().find(|r| r["workload"] == "cargo");
    let b = cargo.map(|r| &r["bpfprof"]).unwrap_or(&Value::Null);
    let (unnamed, ns, ms, floor) = (
        median(&b["unnamed_percent"]),
        median(&b["bpf_ns_per_sample"]),
        median(&b["outputs_ms"]),
        median(&b["bpftrace_floor_ns_per_sample"]),
    );
    let rss: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {:.1} MiB",
                r["workload"].as_str().unwrap_or(""),
                median(&r["bpfprof"]["peak_rss_mib"])
            )
        })
        .collect();
    let rss_met = rows
        .iter()
        .all(|r| median(&r["bpfprof"]["peak_rss_mib"]) <= RSS_MIB);
    let _ = writeln!(
        out,
        "Targets (#15), on the cargo build: at most {UNNAMED_PERCENT}% of samples with an unnamed frame: {} ({unnamed:.2}%); BPF cost at most {} µs per sample: {} ({ns:.0} ns; the floor of any perf_event program in the same captures: {floor:.0} ns); outputs at most {} s after the capture: {} ({ms:.0} ms). On every workload, bpfprof's peak RSS at most {RSS_MIB} MiB: {} ({}).\n",
        verdict(unnamed <= UNNAMED_PERCENT),
        BPF_NS / 1000.0,
        verdict(ns <= BPF_NS),
        OUTPUTS_MS / 1000.0,
        verdict(ms <= OUTPUTS_MS),
        verdict(rss_met),
        rss.join(", "),
    );
}

/// Where the unnamed frames were: the processes with most such samples,
/// over all runs (on a shared machine, others' processes are sampled too).
fn unnamed_by_process(out: &mut String, real: &Value) {
    let _ = writeln!(
        out,
        "Samples with an unnamed frame by process, of all that process's samples, over all runs: the machine is shared, so other processes are sampled too (bpfprof names processes; perf, threads):\n"
    );
    for row in real["workloads"].as_array().into_iter().flatten() {
        for key in ["bpfprof", "perf_dwarf", "perf_fp"] {
            let count = |v: &Value, key: &str| v[key].as_u64().unwrap_or(0);
            let mut top: Vec<(&String, u64, u64)> = row[key]["unnamed_samples_by_process"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(p, v)| (p, count(v, "unnamed"), count(v, "samples")))
                .collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            let top: Vec<String> = top
                .iter()
                .map(|(p, unnamed, samples)| format!("{p} {unnamed} of {samples}"))
                .collect();
            let _ = writeln!(
                out,
                "- {}, {key}: {}",
                row["workload"].as_str().unwrap_or(""),
                if top.is_empty() {
                    "none".into()
                } else {
                    top.join(", ")
                }
            );
        }
    }
    let _ = writeln!(out);
}
