//! Saved profiles read back: folded files (ours or any FlameGraph/inferno
//! tool's) and bpfprof output directories (their report.json as the
//! [`Report`] it was written from), into the profile model, for `diff` and
//! `report`. Malformed input is an error naming file and line.
//! Saved runs may come from anyone: reads are bounded, only regular files
//! are read, names are made printable and counts must add up in 64 bits.

use std::{
    collections::{BTreeMap, HashMap},
    num::IntErrorKind,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use crate::untrusted_file::{self, NotRead};
use crate::{
    output::json::Report,
    profile::{Frame, FrameKind, OffState, Profile, StackSite, printable},
};

/// Folded stack text to count, as read.
pub(crate) type FoldedCounts = BTreeMap<String, u64>;

/// The largest folded file read back. bpfprof's own stay far below it
/// (distinct stacks per run are bounded by its maps, and windows collapse
/// processes); anything larger is not a profile, and reading it whole
/// would cost a few times its size in memory.
pub(crate) const MAX_FOLDED_BYTES: u64 = 1 << 30;
/// The largest report.json read back: it lists at most a few hundred
/// functions and the processes and threads seen; parsed into a JSON tree
/// it takes several times its size.
pub(crate) const MAX_REPORT_BYTES: u64 = 64 << 20;
/// The longest folded line: a whole stack at the deepest bpfprof records,
/// user and kernel, with inlined frames, and long C++ names, fits many
/// times over.
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads a file of a saved run whole. Only a regular file is read (a FIFO
/// would block, a device such as /dev/zero never ends), and at most
/// `limit` bytes. The user named the file, so a link is followed.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
    if !meta.is_file() {
        bail!("{shown}: not a regular file");
    }
    // Non-blocking, should a FIFO take its place after the check.
    let file = untrusted_file::open(path, true).with_context(|| format!("cannot read {shown}"))?;
    let bytes = match untrusted_file::read_whole(file, limit) {
        Ok(bytes) => bytes,
        Err(NotRead::Io(e)) => return Err(e).with_context(|| format!("cannot read {shown}")),
        Err(NotRead::NotRegular(_)) => bail!("{shown}: not a regular file"),
        Err(NotRead::TooLarge(_) | NotRead::Grew) => {
            bail!("{shown}: larger than {} MiB", limit >> 20)
        }
    };
    String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        anyhow::anyhow!("{shown}:{line}: not UTF-8 text")
    })
}

/// Reads DIR/report.json, with the names `report` uses made printable.
pub(crate) fn read_report(dir: &Path) -> Result<Report> {
    let path = dir.join("report.json");
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    if !path.exists() {
        bail!(
            "{}: not a bpfprof output directory (no report.json)",
            dir.display()
        );
    }
    let text = read_bounded(&path, MAX_REPORT_BYTES)?;
    let report: Report = serde_json::from_str(&text).map_err(|err| {
        // serde's message may quote the file: shown printable.
        let why = printable(&err.to_string()).into_owned();
        match err.classify() {
            serde_json::error::Category::Data => {
                anyhow::anyhow!("{}: not a bpfprof report: {why}", path.display())
            }
            _ => anyhow::anyhow!("{}: not valid JSON: {why}", path.display()),
        }
    })?;
    Ok(printable_report(report))
}

fn printable_report(mut report: Report) -> Report {
    let made_printable = |text: &mut String| *text = printable(text).into_owned();
    report.run = report.run.printable();
    for process in &mut report.processes {
        made_printable(&mut process.name);
    }
    for function in &mut report.hot_functions {
        made_printable(&mut function.name);
        made_printable(&mut function.module);
    }
    let by_module = std::mem::take(&mut report.errors.unknown_frames_by_module);
    report.errors.unknown_frames_by_module = by_module
        .into_iter()
        .map(|(module, n)| (printable(&module).into_owned(), n))
        .collect();
    report
}

/// Reads a folded file: `frame;frame;... count` per line; blank lines and
/// `# ` comments are skipped.
pub(crate) fn read_folded(path: &Path) -> Result<FoldedCounts> {
    let text = read_bounded(path, MAX_FOLDED_BYTES)?;
    parse_folded(&text).map_err(|(line, msg)| anyhow::anyhow!("{}:{line}: {msg}", path.display()))
}

/// The most the counts of one file may add up to: pprof, which bpfprof
/// writes, holds values as signed 64-bit numbers. No real profile comes
/// near it (it is 290,000 years in microseconds), so a file past it is
/// damaged or made up; refusing it, rather than clamping, shows no wrong
/// shares as if right. Every sum of a file's counts (a function's total,
/// a process's, the diff's normalized base) then fits in 64 bits.
pub(crate) const MAX_TOTAL: u64 = i64::MAX as u64;

/// Parses folded text; the error is (line number, what is wrong). Stacks
/// are made printable; counts may add up to `MAX_TOTAL`.
pub(crate) fn parse_folded(text: &str) -> Result<FoldedCounts, (usize, String)> {
    let mut counts = FoldedCounts::new();
    let mut sum: u64 = 0;
    for (index, line) in text.lines().enumerate() {
        if line.len() > MAX_LINE_BYTES {
            return Err((
                index + 1,
                format!("line longer than {} MiB", MAX_LINE_BYTES >> 20),
            ));
        }
        let line = line.trim_end();
        if line.is_empty() || line.starts_with("# ") {
            continue;
        }
        let Some((stack, count)) = line.rsplit_once(' ') else {
            return Err((
                index + 1,
                format!("expected `stack count`, found `{}`", shorten(line)),
            ));
        };
        let too_large = || {
            (
                index + 1,
                format!("count too large: the counts add up to more than {MAX_TOTAL}"),
            )
        };
        let count: u64 = count.parse().map_err(|err: std::num::ParseIntError| {
            if *err.kind() == IntErrorKind::PosOverflow {
                too_large()
            } else {
                (
                    index + 1,
                    format!("`{}` is not a sample count", shorten(count)),
                )
            }
        })?;
        if stack.trim().is_empty() {
            return Err((index + 1, "a count without a stack".to_string()));
        }
        sum = sum
            .checked_add(count)
            .filter(|&sum| sum <= MAX_TOTAL)
            .ok_or_else(too_large)?;
        *counts.entry(printable(stack).into_owned()).or_default() += count;
    }
    Ok(counts)
}

/// At most 60 characters of `text`, printable, for an error message.
fn shorten(text: &str) -> String {
    let text = printable(text);
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text.to_string()
    }
}

/// A folded file given directly, or `name` inside a bpfprof output directory.
pub(crate) fn folded_path(path: &Path, name: &str) -> Result<PathBuf> {
    if path.is_dir() {
        let inside = path.join(name);
        // Present but no regular file: `read_bounded` says so.
        if !inside.exists() {
            bail!(
                "{}: not a bpfprof output directory (no {name})",
                path.display()
            );
        }
        return Ok(inside);
    }
    if !path.exists() {
        bail!("{}: no such file or directory", path.display());
    }
    Ok(path.to_path_buf())
}

/// Builds a profile from folded stacks: the root frame is the process,
/// `_[k]` and `_[i]` suffixes give kernel and inlined frames. `ids` names
/// processes by pid where the report knows it; `modules` gives functions
/// their module.
pub(crate) struct Rebuilder<'a> {
    pub(crate) profile: Profile,
    pids: &'a HashMap<String, u32>,
    modules: &'a HashMap<String, String>,
    synthetic: HashMap<String, u32>,
}

impl<'a> Rebuilder<'a> {
    pub(crate) fn new(
        pids: &'a HashMap<String, u32>,
        modules: &'a HashMap<String, String>,
    ) -> Rebuilder<'a> {
        Rebuilder {
            profile: Profile::default(),
            pids,
            modules,
            synthetic: HashMap::new(),
        }
    }

    /// Adds on-CPU samples.
    pub(crate) fn add_on_cpu(&mut self, folded: &FoldedCounts) {
        for (stack, &count) in folded {
            let site = self.site(stack.split(';'));
            self.profile.add(site, count);
        }
    }

    /// Adds off-CPU microseconds; each stack ends in its state frame.
    pub(crate) fn add_off_cpu(&mut self, folded: &FoldedCounts) {
        for (stack, &us) in folded {
            let mut frames: Vec<&str> = stack.split(';').collect();
            let state = match frames.last().copied() {
                Some("[sleeping]") => OffState::Sleeping,
                Some("[uninterruptible]") => OffState::Uninterruptible,
                Some("[preempted]") => OffState::Preempted,
                _ => OffState::Other,
            };
            if frames.len() > 1 && frames.last().is_some_and(|f| f.starts_with('[')) {
                frames.pop();
            }
            let site = self.site(frames.into_iter());
            self.profile.add_off_cpu(site, state, us);
        }
    }

    fn site<'s>(&mut self, mut frames: impl Iterator<Item = &'s str>) -> StackSite {
        let process = frames.next().unwrap_or("[unknown process]").to_string();
        let next = self.synthetic.len() as u32 + 1;
        let tgid = match self.pids.get(&process) {
            Some(&pid) => pid,
            None => *self.synthetic.entry(process.clone()).or_insert(next),
        };
        self.profile.name_process(tgid, || process.clone());
        self.profile.name_thread(tgid, tgid, || process.clone());
        let mut site = StackSite {
            tgid,
            tid: tgid,
            ..StackSite::default()
        };
        for name in frames {
            let frame = self.frame(name);
            site.push(self.profile.frames.intern(frame), 0);
        }
        site
    }

    fn frame(&self, text: &str) -> Frame {
        let (name, kind) = if let Some(name) = text.strip_suffix("_[k]") {
            (name, FrameKind::Kernel)
        } else if let Some(name) = text.strip_suffix("_[i]") {
            (name, FrameKind::Inlined)
        } else if text == "[unknown]" || (text.starts_with('[') && text.contains("+0x")) {
            (text, FrameKind::Unknown)
        } else if text.starts_with('[') && text.ends_with(']') {
            (text, FrameKind::Pseudo)
        } else {
            (text, FrameKind::User)
        };
        let module = match kind {
            FrameKind::User | FrameKind::Inlined => self.modules.get(name).cloned(),
            _ => None,
        };
        Frame {
            name: name.to_string(),
            module,
            kind,
        }
    }
}

#[cfg(test)]
mod tests;
