//! Facts about the run that every output carries: the machine, the kernel,
//! the settings, the target, when it started and how long it lasted; and
//! the times and names derived from them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::{Config, Target};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RunMeta {
    pub(crate) bpfprof_version: String,
    pub(crate) hostname: String,
    pub(crate) kernel: String,
    pub(crate) cpus: usize,
    pub(crate) freq_hz: u64,
    /// "all processes", "pids 1,2" or "command ./app args".
    pub(crate) target: String,
    /// UTC, RFC 3339.
    pub(crate) start_time: String,
    pub(crate) duration_secs: f64,
    /// Entries per stack map and distinct stacks per interval.
    #[serde(default)]
    pub(crate) stack_map_size: u32,
    #[serde(default)]
    pub(crate) max_stacks: u32,
    /// The exit status of `-- COMMAND` (128 + the signal's number when a
    /// signal ended it); null without a command, or when it had not exited
    /// when the run ended.
    #[serde(default)]
    pub(crate) command_exit_status: Option<i32>,
    /// What each backend was sent; report.json has it at its top level.
    #[serde(skip)]
    pub(crate) push: Vec<PushReport>,
}

/// What one backend was sent, for report.json and the Quality block.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct PushReport {
    pub(crate) backend: String,
    pub(crate) url: String,
    pub(crate) windows_sent: u64,
    /// Not delivered: pushed out of a full spool, or left at exit.
    pub(crate) windows_dropped: u64,
    /// Refused by the backend with a 4xx.
    pub(crate) windows_rejected: u64,
    pub(crate) last_error: Option<String>,
}

impl RunMeta {
    pub(crate) fn new(
        freq_hz: u64,
        target: String,
        started: SystemTime,
        duration: Duration,
    ) -> RunMeta {
        RunMeta {
            bpfprof_version: env!("CARGO_PKG_VERSION").to_string(),
            hostname: read_trimmed("/proc/sys/kernel/hostname")
                .unwrap_or_else(|| "localhost".into()),
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            freq_hz,
            target,
            start_time: utc_rfc3339(started),
            duration_secs: (duration.as_secs_f64() * 1000.0).round() / 1000.0,
            stack_map_size: 0,
            max_stacks: 0,
            command_exit_status: None,
            push: Vec::new(),
        }
        .printable()
    }

    /// The CPU time one sample stands for, in whole nanoseconds: pprof's
    /// period, and what a speedscope sample weighs, so both give one total.
    pub(crate) fn sample_period_ns(&self) -> u64 {
        (1e9 / self.freq_hz as f64).round() as u64
    }

    /// The description of a run of `config` (or of one of its windows).
    pub(crate) fn of_run(config: &Config, started: SystemTime, elapsed: Duration) -> RunMeta {
        RunMeta {
            stack_map_size: config.map_sizes.stack_map,
            max_stacks: config.map_sizes.max_stacks,
            ..RunMeta::new(
                config.freq,
                describe_target(&config.target),
                started,
                elapsed,
            )
        }
    }

    /// The same with its text made printable: the target names a command
    /// (any file name), and a saved report.json may say anything.
    pub(crate) fn printable(mut self) -> RunMeta {
        for text in [
            &mut self.bpfprof_version,
            &mut self.hostname,
            &mut self.kernel,
            &mut self.target,
            &mut self.start_time,
        ] {
            *text = crate::profile::printable(text).into_owned();
        }
        self
    }
}

/// What a run profiles, in words: `all processes`, `pid 1,2`, `command
/// `./app args``.
pub(crate) fn describe_target(target: &Target) -> String {
    match target {
        Target::AllProcesses => "all processes".into(),
        Target::Pids(pids) => {
            let list: Vec<String> = pids.iter().map(u32::to_string).collect();
            format!("pid {}", list.join(","))
        }
        Target::Command(argv) => {
            let words: Vec<String> = argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            format!("command `{}`", words.join(" "))
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    Some(std::fs::read_to_string(path).ok()?.trim().to_string())
}

/// Broken-down calendar time of `time`, in UTC or in the local zone.
fn calendar(time: SystemTime, local: bool) -> libc::tm {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: tm is plain data; the *_r functions only write into it.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if local {
            libc::localtime_r(&secs, &mut tm);
        } else {
            libc::gmtime_r(&secs, &mut tm);
        }
        tm
    }
}

/// Year, month, day, hour, minute, second of `time`.
fn date_time(time: SystemTime, local: bool) -> [i32; 6] {
    let tm = calendar(time, local);
    [
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
    ]
}

pub(crate) fn utc_rfc3339(time: SystemTime) -> String {
    let [y, mo, d, h, mi, s] = date_time(time, false);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `bpfprof-YYYYmmdd-HHMMSS`, local time: the default output directory.
pub(crate) fn default_output_dir_name(time: SystemTime) -> String {
    format!("bpfprof-{}", timestamp(time))
}

/// `YYYYmmdd-HHMMSS`, local time.
pub(crate) fn timestamp(time: SystemTime) -> String {
    let [y, mo, d, h, mi, s] = date_time(time, true);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(utc_rfc3339(t), "2023-11-14T22:13:20Z");
        let name = default_output_dir_name(t);
        assert!(name.starts_with("bpfprof-2023111"), "{name}");
        assert_eq!(name.len(), "bpfprof-YYYYmmdd-HHMMSS".len());
    }
}
