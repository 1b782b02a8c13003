//! What other users control, met by bpfprof running as root (`nobody`
//! plays the other user): the per-boot copy of the kernel's symbols in
//! /run/bpfprof (damaged, a FIFO, a directory planted by `nobody`), and
//! names with control characters. Saved runs: `saved_runs.rs`.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    os::unix::{
        fs::{MetadataExt, PermissionsExt, chown},
        process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{
    Run, Workload, bpfprof_bin, output_dir, require_bpf, run_within, workload,
};

const NOBODY: u32 = 65534;
const CACHE_ROOT: &str = "/run/bpfprof";

/// Profiles `pid` for 2 s, within a minute.
fn profile_pid(test: &str, pid: u32, extra: &[&str]) -> Run {
    let dir = output_dir(test);
    let mut command = Command::new(bpfprof_bin());
    command.arg("--output").arg(&dir);
    command.args(["--pid", &pid.to_string(), "-d", "2", "-F", "297"]);
    command.args(extra);
    let output = run_within(command, Duration::from_secs(60), test);
    Run::new(output, dir)
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
