//! `bpfprof doctor [--pid N]`: checks what profiling needs on this machine
//! (kernel, BTF, privileges, sysctls, tracefs) and, for a process, whether
//! its binaries will give named, whole stacks (symbols, debug info, frame
//! pointers, unwind tables). Prints what is fine and what to fix.

mod kernel_access;

use std::{collections::BTreeMap, path::Path, process::ExitCode};

use anyhow::Result;
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use crate::untrusted_file;
use crate::{bpf, procfs, profile::printable};

/// Lines to print; made printable, as they carry process and file names.
#[derive(Default)]
struct Findings {
    lines: Vec<String>,
    to_fix: usize,
}

impl Findings {
    fn ok(&mut self, text: String) {
        self.lines.push(format!("ok    {}", printable(&text)));
    }
    fn warn(&mut self, text: String) {
        self.lines.push(format!("warn  {}", printable(&text)));
    }
    fn fix(&mut self, text: String) {
        self.to_fix += 1;
        self.lines.push(format!("FIX   {}", printable(&text)));
    }
    fn add(&mut self, level: kernel_access::Level, text: String) {
        match level {
            kernel_access::Level::Ok => self.ok(text),
            kernel_access::Level::Warn => self.warn(text),
            kernel_access::Level::Fix => self.fix(text),
        }
    }
}

pub(crate) fn run(pid: Option<u32>) -> Result<ExitCode> {
    let mut f = Findings::default();
    check_machine(&mut f);
    if let Some(pid) = pid {
        check_process(&mut f, pid);
    }
    let verdict = if f.to_fix == 0 {
        "Ready to profile.".to_string()
    } else {
        format!("{} thing(s) to fix first.", f.to_fix)
    };
    let text = format!("{}\n\n{verdict}\n", f.lines.join("\n"));
    let printed = crate::output::stdout::print(text);
    Ok(if f.to_fix == 0 && printed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn sysctl(name: &str) -> Option<i64> {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn check_machine(f: &mut Findings) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let version: Vec<u32> = release
        .split(['.', '-'])
        .take(2)
        .filter_map(|p| p.parse().ok())
        .collect();
    if version.as_slice() >= [5, 8].as_slice() {
        f.ok(format!("kernel {release} (5.8 or later)"));
    } else {
        f.fix(format!(
            "kernel {release}: bpfprof needs 5.8 or later (ring buffers, BTF)"
        ));
    }
    if Path::new("/sys/kernel/btf/vmlinux").exists() {
        f.ok("kernel BTF at /sys/kernel/btf/vmlinux".into());
    } else {
        f.fix("no kernel BTF: use a kernel built with CONFIG_DEBUG_INFO_BTF=y".into());
    }
    match bpf::preflight() {
        Ok(()) => f.ok("privileges: root, or CAP_BPF and CAP_PERFMON".into()),
        Err(e) => f.fix(e.to_string()),
    }
    if let Some(paranoid) = sysctl("perf_event_paranoid") {
        let text = format!("kernel.perf_event_paranoid = {paranoid}");
        if paranoid <= 2 {
            f.ok(format!("{text} (root or CAP_PERFMON may sample every CPU)"));
        } else {
            f.warn(format!("{text}: some distributions forbid perf events above 2 even for CAP_PERFMON; set it to 2"));
        }
    }
    kernel_access::check_kernel_symbols(f);
    kernel_access::check_tracefs(f);
    if let Some(rate) = sysctl("perf_event_max_sample_rate") {
        f.ok(format!(
            "kernel.perf_event_max_sample_rate = {rate}: --freq may go up to it"
        ));
    }
    if let Some(depth) = sysctl("perf_event_max_stack") {
        f.ok(format!(
            "kernel.perf_event_max_stack = {depth}: deeper stacks are cut"
        ));
    }
}

fn check_process(f: &mut Findings, pid: u32) {
    let Some(name) = procfs::process_name(pid) else {
        f.fix(format!("--pid {pid}: no such process"));
        return;
    };
    f.ok(format!("pid {pid} is {name}"));
    let mut binaries: BTreeMap<String, procfs::Mapping> = BTreeMap::new();
    for m in procfs::mappings(pid)
        .into_iter()
        .filter(|m| m.path.starts_with('/'))
    {
        let path = m.path.trim_end_matches(" (deleted)").to_string();
        binaries.entry(path).or_insert(m);
    }
    for (path, mapping) in binaries {
        let Some(data) = read_binary(pid, &mapping) else {
            f.warn(format!(
                "{path}: cannot read it (or not a regular file, or over 2 GiB)"
            ));
            continue;
        };
        let Ok(file) = object::File::parse(&*data) else {
            continue;
        };
        if !file
            .sections()
            .any(|s| s.kind() == object::SectionKind::Text)
        {
            continue;
        }
        inspect_binary(f, &path, &file);
    }
}

/// The file a mapping maps, read through `/proc/PID/map_files` (the file
/// itself, whatever mount namespace or path games): only a regular file,
/// without blocking, up to a bound far above any real binary.
fn read_binary(pid: u32, mapping: &procfs::Mapping) -> Option<Vec<u8>> {
    const MAX_BINARY_BYTES: u64 = 2 << 30;
    // map_files entries are links the kernel resolves to the mapped file.
    let file = untrusted_file::open(&mapping.map_files_path(pid), true).ok()?;
    untrusted_file::read_whole(file, MAX_BINARY_BYTES).ok()
}

fn inspect_binary(f: &mut Findings, path: &str, file: &object::File) {
    let has = |name: &str| file.section_by_name(name).is_some();
    let functions = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text)
        .count();
    let exported = file
        .dynamic_symbols()
        .filter(|s| s.kind() == SymbolKind::Text)
        .count();
    let fp = frame_pointer_share(file);
    let mut notes = Vec::new();
    if functions > 0 {
        notes.push(format!("{functions} function symbols"));
    } else {
        notes.push(format!("stripped ({exported} exported functions only)"));
    }
    notes.push(if has(".debug_info") {
        "DWARF debug info".into()
    } else {
        "no debug info".to_string()
    });
    notes.push(if has(".eh_frame") || has(".debug_frame") {
        "unwind tables".into()
    } else {
        "no unwind tables".to_string()
    });
    if let Some(share) = fp {
        notes.push(format!("frame pointers in {share:.0}% of functions"));
    }
    let text = format!("{path}: {}", notes.join(", "));
    let missing_fp = fp.is_some_and(|s| s < 50.0);
    if functions == 0 || missing_fp {
        let mut advice = Vec::new();
        if functions == 0 {
            advice.push("install its debug symbols (e.g. the -dbg or -dbgsym package) or build it unstripped");
        }
        if missing_fp {
            advice.push("stacks through it lose callers: build it with -fno-omit-frame-pointer (Rust: -C force-frame-pointers=yes)");
        }
        f.warn(format!("{text}: {}", advice.join("; ")));
    } else {
        f.ok(text);
    }
}

/// The share of functions (up to 2000 sampled) whose first instructions are
/// `push %rbp; mov %rsp,%rbp`, after an optional `endbr64`; x86-64 only.
fn frame_pointer_share(file: &object::File) -> Option<f64> {
    if file.architecture() != object::Architecture::X86_64 {
        return None;
    }
    let mut checked = 0u32;
    let mut with_fp = 0u32;
    let symbols: Vec<_> = if file.symbols().next().is_some() {
        file.symbols().collect()
    } else {
        file.dynamic_symbols().collect()
    };
    for symbol in symbols
        .iter()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() >= 16)
        .take(2000)
    {
        let Some(section) = symbol
            .section_index()
            .and_then(|i| file.section_by_index(i).ok())
        else {
            continue;
        };
        let Ok(Some(bytes)) = section.data_range(symbol.address(), 8) else {
            continue;
        };
        let code = bytes
            .strip_prefix(&[0xf3, 0x0f, 0x1e, 0xfa][..])
            .unwrap_or(bytes);
        checked += 1;
        if code.starts_with(&[0x55, 0x48, 0x89, 0xe5]) {
            with_fp += 1;
        }
    }
    (checked > 0).then(|| f64::from(with_fp) * 100.0 / f64::from(checked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_is_inspected() {
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(&exe).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let mut f = Findings::default();
        inspect_binary(&mut f, &exe.display().to_string(), &file);
        assert_eq!(f.lines.len(), 1);
        assert!(f.lines[0].contains("function symbols"), "{:?}", f.lines);
        assert!(frame_pointer_share(&file).is_some());
    }
}
