//! Continuous mode: the run cut into windows. Each window's profile is
//! written to DIR/windows/NNNNNN-<start>/ when it closes, the oldest beyond
//! `--keep` are removed, and the window is merged into the whole-run
//! profile.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result};

use crate::{cli::Config, meta, output, profile::Profile};

pub struct Windows {
    length: Duration,
    keep: Option<usize>,
    dir: PathBuf,
    index: u64,
    /// The open window: its profile, and when it started.
    pub profile: Profile,
    opened: Instant,
    opened_at: SystemTime,
}

impl Windows {
    pub fn new(config: &Config, length: Duration) -> Result<Windows> {
        let dir = config.output_dir.join("windows");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Windows {
            length,
            keep: config.keep,
            dir,
            index: 0,
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
    /// be merged into the run's.
    pub fn close(&mut self, config: &Config) -> Result<Profile> {
        let elapsed = self.opened.elapsed();
        let profile = std::mem::take(&mut self.profile);
        let name = format!("{:06}-{}", self.index, meta::timestamp(self.opened_at));
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let meta = crate::run_meta(config, self.opened_at, elapsed);
        let mut render = crate::render_options(config, self.opened_at);
        let quiet = crate::cli::RenderArgs {
            json: false,
            ..config.render.clone()
        };
        render.args = &quiet;
        output::write_all(&dir, &meta, &profile, &render)?;
        crate::ownership::give_to_invoking_user(&self.dir);
        self.prune()?;
        self.index += 1;
        self.opened = Instant::now();
        self.opened_at = SystemTime::now();
        Ok(profile)
    }

    /// Keeps the newest `--keep` window directories.
    fn prune(&self) -> Result<()> {
        let Some(keep) = self.keep else { return Ok(()) };
        let mut windows = window_dirs(&self.dir)?;
        windows.sort();
        let excess = windows.len().saturating_sub(keep);
        for old in &windows[..excess] {
            std::fs::remove_dir_all(old).with_context(|| format!("removing {}", old.display()))?;
        }
        Ok(())
    }
}

fn window_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.is_dir())
        .collect())
}
