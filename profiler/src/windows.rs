//! Which profile the capture adds to: the run's, or in continuous mode
//! (`--window`) the open window's. Each window's profile is written to
//! DIR/windows/NNNNNN-<start>/ when it closes, the oldest of the windows
//! this run wrote beyond `--keep` are removed, and the window is merged
//! into the whole-run profile. When pushing (`push`), each window is also
//! handed to the backends as it closes, and the window files are written
//! only when --output was named. In `bpfprof top` every interval is a
//! window, shown by the live view (`live`) and not written.

use std::{
    cell::LazyCell,
    collections::VecDeque,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result};

use crate::{
    cli::{Config, RenderArgs},
    live::View,
    meta::{self, PushReport, RunMeta},
    output::{self, Render, dir::OutDir},
    profile::Profile,
    push::Pusher,
    status::Status,
};

/// The run's profile and, in continuous mode, the open window's.
pub(crate) struct Profiles {
    run: Profile,
    windows: Option<Windows>,
}

impl Profiles {
    /// Creates DIR/windows/ in continuous mode.
    pub(crate) fn new(out: Option<&OutDir>, config: &Config) -> Result<Profiles> {
        Ok(Profiles {
            run: Profile::default(),
            windows: config
                .window
                .map(|len| Windows::new(out, config, len))
                .transpose()?,
        })
    }

    /// The profile what is drained now goes to: the open window's in
    /// continuous mode, else the run's.
    pub(crate) fn current(&mut self) -> &mut Profile {
        match &mut self.windows {
            Some(windows) => &mut windows.profile,
            None => &mut self.run,
        }
    }

    /// True when the open window is to close at this drain.
    pub(crate) fn window_due(&self, interval: Duration) -> bool {
        self.windows.as_ref().is_some_and(|w| w.due(interval))
    }

    /// Writes the open window, merges it into the run's profile and opens
    /// the next.
    pub(crate) fn close_window(&mut self, config: &Config) {
        if let Some(windows) = &mut self.windows {
            self.run.merge_collapsed(windows.close(config));
        }
    }

    /// Hands the live view each window from now on.
    pub(crate) fn attach_view(&mut self, view: View) {
        if let Some(windows) = &mut self.windows {
            windows.view = Some(view);
        }
    }

    /// Gives the terminal back (before the run's last messages).
    pub(crate) fn close_view(&mut self) {
        if let Some(view) = self.windows.as_mut().and_then(|w| w.view.take()) {
            view.close();
        }
    }

    /// Redraws the status line with the counts so far.
    pub(crate) fn show(&self, status: &Status) {
        status.update(&self.run, self.windows.as_ref().map(|w| &w.profile));
    }

    /// The whole run's profile, the last window closed and pushed.
    pub(crate) fn finish(mut self, config: &Config) -> Finished {
        let mut finished = Finished {
            profile: Profile::default(),
            failed_writes: 0,
            push: Vec::new(),
        };
        if let Some(mut windows) = self.windows.take() {
            self.run.merge_collapsed(windows.close(config));
            finished.failed_writes = windows.failed;
            finished.push = windows.pusher.map(Pusher::finish).unwrap_or_default();
        }
        finished.profile = self.run;
        finished
    }
}

/// What a run's profiles came to.
pub(crate) struct Finished {
    pub(crate) profile: Profile,
    /// Window files that could not be written (each said so on stderr).
    pub(crate) failed_writes: usize,
    /// What each backend was sent.
    pub(crate) push: Vec<PushReport>,
}

struct Windows {
    length: Duration,
    keep: Option<usize>,
    /// DIR/windows/, when window files are written.
    dir: Option<OutDir>,
    pusher: Option<Pusher>,
    /// `bpfprof top`'s view, shown every window (an interval long).
    view: Option<View>,
    /// When the first window opened: when sampling started.
    first_opened: Instant,
    index: u64,
    /// The windows this run wrote, oldest first: `--keep` removes only
    /// these, never what else is in DIR/windows/.
    written: VecDeque<Written>,
    /// Files and directories that could not be written (each said so on
    /// stderr).
    failed: usize,
    /// The open window: its profile, and when it started.
    profile: Profile,
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
    fn new(out: Option<&OutDir>, config: &Config, length: Duration) -> Result<Windows> {
        let dir = out
            .filter(|_| config.window_files)
            .map(|out| {
                out.subdir("windows")
                    .with_context(|| format!("creating {}", out.path().join("windows").display()))
            })
            .transpose()?;
        let pusher = config
            .push
            .as_ref()
            .map(|push| Pusher::start(push, length))
            .transpose()?;
        Ok(Windows {
            length,
            keep: config.keep,
            dir,
            pusher,
            view: None,
            first_opened: Instant::now(),
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
    fn due(&self, interval: Duration) -> bool {
        self.opened.elapsed() + interval / 2 >= self.length
    }

    /// Writes and pushes the open window and starts the next; returns its
    /// profile, to be merged into the run's. A window that cannot be
    /// written is named on stderr and the capture goes on.
    fn close(&mut self, config: &Config) -> Profile {
        // The next window opens where this one ends, not once it is
        // written: windows tile the run without gaps.
        let (closed, closed_at) = (Instant::now(), SystemTime::now());
        let elapsed = closed - self.opened;
        // Read once (it reads /proc) for the files and the push alike, and
        // not at all for a window only shown (`top`).
        let opened_at = self.opened_at;
        let meta = LazyCell::new(|| RunMeta::of_run(config, opened_at, elapsed));
        let profile = std::mem::take(&mut self.profile);
        if let Some(windows_dir) = &self.dir {
            let name = format!("{:06}-{}", self.index, meta::timestamp(self.opened_at));
            match windows_dir.new_subdir(&name) {
                Ok(dir) => self.write(&dir, config, &profile, &meta),
                Err(e) => {
                    let path = windows_dir.path().join(&name);
                    eprintln!("bpfprof: error: creating {}: {e}", path.display());
                    self.failed += 1;
                }
            }
            self.prune();
        }
        if let Some(view) = &self.view {
            view.show(&profile, closed - self.first_opened);
        }
        if let Some(pusher) = &mut self.pusher {
            pusher.push(&profile, &meta, self.opened_at, config.off_cpu.is_some());
        }
        self.index += 1;
        self.opened = closed;
        self.opened_at = closed_at;
        profile
    }

    fn write(&mut self, dir: &OutDir, config: &Config, profile: &Profile, meta: &RunMeta) {
        let mut render = Render::new(config, self.opened_at);
        let quiet = RenderArgs {
            json: false,
            ..config.render.clone()
        };
        render.args = &quiet;
        let rendered = output::write_all(dir, meta, profile, &render);
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
        let (Some(keep), Some(windows_dir)) = (self.keep, &self.dir) else {
            return;
        };
        while self.written.len() > keep {
            let Some(old) = self.written.pop_front() else {
                break;
            };
            // Left in place, not a failed output: the run's files are whole.
            if let Err(e) = windows_dir.remove_subdir(&old.name, old.identity, &old.files) {
                let path = windows_dir.path().join(&old.name);
                eprintln!("bpfprof: warning: --keep left {}: {e}", path.display());
            }
        }
    }
}
