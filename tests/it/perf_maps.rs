//! JIT code named from perf maps (/tmp/perf-PID.map), and perf maps that
//! other users plant or shape to hurt a root profiler: another owner, a
//! link, a FIFO, a huge sparse file, lines that do not parse.

use std::{
    io::{BufRead, BufReader},
    os::unix::{
        fs::{chown, lchown},
        process::CommandExt,
    },
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{Run, Workload, bpfprof_bin, output_dir, profile, require_bpf, workload};

const NOBODY: u32 = 65534;

/// Starts wl-jit and returns it with the address and size of its code.
fn start_jit(args: &[&str]) -> (Workload, u64, u64) {
    let mut command = Command::new(workload("wl-jit"));
    command.args(args);
    spawn_jit(command)
}

fn spawn_jit(mut command: Command) -> (Workload, u64, u64) {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut fields = line
        .split_whitespace()
        .map(|f| u64::from_str_radix(f, 16).unwrap());
    let (addr, size) = (fields.next().unwrap(), fields.next().unwrap());
    (Workload(child), addr, size)
}

#[test]
#[ignore = "needs root and BPF"]
fn jit_code_is_named_from_its_perf_map() {
    let _bpf = require_bpf();
    let (jit, _, _) = start_jit(&["map"]);
    let run = profile("jit", &["--pid", &jit.pid().to_string(), "-d", "1"]);
    let _ = std::fs::remove_file(format!("/tmp/perf-{}.map", jit.pid()));
    assert_jit_code_named(&run);
}

#[test]
#[ignore = "needs root and BPF"]
fn the_perf_map_of_a_process_that_exited_is_still_used() {
    let _bpf = require_bpf();
    // wl-jit exits (killed by timeout) before the final drain names it.
    let jit = workload("wl-jit");
    let run = profile(
        "jit-exited",
        &["--", "timeout", "1", jit.to_str().unwrap(), "map"],
    );
    assert_jit_code_named(&run);
    for pid in run.report()["processes"].as_array().unwrap() {
        let _ = std::fs::remove_file(format!("/tmp/perf-{}.map", pid["pid"]));
    }
}

#[test]
#[ignore = "needs root and BPF"]
fn a_perf_map_planted_by_another_user_is_ignored() {
    let _bpf = require_bpf();
    let (jit, addr, size) = start_jit(&[]);
    let map = format!("/tmp/perf-{}.map", jit.pid());
    std::fs::write(&map, format!("{addr:x} {size:x} planted_name\n")).unwrap();
    chown(&map, Some(65534), Some(65534)).unwrap();
    let run = profile("planted", &["--pid", &jit.pid().to_string(), "-d", "1"]);
    let _ = std::fs::remove_file(&map);
    assert_refused_map_not_used(&run, "planted_name");
    let errors = &run.report()["errors"];
    assert!(
        errors["unknown_frames_by_module"]["[no file]"]
            .as_u64()
            .unwrap()
            >= 50,
        "{errors}"
    );
    let stdout = run.stdout();
    assert!(
        stdout.contains("Quality") && stdout.contains("warning:") && stdout.contains("perf map"),
        "{stdout}"
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn node_jit_frames_are_named_with_perf_basic_prof() {
    let _bpf = require_bpf();
    let script = "function hotLoopForProfiler(n) { let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) | 0; return x; }\n\
                  const end = Date.now() + 30000; let s = 0; while (Date.now() < end) s += hotLoopForProfiler(1e6);\n";
    // node leaves a V8 log in its working directory: keep it out of the tree.
    let node = Command::new("node")
        .current_dir(std::env::temp_dir())
        .args(["--perf-basic-prof", "-e", script])
        .spawn()
        .expect("node is needed: apt-get install nodejs");
    let node = Workload(node);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let run = profile("node", &["--pid", &node.pid().to_string(), "-d", "2"]);
    let _ = std::fs::remove_file(format!("/tmp/perf-{}.map", node.pid()));
    let v8_log = format!("-{}-v8.log", node.pid());
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry.file_name().to_string_lossy().ends_with(&v8_log) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    run.assert_success();
    let folded = run.folded();
    let named: u64 = folded
        .stacks
        .iter()
        .filter(|(frames, _)| frames.iter().any(|f| f.contains("hotLoopForProfiler")))
        .map(|(_, n)| n)
        .sum();
    let total: u64 = folded.stacks.iter().map(|(_, n)| n).sum();
    assert!(
        named * 2 >= total,
        "hotLoopForProfiler in {named} of {total} samples: {:?}",
        folded.stacks
    );
}

/// The run named wl-jit's code from its perf map for most of a second.
fn assert_jit_code_named(run: &Run) {
    run.assert_success();
    let named = run.folded().leaf_samples("wl-jit", "jit_spin_loop");
    assert!(
        named >= 50,
        "jit_spin_loop has {named} samples: {:?}",
        run.folded().stacks
    );
}

/// wl-jit run as `nobody` (from a copy it can reach), without a perf map of
/// its own: the tests plant one, as that user could.
fn start_jit_as_nobody() -> (Workload, u64, u64, PathBuf) {
    let dir = std::env::temp_dir().join(format!("bpfprof-it-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("wl-jit");
    if !copy.exists() {
        std::fs::copy(workload("wl-jit"), &copy).unwrap();
    }
    let mut command = Command::new(&copy);
    command.uid(NOBODY).gid(NOBODY);
    let (jit, addr, size) = spawn_jit(command);
    let map = PathBuf::from(format!("/tmp/perf-{}.map", jit.pid()));
    (jit, addr, size, map)
}

/// Profiles `pid` for a second, failing (not hanging) if bpfprof does not
/// end within a bound far above a second's run.
fn profile_bounded(test: &str, pid: u32) -> Run {
    let dir = output_dir(test);
    let mut child = Command::new(bpfprof_bin())
        .arg("--output")
        .arg(&dir)
        .args(["--pid", &pid.to_string(), "-d", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("bpfprof still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Run::new(child.wait_with_output().unwrap(), dir)
}

/// The largest resident size of any child waited for so far, in KiB.
fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    usage.ru_maxrss
}

#[test]
#[ignore = "needs root and BPF"]
fn a_perf_map_that_is_a_fifo_does_not_hang_the_run() {
    let _bpf = require_bpf();
    let (jit, _, _, map) = start_jit_as_nobody();
    let path = std::ffi::CString::new(map.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o666) }, 0);
    chown(&map, Some(NOBODY), Some(NOBODY)).unwrap();
    let run = profile_bounded("perf-map-fifo", jit.pid());
    let _ = std::fs::remove_file(&map);
    run.assert_success();
    assert!(run.folded().samples_of("wl-jit") >= 50);
    assert_eq!(run.report()["errors"]["perf_maps_ignored"], 1);
}

#[test]
#[ignore = "needs root and BPF"]
fn a_huge_sparse_perf_map_is_read_only_up_to_a_bound() {
    let _bpf = require_bpf();
    let (jit, addr, size, map) = start_jit_as_nobody();
    let mut text = format!("{addr:x} {size:x} jit_spin_loop\n");
    text.push_str("not a perf map line\n");
    std::fs::write(&map, text).unwrap();
    // Half a gigabyte, almost all of it a hole of zeros.
    std::fs::File::options()
        .write(true)
        .open(&map)
        .unwrap()
        .set_len(500 << 20)
        .unwrap();
    chown(&map, Some(NOBODY), Some(NOBODY)).unwrap();
    let run = profile_bounded("perf-map-huge", jit.pid());
    let _ = std::fs::remove_file(&map);
    run.assert_success();
    let named = run.folded().leaf_samples("wl-jit", "jit_spin_loop");
    assert!(named >= 50, "{:?}", run.folded().stacks);
    let errors = &run.report()["errors"];
    assert_eq!(errors["perf_maps_cut"], 1, "{errors}");
    assert!(
        errors["perf_map_lines_skipped"].as_u64().unwrap() >= 1,
        "{errors}"
    );
    let rss_mib = children_max_rss_kib() / 1024;
    assert!(rss_mib < 400, "a child of this test reached {rss_mib} MiB");
    assert!(
        run.stdout().contains("JIT perf maps cut"),
        "{}",
        run.stdout()
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn a_perf_map_planted_as_a_link_to_roots_file_is_not_followed() {
    let _bpf = require_bpf();
    // A root process's JIT code, and a link planted by nobody under the
    // name its perf map will have, to a file of root's.
    let (jit, addr, size) = start_jit(&[]);
    let secret = std::env::temp_dir().join(format!("bpfprof-it-secret-{}", std::process::id()));
    std::fs::write(&secret, format!("{addr:x} {size:x} roots_secret_line\n")).unwrap();
    let map = format!("/tmp/perf-{}.map", jit.pid());
    std::os::unix::fs::symlink(&secret, &map).unwrap();
    lchown(&map, Some(NOBODY), Some(NOBODY)).unwrap();
    let run = profile_bounded("perf-map-link", jit.pid());
    let _ = std::fs::remove_file(&map);
    let _ = std::fs::remove_file(&secret);
    assert_refused_map_not_used(&run, "roots_secret_line");
}

/// The run went on with wl-jit sampled, no frame named from the refused
/// perf map, and the refusal counted.
fn assert_refused_map_not_used(run: &Run, planted: &str) {
    run.assert_success();
    let folded = run.folded();
    assert!(folded.samples_of("wl-jit") >= 50);
    assert!(
        folded
            .stacks
            .iter()
            .all(|(f, _)| !f.iter().any(|f| f.contains(planted))),
        "{:?}",
        folded.stacks
    );
    assert_eq!(run.report()["errors"]["perf_maps_ignored"], 1);
}
