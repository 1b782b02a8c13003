//! Saved profiles read back: folded files (ours or any FlameGraph/inferno
//! tool's) and bpfprof output directories, into the profile model, for
//! `diff` and `report`. Malformed input is an error naming file and line.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use crate::profile::{Frame, FrameKind, OffState, Profile, StackSite};

/// Folded stack text to count, as read.
pub type FoldedCounts = BTreeMap<String, u64>;

/// Reads a folded file: `frame;frame;... count` per line; blank lines and
/// `# ` comments are skipped.
pub fn read_folded(path: &Path) -> Result<FoldedCounts> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_folded(&text).map_err(|(line, msg)| anyhow::anyhow!("{}:{line}: {msg}", path.display()))
}

/// Parses folded text; the error is (line number, what is wrong).
pub fn parse_folded(text: &str) -> Result<FoldedCounts, (usize, String)> {
    let mut counts = FoldedCounts::new();
    for (index, line) in text.lines().enumerate() {
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
        let count: u64 = count.parse().map_err(|_| {
            (
                index + 1,
                format!("`{}` is not a sample count", shorten(count)),
            )
        })?;
        if stack.trim().is_empty() {
            return Err((index + 1, "a count without a stack".to_string()));
        }
        *counts.entry(stack.to_string()).or_default() += count;
    }
    Ok(counts)
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text.to_string()
    }
}

/// A folded file given directly, or `name` inside a bpfprof output directory.
pub fn folded_path(path: &Path, name: &str) -> Result<PathBuf> {
    if path.is_dir() {
        let inside = path.join(name);
        if !inside.is_file() {
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
pub struct Rebuilder<'a> {
    pub profile: Profile,
    pids: &'a HashMap<String, u32>,
    modules: &'a HashMap<String, String>,
    synthetic: HashMap<String, u32>,
}

impl<'a> Rebuilder<'a> {
    pub fn new(
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
    pub fn add_on_cpu(&mut self, folded: &FoldedCounts) {
        for (stack, &count) in folded {
            let site = self.site(stack.split(';'));
            self.profile.add(site, count);
        }
    }

    /// Adds off-CPU microseconds; each stack ends in its state frame.
    pub fn add_off_cpu(&mut self, folded: &FoldedCounts) {
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
mod tests {
    use super::*;

    #[test]
    fn folded_lines_parse_and_errors_name_the_line() {
        let counts =
            parse_folded("# comment\napp;main;work 3\n\napp;main;work 2\napp;main 1\n").unwrap();
        assert_eq!(counts["app;main;work"], 5);
        assert_eq!(counts.len(), 2);
        assert_eq!(
            parse_folded("app;main 1\napp;main\n").unwrap_err(),
            (2, "expected `stack count`, found `app;main`".into())
        );
        assert_eq!(parse_folded("app;main x\n").unwrap_err().0, 1);
        assert!(
            parse_folded(" 5\n")
                .unwrap_err()
                .1
                .contains("without a stack")
        );
    }

    #[test]
    fn rebuilt_profiles_keep_frame_kinds_processes_and_states() {
        let pids = HashMap::from([("app".to_string(), 42)]);
        let modules = HashMap::from([("main".to_string(), "app".to_string())]);
        let mut rebuilder = Rebuilder::new(&pids, &modules);
        rebuilder.add_on_cpu(
            &parse_folded("app;main;helper_[i];sys_read_[k] 4\nother;[libx.so+0x10] 1\n").unwrap(),
        );
        rebuilder
            .add_off_cpu(&parse_folded("app;main;schedule_[k];[uninterruptible] 900\n").unwrap());
        let p = rebuilder.profile;
        assert_eq!(p.processes[&42].samples, 4);
        assert_eq!(p.processes[&42].off_us, [0, 900, 0, 0]);
        let (site, _) = p.on_cpu.iter().find(|(s, _)| s.tgid == 42).unwrap();
        let kinds: Vec<FrameKind> = site.frames.iter().map(|&f| p.frames.get(f).kind).collect();
        assert_eq!(
            kinds,
            [FrameKind::User, FrameKind::Inlined, FrameKind::Kernel]
        );
        assert_eq!(p.frames.get(site.frames[0]).module.as_deref(), Some("app"));
        assert_eq!(
            p.processes.values().filter(|p| p.name == "other").count(),
            1
        );
    }
}
