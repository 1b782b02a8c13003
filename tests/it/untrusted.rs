//! What other users control, met by bpfprof running as root (`nobody`
//! plays the other user): the per-boot copy of the kernel's symbols in
//! /run/bpfprof (damaged, a FIFO, a directory planted by `nobody`), names
//! with control characters, and saved runs that never end or whose
//! counts overflow.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    os::unix::{
        fs::{MetadataExt, PermissionsExt, chown},
        process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use integration_tests::{Run, Workload, bpfprof_bin, output_dir, require_bpf, workload};

const NOBODY: u32 = 65534;
const CACHE_ROOT: &str = "/run/bpfprof";

/// Runs `command` to its end, killing it after `limit`: a hang fails the
/// test instead of stalling it. Memory is capped too, so a bpfprof that
/// reads without bound fails fast rather than taking the machine down.
fn run_within(mut command: Command, limit: Duration, what: &str) -> Output {
    // SAFETY: setrlimit is async-signal-safe; only the child is limited.
    unsafe {
        command.pre_exec(|| {
            let cap = libc::rlimit {
                rlim_cur: 4 << 30,
                rlim_max: 4 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &cap);
            Ok(())
        });
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting bpfprof");
    let pipes = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let (stdout, stderr) = (read(Box::new(pipes.0)), read(Box::new(pipes.1)));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: bpfprof still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Profiles `pid` for 2 s, within a minute.
fn profile_pid(test: &str, pid: u32, extra: &[&str]) -> Run {
    let dir = output_dir(test);
    let mut command = Command::new(bpfprof_bin());
    command.arg("--output").arg(&dir);
    command.args(["--pid", &pid.to_string(), "-d", "2", "-F", "297"]);
    command.args(extra);
    let output = run_within(command, Duration::from_secs(60), test);
    Run { output, dir }
}

fn boot_dir() -> PathBuf {
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    Path::new(CACHE_ROOT).join(boot_id.trim())
}

/// Leaves no planted state behind, whatever the test did: without
/// /run/bpfprof, the next run makes it anew.
struct RestoreCache;

impl Drop for RestoreCache {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(CACHE_ROOT);
    }
}

/// wl-syscall spends its time in read(2): most samples must show the
/// kernel's ksys_read calling vfs_read, named rightly.
fn assert_kernel_reads_named(run: &Run, case: &str) {
    run.assert_success();
    let folded = run.folded();
    let total = folded.samples_of("wl-syscall");
    let named = folded.chain_samples("wl-syscall", &["ksys_read_[k]", "vfs_read_[k]"]);
    assert!(
        total >= 100 && named * 2 >= total,
        "{case}: {named} of {total} samples show ksys_read;vfs_read: {:?}",
        folded.stacks
    );
}

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
}

#[test]
#[ignore = "needs root and BPF"]
fn a_damaged_kernel_symbol_copy_is_made_anew_and_a_fifo_never_blocks() {
    let _bpf = require_bpf();
    let _restore = RestoreCache;
    let syscall = Workload::start("wl-syscall", &[]);
    // The first run makes this boot's copy.
    let run = profile_pid("kallsyms-first", syscall.pid(), &[]);
    assert_kernel_reads_named(&run, "first run");
    let copy = boot_dir().join("kallsyms");
    let good = fs::read_to_string(&copy).unwrap();
    // Cut before vfs_read: a copy trusted as it is names vfs_read and
    // every later symbol after the last one left.
    let at = good.find(" vfs_read\n").expect("vfs_read in the copy");
    let truncated = &good[..good[..at].rfind('\n').unwrap() + 1];
    let plant: [(&str, &dyn Fn()); 3] = [
        ("truncated", &|| fs::write(&copy, truncated).unwrap()),
        ("garbage", &|| {
            fs::write(&copy, "garbage\n\u{1}\u{2}\n".repeat(1000)).unwrap()
        }),
        ("a FIFO", &|| {
            fs::remove_file(&copy).unwrap();
            mkfifo(&copy);
        }),
    ];
    for (case, plant) in plant {
        plant();
        let run = profile_pid("kallsyms-damaged", syscall.pid(), &[]);
        assert_kernel_reads_named(&run, case);
        assert!(
            fs::symlink_metadata(&copy).unwrap().is_file(),
            "{case}: not made anew"
        );
    }
}

#[test]
#[ignore = "needs root and BPF"]
fn a_kernel_symbol_directory_planted_by_another_user_is_not_used() {
    let _bpf = require_bpf();
    let _restore = RestoreCache;
    let syscall = Workload::start("wl-syscall", &[]);
    let _ = fs::remove_dir_all(CACHE_ROOT);
    fs::create_dir(CACHE_ROOT).unwrap();
    fs::set_permissions(CACHE_ROOT, fs::Permissions::from_mode(0o777)).unwrap();
    chown(CACHE_ROOT, Some(NOBODY), Some(NOBODY)).unwrap();
    // nobody plants this boot's directory, with a copy missing most
    // symbols, for root to use or to write into.
    let mut plant = Command::new("sh")
        .args(["-c", r#"mkdir -m 777 "$1" && cat > "$1/kallsyms""#, "sh"])
        .arg(boot_dir())
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let planted = "ffffffff81000000 T _stext\nffffffff81000010 T planted_name\n";
    plant
        .stdin
        .take()
        .unwrap()
        .write_all(planted.as_bytes())
        .unwrap();
    assert!(plant.wait().unwrap().success());

    let run = profile_pid("kallsyms-planted", syscall.pid(), &[]);
    assert_kernel_reads_named(&run, "planted by nobody");
    let warnings: Vec<String> = run
        .stderr()
        .lines()
        .filter(|l| l.contains(CACHE_ROOT))
        .map(str::to_string)
        .collect();
    assert!(
        warnings.len() == 1
            && warnings[0].starts_with("bpfprof: warning: /run/bpfprof is owned by uid 65534"),
        "{}",
        run.stderr()
    );
    let written: Vec<PathBuf> = walk(Path::new(CACHE_ROOT))
        .into_iter()
        .filter(|p| fs::symlink_metadata(p).unwrap().uid() != NOBODY)
        .collect();
    assert!(
        written.is_empty(),
        "root wrote into nobody's directory: {written:?}"
    );
    let kallsyms = boot_dir().join("kallsyms");
    assert_eq!(fs::read_to_string(kallsyms).unwrap(), planted);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![dir.to_path_buf()];
    for entry in fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            found.extend(walk(&entry.path()));
        } else {
            found.push(entry.path());
        }
    }
    found
}

/// Raw control characters (other than line ends) in `bytes`.
fn raw_controls(bytes: &[u8]) -> Vec<char> {
    let text = String::from_utf8_lossy(bytes);
    text.chars()
        .filter(|&c| c != '\n' && (c.is_control() || c == '\u{202e}'))
        .collect()
}

#[test]
#[ignore = "needs root and BPF"]
fn control_characters_in_names_are_escaped_in_every_output() {
    let _bpf = require_bpf();
    // wl-jit names its code from a perf map, which says what it likes;
    // started through a link, it is named after the link.
    let name = "\x1b[2J<&\"'\x01x\x7f";
    let links = output_dir("names-link");
    fs::create_dir_all(&links).unwrap();
    let link = links.join(name);
    std::os::unix::fs::symlink(workload("wl-jit"), &link).unwrap();
    let mut child = Command::new(&link).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let jit = Workload(child);
    let mut fields = line
        .split_whitespace()
        .map(|f| u64::from_str_radix(f, 16).unwrap());
    let (addr, size) = (fields.next().unwrap(), fields.next().unwrap());
    let map = format!("/tmp/perf-{}.map", jit.pid());
    let symbol = "jit\x1b[31m<&\"'\x01\u{202e}loop";
    fs::write(&map, format!("{addr:x} {size:x} {symbol}\n")).unwrap();

    let run = profile_pid(
        "names",
        jit.pid(),
        &["--format", "folded,svg,json,speedscope,pprof"],
    );
    let _ = fs::remove_file(&map);
    let _ = fs::remove_dir_all(&links);
    run.assert_success();
    let escaped_name = r#"\x1b[2J<&"'\x01x\x7f"#;
    let escaped_symbol = r#"jit\x1b[31m<&"'\x01\u{202e}loop"#;
    assert!(
        run.folded().leaf_samples(escaped_name, escaped_symbol) >= 100,
        "{:?}",
        run.folded().stacks
    );
    for (what, bytes) in [
        ("stdout", run.output.stdout.clone()),
        ("stderr", run.output.stderr.clone()),
        (
            "on-cpu.folded",
            fs::read(run.dir.join("on-cpu.folded")).unwrap(),
        ),
        ("on-cpu.svg", fs::read(run.dir.join("on-cpu.svg")).unwrap()),
    ] {
        let raw = raw_controls(&bytes);
        assert!(raw.is_empty(), "{what}: raw control characters {raw:?}");
    }
    assert!(run.stdout().contains(escaped_name), "{}", run.stdout());
    let report = run.report();
    assert_eq!(report["processes"][0]["name"], escaped_name, "{report}");
    assert_eq!(
        report["hot_functions"][0]["name"], escaped_symbol,
        "{report}"
    );
    let speedscope: serde_json::Value =
        serde_json::from_slice(&fs::read(run.dir.join("speedscope.json")).unwrap()).unwrap();
    let frames = speedscope["shared"]["frames"].as_array().unwrap();
    assert!(
        frames.iter().any(|f| f["name"] == escaped_symbol),
        "{speedscope}"
    );
    // The flame graph is XML that parses, with the names as they are.
    let svg = run.dir.join("on-cpu.svg");
    let parse = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E\n\
             texts = [t.text or '' for t in E.parse(sys.argv[1]).iter('{http://www.w3.org/2000/svg}title')]\n\
             print('\\n'.join(texts))",
        ])
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        parse.status.success(),
        "on-cpu.svg is not XML: {}",
        String::from_utf8_lossy(&parse.stderr)
    );
    let titles = String::from_utf8_lossy(&parse.stdout);
    assert!(
        titles.contains(escaped_symbol) && titles.contains(escaped_name),
        "{titles}"
    );
}

/// Runs `bpfprof ARGS` on saved files within 30 s.
fn bpfprof_within(args: &[&Path]) -> (Option<i32>, String) {
    let mut command = Command::new(bpfprof_bin());
    command.args(args);
    let output = run_within(command, Duration::from_secs(30), &format!("{args:?}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_refused(args: &[&Path], expected: &str) {
    let (code, stderr) = bpfprof_within(args);
    assert_eq!(code, Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(
        stderr.starts_with("bpfprof: ") && stderr.contains(expected),
        "{args:?}: `{stderr}` does not say `{expected}`"
    );
}

/// A directory of `nobody`'s, for files another user made.
fn nobodys_dir(test: &str) -> PathBuf {
    let dir = output_dir(test);
    fs::create_dir_all(&dir).unwrap();
    chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    dir
}

fn as_nobody(script: &str, dir: &Path) {
    let status = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(dir)
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

#[test]
#[ignore = "needs root and BPF"]
fn saved_runs_that_never_end_are_refused_in_one_line() {
    let _bpf = require_bpf();
    let dir = nobodys_dir("endless");
    as_nobody(
        r#"cd "$1" && printf 'app;main 1\n' > ok.folded && mkfifo fifo.folded &&
           mkdir run && ln -s /dev/zero run/report.json && ln -s /dev/zero run/on-cpu.folded &&
           awk 'BEGIN { printf "app"; for (i = 0; i < 600000; i++) printf ";f"; print " 1" }' > long.folded &&
           truncate -s 1100M big.folded"#,
        &dir,
    );
    // Where a diff would write, were it to accept its input.
    let out = output_dir("endless-out");
    let o = Path::new("-o");
    let ok = dir.join("ok.folded");
    let zero = Path::new("/dev/zero");
    assert_refused(
        &[Path::new("diff"), zero, &ok, o, &out],
        "/dev/zero: not a regular file",
    );
    let fifo = dir.join("fifo.folded");
    assert_refused(
        &[Path::new("diff"), &ok, &fifo, o, &out],
        "fifo.folded: not a regular file",
    );
    let long = dir.join("long.folded");
    assert_refused(
        &[Path::new("diff"), &long, &ok, o, &out],
        "long.folded:1: line longer than 1 MiB",
    );
    let big = dir.join("big.folded");
    assert_refused(
        &[Path::new("diff"), &ok, &big, o, &out],
        "big.folded: larger than 1024 MiB",
    );
    let run = dir.join("run");
    assert_refused(
        &[Path::new("report"), &run],
        "run/report.json: not a regular file",
    );
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_dir_all(&out);
}

#[test]
#[ignore = "needs root and BPF"]
fn counts_past_64_bits_are_refused_not_wrapped() {
    let _bpf = require_bpf();
    let dir = output_dir("overflow");
    fs::create_dir_all(&dir).unwrap();
    let huge = dir.join("huge.folded");
    fs::write(
        &huge,
        "app;a 18446744073709551615\napp;b 18446744073709551615\n",
    )
    .unwrap();
    let ok = dir.join("ok.folded");
    fs::write(&ok, "app;a 3\napp;b 1\n").unwrap();
    let out = dir.join("out");
    assert_refused(
        &[Path::new("diff"), &huge, &ok, Path::new("-o"), &out],
        "huge.folded:1: count too large",
    );
    // The most a file may hold compares with shares of at most 100%.
    let most = dir.join("most.folded");
    fs::write(&most, "app;a 9223372036854775806\napp;b 1\n").unwrap();
    let output = Command::new(bpfprof_bin())
        .args([Path::new("diff"), &ok, &most, Path::new("-o"), &out])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("(9223372036854775807 samples)") && text.contains("+25.0  "),
        "{text}"
    );
    let shares: Vec<f64> = text
        .split_whitespace()
        .filter_map(|w| w.strip_suffix('%')?.parse().ok())
        .collect();
    assert!(
        !shares.is_empty() && shares.iter().all(|s| (0.0..=100.0).contains(s)),
        "{text}"
    );
    let _ = fs::remove_dir_all(&dir);
}
