//! Unwind tables as a run holds them, end to end on the real kernel: one
//! per binary within the --unwind-rows budget (a binary that does not fit
//! is named), kept between runs in a root-only cache that is used only
//! whole, and the stacks walked before a table was loaded counted.

use std::{
    fs,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use integration_tests::{Run, Workload, output_dir, profile, require_bpf};

/// Profiles wl-qsort (its time is in libc) for a second with `extra`.
fn profile_qsort(test: &str, extra: &[&str]) -> Run {
    let running = Workload::start("wl-qsort", &[]);
    let pid = running.pid().to_string();
    let mut args = vec!["-v", "--pid", &pid, "-d", "1", "-F", "299"];
    args.extend_from_slice(extra);
    let run = profile(test, &args);
    run.assert_success();
    run
}

/// The "N binaries (M from the cache)" of -v's unwind-table line.
fn binaries_and_cached(run: &Run) -> (u64, u64) {
    let stderr = run.stderr();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("bpfprof: unwind tables: "))
        .unwrap_or_else(|| panic!("no unwind-table line in:\n{stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |i: usize| words[i].trim_start_matches('(').parse::<u64>().unwrap();
    (number(3), number(5))
}

#[test]
#[ignore = "needs root and BPF"]
fn a_binary_whose_table_does_not_fit_is_named_and_the_rest_load() {
    let _bpf = require_bpf();
    let cache = ["--unwind-cache", "none"];
    let whole = profile_qsort("tables-fit", &cache);
    assert_eq!(whole.report()["errors"]["unwind_tables_not_loaded"], 0);
    // libc's table is far larger than this budget; the workload's own and
    // the loader's are not.
    let run = profile_qsort(
        "tables-full",
        &["--unwind-rows", "5000", cache[0], cache[1]],
    );
    let errors = &run.report()["errors"];
    assert_eq!(errors["unwind_tables_not_loaded"], 1, "{errors}");
    let named = errors["unwind_tables_not_loaded_by_binary"]
        .as_object()
        .unwrap();
    assert!(
        named.keys().all(|path| path.ends_with("/libc.so.6")),
        "{named:?}"
    );
    let stderr = run.stderr();
    assert!(
        stderr.lines().any(
            |l| l.starts_with("bpfprof: unwind table not loaded: /") && l.contains("libc.so.6")
        ),
        "{stderr}"
    );
    let stdout = run.stdout();
    let quality = stdout.split("\nQuality\n").nth(1).unwrap_or_default();
    assert!(
        quality.contains("binaries without unwind tables (full)") && quality.contains("libc.so.6"),
        "{stdout}"
    );
    let (binaries, _) = binaries_and_cached(&run);
    assert!(binaries >= 2, "the tables that fit were loaded: {stderr}");
}

/// A root-only directory for a test's cache, removed when dropped.
struct CacheDir(PathBuf);

impl CacheDir {
    fn new(test: &str) -> CacheDir {
        let base = output_dir(test);
        fs::DirBuilder::new().mode(0o700).create(&base).unwrap();
        CacheDir(base)
    }

    /// The --unwind-cache directory, two levels under the private base.
    fn tables(&self) -> PathBuf {
        self.0.join("bpfprof").join("unwind")
    }
}

impl Drop for CacheDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn table_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.path(), e.metadata().unwrap().len()))
        .collect();
    files.sort_by_key(|(_, len)| std::cmp::Reverse(*len));
    files
}

#[test]
#[ignore = "needs root and BPF"]
fn tables_are_kept_between_runs_and_a_damaged_one_is_made_anew() {
    let _bpf = require_bpf();
    let cache = CacheDir::new("tables-cache");
    let dir = cache.tables();
    let flag = ["--unwind-cache", dir.to_str().unwrap()];
    let first = profile_qsort("tables-cache-1", &flag);
    let (binaries, cached) = binaries_and_cached(&first);
    assert!(binaries >= 3 && cached == 0, "{}", first.stderr());
    let files = table_files(&dir);
    assert_eq!(files.len() as u64, binaries, "{files:?}");
    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the cache is root's alone");

    let second = profile_qsort("tables-cache-2", &flag);
    assert_eq!(binaries_and_cached(&second), (binaries, binaries));

    // The largest table (libc's), one byte changed: not used, made anew.
    let (largest, len) = files[0].clone();
    let mut bytes = fs::read(&largest).unwrap();
    bytes[len as usize / 2] ^= 0x40;
    fs::write(&largest, &bytes).unwrap();
    let third = profile_qsort("tables-cache-3", &flag);
    assert_eq!(binaries_and_cached(&third), (binaries, binaries - 1));
    assert_ne!(fs::read(&largest).unwrap(), bytes, "rewritten whole");

    // A cache others could write to is not used, and a warning says why.
    let base = dir.parent().unwrap();
    fs::set_permissions(base, fs::Permissions::from_mode(0o777)).unwrap();
    let open = profile_qsort("tables-cache-4", &flag);
    assert_eq!(binaries_and_cached(&open), (binaries, 0));
    assert!(
        open.stderr().contains(&format!(
            "warning: {} can be written by others",
            base.display()
        )),
        "{}",
        open.stderr()
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn stacks_walked_before_their_tables_loaded_are_counted() {
    let _bpf = require_bpf();
    // node, started by bpfprof and spinning in JavaScript: its own table is
    // large (a few hundred thousand rows) and, with no cache, is parsed
    // while the capture runs. (With --pid, tables load before sampling.)
    let spin = "const end = Date.now() + 2000; let x = 0; \
                while (Date.now() < end) { x = (x * 31 + 7) % 1000003; }";
    let run = profile(
        "tables-pending",
        &[
            "-F",
            "999",
            "--unwind-cache",
            "none",
            "--",
            "node",
            "-e",
            spin,
        ],
    );
    run.assert_success();
    let errors = &run.report()["errors"];
    let samples = errors["samples"].as_u64().unwrap();
    let early = errors["stacks_walked_before_unwind_tables"]
        .as_u64()
        .unwrap();
    assert!(samples >= 1000, "{errors}");
    // Some before node's table was read, and the rest after: counted only
    // while it was not there.
    assert!(early > 0 && early < samples / 2, "{early} of {samples}");
    assert!(
        run.stdout()
            .contains("stacks walked before unwind tables loaded"),
        "{}",
        run.stdout()
    );
}

/// The "M rows" of -v's unwind-table line: the entries loaded at the end.
fn rows_loaded(run: &Run) -> u64 {
    let stderr = run.stderr();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("bpfprof: unwind tables: "))
        .unwrap_or_else(|| panic!("no unwind-table line in:\n{stderr}"));
    line.split_whitespace().nth(9).unwrap().parse().unwrap()
}

/// Two pyenv interpreters, one after the other under one shell: each
/// spins 3 s in Python code, so its stacks run through libpython. The
/// second waits for its table until a drain after the first exits: a
/// tenth of its run at most.
fn two_pythons(test: &str, extra: &[&str], pythons: &[&str]) -> Run {
    let spin = "import time\ne = time.time() + 3\nwhile time.time() < e: sum(range(1000))";
    let script: Vec<String> = pythons
        .iter()
        .map(|p| {
            let path = format!("/root/.pyenv/versions/{p}");
            assert!(Path::new(&path).exists(), "{path} is missing");
            format!("{path} -c '{spin}'")
        })
        .collect();
    let script = script.join("; ");
    let mut args = vec!["-v", "-F", "299", "--interval", "0.2"];
    args.extend_from_slice(&["--unwind-cache", "none"]);
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", &script]);
    let run = profile(test, &args);
    run.assert_success();
    run
}

/// Within a budget that holds one interpreter's tables but not two, the
/// second's libpython does not fit while the first runs; once the first
/// has exited its tables are freed, and the second's is loaded: its
/// stacks are walked whole, to `Py_BytesMain`, as the first's were.
#[test]
#[ignore = "needs root and BPF"]
fn tables_no_process_uses_make_room_for_those_that_did_not_fit() {
    let _bpf = require_bpf();
    let (first, second) = ("3.12.1/bin/python3.12", "3.13.0/bin/python3.13");
    let alone = [first, second].map(|p| rows_loaded(&two_pythons("tables-alone", &[], &[p])));
    let budget = (alone[0].max(alone[1]) + 2000).to_string();
    let run = two_pythons(
        "tables-freed",
        &["--unwind-rows", &budget],
        &[first, second],
    );
    let stderr = run.stderr();
    assert!(
        stderr.contains(" 1 freed when no process used them")
            || stderr.contains(" 2 freed when no process used them"),
        "{stderr}"
    );
    let folded = run.folded();
    for python in ["python3.12", "python3.13"] {
        let total = folded.samples_of(python);
        let whole = folded
            .of_process(python)
            .filter(|(frames, _)| frames.iter().any(|f| f == "Py_BytesMain"))
            .map(|(_, n)| n)
            .sum::<u64>();
        assert!(total >= 150, "only {total} samples of {python}");
        assert!(
            whole * 100 >= total * 85,
            "{whole} of {total} stacks of {python} walked to Py_BytesMain\n{stderr}"
        );
    }
}
