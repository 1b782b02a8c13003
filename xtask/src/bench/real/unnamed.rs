//! Samples with an unnamed frame, counted the same way in bpfprof's folded
//! stacks and in `perf script`'s output: a sample counts when any frame of
//! its stack, kernel or user, is one the tool could not name. Both tools
//! write such a frame as `[unknown]`; bpfprof writes `[libfoo.so+0x1a2b]`
//! where it knows the file; a bare hexadecimal address counts too. Pseudo
//! frames that mark a stack not recorded whole (`[truncated]`, `[missing
//! user stack]`...) are not unnamed frames. The idle task and the
//! profiler's own process are left out, as bpfprof leaves them out in BPF.

use std::collections::BTreeMap;

/// Samples, those with an unnamed frame, and both per process name.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub samples: u64,
    pub unnamed: u64,
    /// Per process name: (samples with an unnamed frame, samples).
    pub by_process: BTreeMap<String, (u64, u64)>,
}

impl Tally {
    fn add(&mut self, process: &str, count: u64, unnamed: bool) {
        self.samples += count;
        let entry = self.by_process.entry(process.to_string()).or_default();
        entry.1 += count;
        if unnamed {
            self.unnamed += count;
            entry.0 += count;
        }
    }

    /// Adds another run's counts.
    pub fn merge(&mut self, other: &Tally) {
        self.samples += other.samples;
        self.unnamed += other.unnamed;
        for (process, (unnamed, samples)) in &other.by_process {
            let entry = self.by_process.entry(process.clone()).or_default();
            entry.0 += unnamed;
            entry.1 += samples;
        }
    }

    pub fn percent(&self) -> f64 {
        self.unnamed as f64 * 100.0 / self.samples.max(1) as f64
    }

    /// The processes with the most samples with an unnamed frame, with
    /// those and all their samples.
    pub fn top(&self, n: usize) -> Vec<(String, (u64, u64))> {
        let mut v: Vec<_> = self
            .by_process
            .iter()
            .filter(|(_, counts)| counts.0 > 0)
            .map(|(p, counts)| (p.clone(), *counts))
            .collect();
        v.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

/// Whether a frame's name says the tool could not name it.
pub(super) fn is_unnamed(frame: &str) -> bool {
    let name = frame
        .strip_suffix("_[k]")
        .or_else(|| frame.strip_suffix("_[i]"))
        .unwrap_or(frame);
    if name == "[unknown]" {
        return true;
    }
    if name.starts_with('[') && name.ends_with(']') && name.contains("+0x") {
        return true;
    }
    let hex = name.strip_prefix("0x").unwrap_or(name);
    hex.len() >= 6 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// bpfprof's on-cpu.folded: `process;outermost;...;innermost count`.
pub(super) fn folded(text: &str) -> Tally {
    let mut tally = Tally::default();
    for (stack, count) in crate::bench::run::folded_stacks(text) {
        let mut frames = stack.split(';');
        let process = frames.next().unwrap_or("");
        tally.add(process, count, frames.any(is_unnamed));
    }
    tally
}

/// Addresses from here up are not frames but perf's markers: the
/// context markers, and -1 where a DWARF walk ended (the end of the
/// stack copy), printed as `ffffffffffffffff [unknown]`. Counting them
/// would count stacks recorded part way, which bpfprof marks
/// `[truncated]`, as unnamed.
const PERF_MARKERS: u64 = 0xffff_ffff_ffff_f000;

/// `perf script -F comm,pid,tid,ip,sym,dso`: a header line per sample
/// (`comm pid/tid`, the name may hold spaces), then one indented line per
/// frame (`ip symbol (dso)`, the symbol may hold spaces), a blank line
/// after. Samples of the idle task (pid 0) and of `skip_pid` are left out.
pub(super) fn perf_script(text: &str, skip_pid: u32) -> Tally {
    let mut tally = Tally::default();
    // The sample being read: its process, whether it counts, unnamed.
    let mut current: Option<(String, bool, bool)> = None;
    let mut flush = |current: &mut Option<(String, bool, bool)>| {
        if let Some((comm, counts, unnamed)) = current.take()
            && counts
        {
            tally.add(&comm, 1, unnamed);
        }
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            flush(&mut current);
            let (comm, ids) = line
                .trim_end()
                .rsplit_once(char::is_whitespace)
                .unwrap_or(("", line));
            let pid: Option<u32> = ids.split('/').next().and_then(|p| p.parse().ok());
            let counts = pid.is_some_and(|p| p != 0 && p != skip_pid);
            current = Some((comm.trim().to_string(), counts, false));
            continue;
        }
        let Some((ip, rest)) = line.trim().split_once(char::is_whitespace) else {
            continue;
        };
        if u64::from_str_radix(ip, 16).is_ok_and(|ip| ip >= PERF_MARKERS) {
            continue;
        }
        let symbol = rest.rsplit_once(" (").map_or(rest, |(s, _)| s).trim();
        if let Some(sample) = &mut current {
            sample.2 |= is_unnamed(symbol);
        }
    }
    flush(&mut current);
    tally
}
