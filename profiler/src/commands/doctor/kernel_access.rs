//! What of the kernel the user running doctor can read: the addresses in
//! /proc/kallsyms and the tracepoints in tracefs. Both depend on who asks
//! (root, capabilities, sysctls, a directory's mode), so each finding is
//! worked out for this user, and says how bpfprof run as root would fare.

use std::{
    io::{BufRead, BufReader, ErrorKind},
    os::unix::fs::MetadataExt,
    path::Path,
};

use super::{Findings, sysctl};
use crate::bpf;

const TRACEFS: &str = "/sys/kernel/tracing";
/// A tracepoint format bpfprof reads on every run.
const TRACEPOINT_FORMAT: &str = "/sys/kernel/tracing/events/sched/sched_process_fork/format";

pub(super) fn check_kernel_symbols(f: &mut Findings) {
    let Some(visible) = kallsyms_visible() else {
        f.warn("/proc/kallsyms cannot be read: kernel frames stay unnamed".into());
        return;
    };
    let kptr = sysctl("kptr_restrict");
    let paranoid = sysctl("perf_event_paranoid");
    let cap_syslog = bpf::has_capability(bpf::CAP_SYSLOG);
    let (level, text) = symbols_finding(visible, kptr, paranoid, cap_syslog);
    f.add(level, text);
}

/// Whether /proc/kallsyms shows this process real addresses: `_stext`'s is
/// not 0. (The first lines cannot tell: per-CPU symbols such as
/// `fixed_percpu_data` are at 0 even when addresses are shown.)
fn kallsyms_visible() -> Option<bool> {
    let file = std::fs::File::open("/proc/kallsyms").ok()?;
    stext_shown(BufReader::new(file).lines().map_while(Result::ok))
}

fn stext_shown(mut lines: impl Iterator<Item = String>) -> Option<bool> {
    lines.find_map(|line| {
        let (addr, rest) = line.split_once(' ')?;
        rest.ends_with(" _stext")
            .then(|| u64::from_str_radix(addr, 16).is_ok_and(|a| a != 0))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    Ok,
    Warn,
    Fix,
}

/// The finding on kernel symbols, by the kernel's rule for showing them
/// (`kallsyms_show_value`): with kptr_restrict 0, to everyone when
/// perf_event_paranoid is 1 or lower and to CAP_SYSLOG otherwise; with 1,
/// to CAP_SYSLOG only; with 2 or more, to no one.
fn symbols_finding(
    visible: bool,
    kptr: Option<i64>,
    paranoid: Option<i64>,
    cap_syslog: bool,
) -> (Level, String) {
    let show = |name: &str, value: Option<i64>| match value {
        Some(v) => format!("kernel.{name} = {v}"),
        None => format!("kernel.{name} unreadable"),
    };
    let kptr_text = show("kptr_restrict", kptr);
    if visible {
        return (
            Level::Ok,
            format!("kernel symbols readable in /proc/kallsyms ({kptr_text})"),
        );
    }
    match kptr {
        Some(k) if k >= 2 => (
            Level::Fix,
            format!(
                "kernel addresses hidden from every user, root too ({kptr_text}): kernel frames stay unnamed; `sysctl kernel.kptr_restrict=1` shows them to root"
            ),
        ),
        _ if cap_syslog => (
            Level::Fix,
            format!(
                "kernel addresses hidden though this process has CAP_SYSLOG ({kptr_text}): in a container, run bpfprof in the host's user namespace"
            ),
        ),
        Some(0) if paranoid.is_some_and(|p| p >= 2) => (
            Level::Warn,
            format!(
                "kernel addresses hidden from this user ({kptr_text}, {}): bpfprof run as root (CAP_SYSLOG) names kernel frames; `sysctl kernel.perf_event_paranoid=1` would show them to every user",
                show("perf_event_paranoid", paranoid)
            ),
        ),
        _ => (
            Level::Warn,
            format!(
                "kernel addresses hidden from this user ({kptr_text}): bpfprof run as root (CAP_SYSLOG) names kernel frames"
            ),
        ),
    }
}

pub(super) fn check_tracefs(f: &mut Findings) {
    let root = unsafe { libc::geteuid() } == 0;
    if !tracefs_mounted() {
        f.warn(if root {
            format!("tracefs not mounted: bpfprof mounts it at {TRACEFS} when it starts")
        } else {
            format!(
                "tracefs not mounted: bpfprof mounts it at {TRACEFS} when run as root (or, as root: mount -t tracefs tracefs {TRACEFS})"
            )
        });
        return;
    }
    match std::fs::File::open(TRACEPOINT_FORMAT) {
        Ok(_) => f.ok(format!(
            "tracefs mounted at {TRACEFS}, tracepoints readable"
        )),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            let owner = std::fs::metadata(TRACEFS)
                .map(|m| format!(" (mode {:04o}, owner uid {})", m.mode() & 0o7777, m.uid()))
                .unwrap_or_default();
            f.warn(format!(
                "tracefs mounted at {TRACEFS}, but this user cannot read it{owner}: bpfprof reads the scheduler's tracepoints there, so run it as root"
            ));
        }
        Err(e) => f.warn(format!(
            "tracefs mounted at {TRACEFS}, but {TRACEPOINT_FORMAT}: {e}"
        )),
    }
}

/// Whether tracefs is mounted at /sys/kernel/tracing, in this mount
/// namespace: from mountinfo, which every user can read, where a look
/// inside the directory may be refused by its mode.
fn tracefs_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|info| info.lines().any(is_tracefs_mount))
}

/// A mountinfo line: `ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - FSTYPE ...`.
fn is_tracefs_mount(line: &str) -> bool {
    let mount_point = line.split(' ').nth(4);
    let fstype = line
        .split_once(" - ")
        .and_then(|(_, rest)| rest.split(' ').next());
    mount_point.is_some_and(|m| Path::new(m) == Path::new(TRACEFS)) && fstype == Some("tracefs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advice_follows_the_kernels_rule() {
        let (level, text) = symbols_finding(true, Some(0), Some(2), true);
        assert_eq!(level, Level::Ok, "{text}");
        // Hidden from a user with kptr_restrict 0: perf_event_paranoid is
        // the cause, and no advice to set kptr_restrict to what it is.
        let (level, text) = symbols_finding(false, Some(0), Some(2), false);
        assert_eq!(level, Level::Warn, "{text}");
        assert!(
            text.contains("perf_event_paranoid=1") && text.contains("as root"),
            "{text}"
        );
        assert!(!text.contains("kptr_restrict="), "{text}");
        let (level, text) = symbols_finding(false, Some(1), Some(2), false);
        assert_eq!(level, Level::Warn, "{text}");
        assert!(!text.contains("sysctl"), "{text}");
        let (level, text) = symbols_finding(false, Some(2), Some(2), true);
        assert_eq!(level, Level::Fix, "{text}");
        assert!(text.contains("kptr_restrict=1"), "{text}");
        let (level, text) = symbols_finding(false, Some(0), Some(1), true);
        assert_eq!(level, Level::Fix, "{text}");
        assert!(
            text.contains("CAP_SYSLOG") && !text.contains("sysctl"),
            "{text}"
        );
    }

    #[test]
    fn addresses_are_shown_when_stext_has_one() {
        let lines = |text: &str| text.lines().map(str::to_string).collect::<Vec<_>>();
        let shown = "0000000000000000 A fixed_percpu_data\n\
                     ffffffff81000000 T _stext\n";
        assert_eq!(stext_shown(lines(shown).into_iter()), Some(true));
        let hidden = "0000000000000000 A fixed_percpu_data\n\
                      0000000000000000 T _stext\n";
        assert_eq!(stext_shown(lines(hidden).into_iter()), Some(false));
        assert_eq!(
            stext_shown(lines("ffffffff81000000 T _text\n").into_iter()),
            None
        );
    }

    #[test]
    fn tracefs_is_found_in_mountinfo() {
        let line = "40 24 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime shared:17 - tracefs tracefs rw";
        assert!(is_tracefs_mount(line));
        let debugfs = "41 24 0:7 / /sys/kernel/debug rw,relatime shared:18 - debugfs debugfs rw";
        assert!(!is_tracefs_mount(debugfs));
        let elsewhere = "42 24 0:12 / /mnt/tracing rw - tracefs tracefs rw";
        assert!(!is_tracefs_mount(elsewhere));
        let optional_fields =
            "40 24 0:12 / /sys/kernel/tracing rw shared:17 master:3 - tracefs tracefs rw";
        assert!(is_tracefs_mount(optional_fields));
    }
}
