//! profile.pb.gz as its readers read it: `go tool pprof` shows CPU time by
//! default, lists a workload function's source and disassembles it; every
//! user location lies in its mapping, at its function's place in the file,
//! with source files and lines for inlined frames too; `system_name` holds
//! the symbol as the binary spells it.

use std::{path::Path, process::Command};

use integration_tests::{
    Workload, function_ranges,
    pprof::{Location, Profile},
    profile, require_bpf, workload,
};

/// `go tool pprof ARGS profile.pb.gz`'s output; it must succeed.
fn go_pprof(args: &[&str], pprof: &Path) -> String {
    let out = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(pprof)
        .output()
        .expect("go (golang-go) is needed: `cargo xtask test` installs it");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Rows of a listing with a value in their first column: instructions or
/// source lines that samples landed on.
fn rows_with_samples(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let first = l.split_whitespace().next().unwrap_or(".");
            first != "." && first.ends_with('s') && first.starts_with(|c: char| c.is_ascii_digit())
        })
        .collect()
}

#[test]
#[ignore = "needs root and BPF"]
fn go_tool_pprof_shows_cpu_time_source_and_assembly_of_a_workload_function() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin-nopie", &[]);
    let pid = spin.pid().to_string();
    // Off-CPU time too: CPU time must still be what readers show first.
    let run = profile("go-pprof", &["--pid", &pid, "-d", "2", "--off-cpu"]);
    run.assert_success();
    let pprof = run.dir.join("profile.pb.gz");

    let top = go_pprof(&["-top"], &pprof);
    assert!(top.contains("Type: cpu"), "{top}");
    let first = top
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .nth(1)
        .unwrap_or_else(|| panic!("no rows: {top}"));
    assert!(first.ends_with(" spin_leaf"), "the top row: {top}");

    let list = go_pprof(&["-list", "^spin_leaf$"], &pprof);
    assert!(
        list.contains("ROUTINE ======================== spin_leaf in ")
            && list.contains("tests/workloads/spin.c"),
        "{list}"
    );
    let lines = rows_with_samples(&list);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" 7:") && l.contains("void spin_leaf(void)")),
        "samples on spin_leaf's line 7: {list}"
    );

    let disasm = go_pprof(&["-disasm", "spin_leaf"], &pprof);
    assert!(
        disasm.contains("ROUTINE ======================== spin_leaf"),
        "{disasm}"
    );
    assert!(
        rows_with_samples(&disasm).len() >= 2,
        "instructions with samples: {disasm}"
    );
}

/// The names of a location's functions, innermost first.
fn function_names<'a>(pprof: &'a Profile, location: &Location) -> Vec<&'a str> {
    let names = location.lines.iter().map(|&(f, _)| pprof.function(f));
    names.map(|f| f.name.as_str()).collect()
}

#[test]
#[ignore = "needs root and BPF"]
fn user_locations_lie_in_their_mappings_with_files_and_lines_inlined_frames_too() {
    let _bpf = require_bpf();
    // Position-independent (mapped at a random address), with an inlined
    // function where the time goes.
    let inline = Workload::start("wl-inline", &[]);
    let run = profile(
        "pprof-places",
        &["--pid", &inline.pid().to_string(), "-d", "2"],
    );
    run.assert_success();
    let pprof = Profile::read(&run.dir.join("profile.pb.gz"));
    assert_eq!(pprof.default_sample_type, "cpu");
    let binary = workload("wl-inline");
    let ranges = function_ranges(&binary);
    let mut checked = 0;
    for location in &pprof.locations {
        let Some(mapping) = pprof.mapping(location.mapping_id) else {
            continue;
        };
        if location.address == 0 {
            continue;
        }
        assert!(
            (mapping.start..mapping.limit).contains(&location.address),
            "{:#x} outside {}'s {:#x}-{:#x}",
            location.address,
            mapping.filename,
            mapping.start,
            mapping.limit
        );
        if Path::new(&mapping.filename) != binary {
            continue;
        }
        // The instruction's offset in the file falls in the function the
        // location names (a return address may be one past its end).
        let offset = location.address - mapping.start + mapping.file_offset;
        let names = function_names(&pprof, location);
        let outer = names.last().unwrap();
        let range = &ranges.iter().find(|(n, _)| n == outer).unwrap().1;
        assert!(
            range.start <= offset && offset <= range.end,
            "{outer} at file offset {offset:#x}, not in {range:#x?}"
        );
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} locations in wl-inline");

    // The hot location: inline_helper's line inside outer_function's.
    let hot = pprof
        .locations
        .iter()
        .find(|l| function_names(&pprof, l) == ["inline_helper", "outer_function"])
        .expect("a location with inline_helper inlined into outer_function");
    for &(function, line) in &hot.lines {
        let function = pprof.function(function);
        assert!(
            function.filename.ends_with("tests/workloads/inline.c") && line > 0,
            "{} at {}:{line}",
            function.name,
            function.filename
        );
    }
    // inline_helper is defined on line 5, and called from line 9.
    assert_eq!(hot.lines[0].1, 5);
    assert_eq!(hot.lines[1].1, 9);
}

#[test]
#[ignore = "needs root and BPF"]
fn system_names_are_symbols_as_the_binary_spells_them() {
    let _bpf = require_bpf();
    let cpp = Workload::start("wl-cpp", &[]);
    let run = profile(
        "pprof-symbols",
        &["--pid", &cpp.pid().to_string(), "-d", "1"],
    );
    run.assert_success();
    let pprof = Profile::read(&run.dir.join("profile.pb.gz"));
    let spin = pprof
        .functions
        .iter()
        .find(|f| f.name == "profiling::Worker::spin()")
        .expect("the demangled name");
    assert_eq!(spin.system_name, "_ZN9profiling6Worker4spinEv");
    let main = pprof.functions.iter().find(|f| f.name == "main").unwrap();
    assert_eq!(main.system_name, "main");
}
