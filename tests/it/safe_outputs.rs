//! Outputs that cannot be turned against root: bpfprof runs as root, often
//! under sudo, and writes where other users can reach. The attacker's side
//! runs as `nobody` (uid 65534, through setpriv); bpfprof runs as root,
//! with `SUDO_UID=65534` where the test is about handing files over.

use std::{
    collections::BTreeMap,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Command, Output},
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use integration_tests::{Workload, bpfprof_bin, output_dir, require_bpf, schemas};

const NOBODY: u32 = 65534;

/// Runs a shell script as nobody.
fn as_nobody(script: &str) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["sh", "-c", script])
        .output()
        .expect("starting setpriv (util-linux)");
    assert!(
        out.status.success(),
        "as nobody: {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs bpfprof as root; with `sudo`, as if nobody had run it with sudo.
fn bpfprof(args: &[&str], sudo: bool, cwd: Option<&Path>) -> Output {
    let mut cmd = Command::new(bpfprof_bin());
    cmd.args(args);
    if sudo {
        cmd.env("SUDO_UID", "65534").env("SUDO_GID", "65534");
    } else {
        cmd.env_remove("SUDO_UID").env_remove("SUDO_GID");
    }
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    cmd.output().expect("starting bpfprof")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_refused(out: &Output, expected: &str) {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(expected), "`{expected}` not in: {text}");
}

/// A root-only file that planted links point at.
struct Secret {
    dir: PathBuf,
    file: PathBuf,
}

impl Secret {
    fn new(test: &str) -> Secret {
        let dir = output_dir(&format!("{test}-secret"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "root's secret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        Secret { dir, file }
    }

    fn assert_intact(&self) {
        let meta = std::fs::metadata(&self.file).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, 0, 0o600),
            "the secret's owner or mode changed"
        );
        assert_eq!(
            std::fs::read_to_string(&self.file).unwrap(),
            "root's secret\n"
        );
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
#[ignore = "needs root and BPF"]
fn links_planted_in_the_output_directory_are_never_followed() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let pid = spin.pid().to_string();
    let secret = Secret::new("links");
    let dir = output_dir("planted-links");
    let d = dir.display();
    let s = secret.file.display();
    as_nobody(&format!(
        "mkdir {d} && chmod 777 {d} && for f in report.json on-cpu.svg .bpfprof-write-test; do ln -s {s} {d}/$f; done"
    ));
    let args = ["--pid", &pid, "-d", "1", "-o", dir.to_str().unwrap()];
    // A run that fails on another input (no BPF object) must not have
    // touched the directory either: it is refused before the directory is
    // looked at.
    let empty = secret.dir.join("empty.o");
    std::fs::write(&empty, "").unwrap();
    let failing = [&args[..], &["--bpf-object", empty.to_str().unwrap()]].concat();
    let refused = bpfprof(&failing, true, None);
    secret.assert_intact();
    assert_refused(&refused, "not a BPF object");
    let refused = bpfprof(&args, true, None);
    secret.assert_intact();
    assert_refused(&refused, "exists and is not empty; use --force");

    let forced = bpfprof(&[&args[..], &["--force"]].concat(), true, None);
    assert!(forced.status.success(), "{}", stderr(&forced));
    secret.assert_intact();
    for name in [
        "report.json",
        "on-cpu.svg",
        "on-cpu.folded",
        "profile.pb.gz",
    ] {
        let meta = std::fs::symlink_metadata(dir.join(name)).unwrap();
        assert!(meta.is_file(), "{name} replaced the link");
        assert_eq!(meta.uid(), NOBODY, "{name} belongs to the sudo user");
    }
    schemas::check_outputs(&dir);
    assert!(
        names(&dir).iter().all(|n| !n.contains(".tmp.")),
        "no temporary file left: {:?}",
        names(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root and BPF"]
fn an_existing_directory_is_not_given_away() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let pid = spin.pid().to_string();
    let ours = output_dir("existing");
    std::fs::create_dir(&ours).unwrap();
    let run = bpfprof(
        &["--pid", &pid, "-d", "1", "-o", ours.to_str().unwrap()],
        true,
        None,
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        std::fs::metadata(&ours).unwrap().uid(),
        0,
        "a directory bpfprof did not create keeps its owner"
    );
    schemas::check_outputs(&ours);
    let report = std::fs::metadata(ours.join("report.json")).unwrap();
    assert_eq!((report.uid(), report.gid()), (NOBODY, NOBODY));

    // Someone else's empty directory is not used without --force.
    let theirs = output_dir("theirs");
    as_nobody(&format!("mkdir {}", theirs.display()));
    let run = bpfprof(
        &["--pid", &pid, "-d", "1", "-o", theirs.to_str().unwrap()],
        false,
        None,
    );
    assert_refused(&run, "belongs to uid 65534; use --force");
    assert!(names(&theirs).is_empty());
    let _ = std::fs::remove_dir_all(&ours);
    let _ = std::fs::remove_dir_all(&theirs);
}

/// `YYYYmmdd-HHMMSS` in local time, as bpfprof names its directories.
fn local_stamp(secs: u64) -> String {
    let out = Command::new("date")
        .args([&format!("-d@{secs}"), "+%Y%m%d-%H%M%S"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
#[ignore = "needs root and BPF"]
fn the_default_directory_cannot_be_claimed_first() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let cwd = output_dir("claimed");
    std::fs::create_dir(&cwd).unwrap();
    std::fs::set_permissions(&cwd, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let planted: Vec<String> = (0..6)
        .map(|i| format!("bpfprof-{}", local_stamp(now + i)))
        .collect();
    as_nobody(&format!(
        "cd {} && mkdir {}",
        cwd.display(),
        planted.join(" ")
    ));
    let run = bpfprof(
        &["--pid", &spin.pid().to_string(), "-d", "1"],
        false,
        Some(&cwd),
    );
    assert!(run.status.success(), "{}", stderr(&run));
    for name in &planted {
        assert!(names(&cwd.join(name)).is_empty(), "{name} was written into");
        assert_eq!(std::fs::metadata(cwd.join(name)).unwrap().uid(), NOBODY);
    }
    let made: Vec<String> = names(&cwd)
        .into_iter()
        .filter(|n| !planted.contains(n))
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(
        planted.iter().any(|p| made[0] == format!("{p}-1")),
        "{made:?}"
    );
    assert_eq!(std::fs::metadata(cwd.join(&made[0])).unwrap().uid(), 0);
    assert!(cwd.join(&made[0]).join("report.json").is_file());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains(&format!(" in {}", made[0])), "{stdout}");
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
#[ignore = "needs root and BPF"]
fn two_runs_started_in_the_same_second_keep_both() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let pid = spin.pid().to_string();
    let cwd = output_dir("same-second");
    std::fs::create_dir(&cwd).unwrap();
    // Just after a second begins, so both name their directory in it.
    let into = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    thread::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(into.subsec_nanos()) + 5_000_000,
    ));
    let spawn = || {
        Command::new(bpfprof_bin())
            .args(["--pid", &pid, "-d", "1"])
            .current_dir(&cwd)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let dirs = names(&cwd);
    assert_eq!(dirs.len(), 2, "one directory each: {dirs:?}");
    assert_eq!(dirs[1], format!("{}-1", dirs[0]), "{dirs:?}");
    for dir in &dirs {
        schemas::check_outputs(&cwd.join(dir));
        let report = std::fs::read_to_string(cwd.join(dir).join("report.json")).unwrap();
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert!(report["totals"]["samples"].as_u64().unwrap() > 0, "{dir}");
    }
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
#[ignore = "needs root and BPF"]
fn keep_removes_only_the_windows_this_run_wrote() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let dir = output_dir("keep-own");
    for other in ["000000-old", "999999-notes"] {
        std::fs::create_dir_all(dir.join("windows").join(other)).unwrap();
        std::fs::write(dir.join("windows").join(other).join("notes"), other).unwrap();
    }
    let run = bpfprof(
        &[
            "--pid",
            &spin.pid().to_string(),
            "-d",
            "3.4",
            "--window",
            "1",
            "--keep",
            "1",
            "--force",
            "-o",
            dir.to_str().unwrap(),
        ],
        false,
        None,
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let windows = dir.join("windows");
    for other in ["000000-old", "999999-notes"] {
        let notes = std::fs::read_to_string(windows.join(other).join("notes"));
        assert_eq!(notes.ok().as_deref(), Some(other), "{other} was removed");
    }
    let ours: Vec<String> = names(&windows)
        .into_iter()
        .filter(|n| n != "000000-old" && n != "999999-notes")
        .collect();
    assert_eq!(ours.len(), 1, "--keep 1 of this run's windows: {ours:?}");
    assert!(windows.join(&ours[0]).join("report.json").is_file());
    schemas::check_outputs(&dir);
    assert!(
        !ours[0].starts_with("000000-"),
        "the last window is kept: {ours:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root and BPF"]
fn report_never_touches_the_saved_run() {
    let _bpf = require_bpf();
    let spin = Workload::start("wl-spin", &[]);
    let saved = output_dir("saved-run");
    let run = bpfprof(
        &[
            "--pid",
            &spin.pid().to_string(),
            "-d",
            "1",
            "--off-cpu",
            "-o",
            saved.to_str().unwrap(),
        ],
        false,
        None,
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let contents = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        names(dir)
            .into_iter()
            .map(|n| (n.clone(), std::fs::read(dir.join(n)).unwrap()))
            .collect()
    };
    let before = contents(&saved);
    let s = saved.to_str().unwrap();
    let report = bpfprof(&["report", s, "--top", "2"], false, None);
    assert!(report.status.success(), "{}", stderr(&report));
    assert!(before == contents(&saved), "report changed the saved run");
    let first = PathBuf::from(format!("{s}-report"));
    assert!(first.join("on-cpu.svg").is_file() && first.join("wall.svg").is_file());
    let stdout = String::from_utf8_lossy(&report.stdout);
    assert!(
        stdout.contains(&format!(" in {}", first.display())),
        "{stdout}"
    );

    let again = bpfprof(&["report", s, "--format", "svg"], false, None);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        Path::new(&format!("{s}-report-1"))
            .join("on-cpu.svg")
            .is_file()
    );
    let chosen = output_dir("report-out");
    let to = bpfprof(&["report", s, "-o", chosen.to_str().unwrap()], false, None);
    assert!(to.status.success(), "{}", stderr(&to));
    assert!(chosen.join("report.json").is_file());
    schemas::check_outputs(&saved);
    schemas::check_outputs(&chosen);
    assert_refused(
        &bpfprof(&["report", s, "-o", s, "--force"], false, None),
        "is the saved run itself",
    );
    assert!(before == contents(&saved), "report changed the saved run");
    for dir in [saved.clone(), first, format!("{s}-report-1").into(), chosen] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
