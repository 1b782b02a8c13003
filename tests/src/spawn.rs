//! bpfprof started in the background, and waited for until it samples;
//! programs run as an unprivileged user.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use crate::bpfprof_bin;

/// Starts bpfprof in the background (for signal tests).
pub fn spawn_profiler(dir: &Path, args: &[&str]) -> Child {
    Command::new(bpfprof_bin())
        .arg("--output")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting bpfprof")
}

/// A spawned bpfprof that has said it is sampling: its output directory is
/// made and its programs are attached. Its stderr is read on a thread
/// from then on (a pipe left unread could block it).
pub struct Sampling {
    reader: thread::JoinHandle<String>,
}

impl Sampling {
    /// Waits, up to a bound, for `child` (started with a piped stderr) to
    /// say it is sampling; panics with what it said if it exits first.
    pub fn wait(child: &mut Child) -> Sampling {
        use std::io::BufRead;
        let stderr = child.stderr.take().expect("a piped stderr");
        let (said, heard) = std::sync::mpsc::channel();
        let reader = thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("bpfprof: sampling ") {
                    let _ = said.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        if heard.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = child.kill();
            panic!(
                "bpfprof never said it was sampling: {}",
                reader.join().unwrap_or_default()
            );
        }
        Sampling { reader }
    }

    /// Everything bpfprof wrote to stderr, once it has exited.
    pub fn stderr(self) -> String {
        self.reader.join().expect("the stderr reader")
    }
}

/// `program` run as nobody, with no capabilities at all (setpriv, from
/// util-linux).
pub fn as_nobody(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(program);
    command
}
