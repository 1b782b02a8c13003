//! Continuous mode: the run cut into windows. Each window's profile is
//! written to DIR/windows/NNNNNN-<start>/ when it closes, the oldest of the
//! windows this run wrote beyond `--keep` are removed, and the window is
//! merged into the whole-run profile.

use std::{
    collections::VecDeque,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result};

use crate::{cli::Config, meta, output, output::dir::OutDir, profile::Profile};

pub struct Windows {
    length: Duration,
    keep: Option<usize>,
    dir: OutDir,
    index: u64,
    /// The windows this run wrote, oldest first: `--keep` removes only
    /// these, never what else is in DIR/windows/.
    written: VecDeque<Written>,
    /// Files and directories that could not be written (each said so on
    /// stderr).
    pub failed: usize,
    /// The open window: its profile, and when it started.
    pub profile: Profile,
    opened: Instant,
    opened_at: SystemTime,
}

/// A window directory this run created, and what it wrote there.
struct Written {
    name: String,
    identity: (u64, u64),
    files: Vec<String>,
}

impl Windows {
    pub fn new(out: &OutDir, config: &Config, length: Duration) -> Result<Windows> {
        let dir = out
            .subdir("windows")
            .with_context(|| format!("creating {}", out.path().join("windows").display()))?;
        Ok(Windows {
            length,
            keep: config.keep,
            dir,
            index: 0,
            written: VecDeque::new(),
            failed: 0,
            profile: Profile::default(),
            opened: Instant::now(),
            opened_at: SystemTime::now(),
        })
    }

    /// Windows close at the drain nearest their end: with drains every
    /// `interval`, a window is due once less than half an interval is left.
    pub fn due(&self, interval: Duration) -> bool {
        self.opened.elapsed() + interval / 2 >= self.length
    }

    /// Writes the open window and starts the next; returns its profile, to
    /// be merged into the run's. A window that cannot be written is named
    /// on stderr and the capture goes on.
    pub fn close(&mut self, config: &Config) -> Profile {
        let elapsed = self.opened.elapsed();
        let profile = std::mem::take(&mut self.profile);
        let name = format!("{:06}-{}", self.index, meta::timestamp(self.opened_at));
        match self.dir.new_subdir(&name) {
            Ok(dir) => self.write(&dir, config, &profile, elapsed),
            Err(e) => {
                let path = self.dir.path().join(&name);
                eprintln!("bpfprof: error: creating {}: {e}", path.display());
                self.failed += 1;
            }
        }
        self.prune();
        self.index += 1;
        self.opened = Instant::now();
        self.opened_at = SystemTime::now();
        profile
    }

    fn write(&mut self, dir: &OutDir, config: &Config, profile: &Profile, elapsed: Duration) {
        let meta = crate::run_meta(config, self.opened_at, elapsed);
        let mut render = crate::render_options(config, self.opened_at);
        let quiet = crate::cli::RenderArgs {
            json: false,
            ..config.render.clone()
        };
        render.args = &quiet;
        let rendered = output::write_all(dir, &meta, profile, &render);
        self.failed += rendered.failed;
        let name = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        if let (Some(name), Ok(identity)) = (name, dir.identity()) {
            self.written.push_back(Written {
                name,
                identity,
                files: rendered.written,
            });
        }
    }

    /// Keeps the newest `--keep` of the windows this run wrote.
    fn prune(&mut self) {
        let Some(keep) = self.keep else { return };
        while self.written.len() > keep {
            let Some(old) = self.written.pop_front() else {
                break;
            };
            // Left in place, not a failed output: the run's files are whole.
            if let Err(e) = self.dir.remove_subdir(&old.name, old.identity, &old.files) {
                let path = self.dir.path().join(&old.name);
                eprintln!("bpfprof: warning: --keep left {}: {e}", path.display());
            }
        }
    }
}
