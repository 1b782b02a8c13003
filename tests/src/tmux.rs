//! A terminal for `bpfprof top`'s tests: a tmux session of a given size on
//! a server of the tests' own, its screen read with capture-pane and its
//! keys typed with send-keys.

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

/// The tests' tmux server, apart from any the user runs.
const SOCKET: &str = "bpfprof-tests";

pub struct Tmux {
    name: String,
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(["-L", SOCKET])
        .args(args)
        .output()
        .expect("tmux is needed: `cargo xtask test` installs it");
    assert!(
        out.status.success(),
        "tmux {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Tmux {
    /// Runs `command` (a shell command line) in a new `width`x`height`
    /// session; when it ends, the shell says `exited N` and stays.
    pub fn start(name: &str, width: u16, height: u16, command: &str) -> Tmux {
        let _ = Command::new("tmux")
            .args(["-L", SOCKET, "kill-session", "-t", name])
            .output();
        let script = format!("{command}; echo \"exited $?\"; sleep 600");
        tmux(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "sh",
            "-c",
            &script,
        ]);
        Tmux { name: name.into() }
    }

    /// The screen as it is now, a line per row.
    pub fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    /// Types keys, as tmux names them (`q`, `Enter`, `Down`, `Escape`, `C-c`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend_from_slice(keys);
        tmux(&args);
    }

    pub fn resize(&self, width: u16, height: u16) {
        tmux(&[
            "resize-window",
            "-t",
            &self.name,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ]);
    }

    /// A tmux format of the pane, such as `#{alternate_on}`.
    pub fn format(&self, format: &str) -> String {
        tmux(&["display-message", "-p", "-t", &self.name, format])
            .trim()
            .to_string()
    }

    /// The screen once `ready` holds of it; panics, showing the last
    /// screen, when it does not within `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            if started.elapsed() > limit {
                panic!("no {what} within {limit:?}; the screen:\n{screen}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", SOCKET, "kill-session", "-t", &self.name])
            .output();
    }
}
