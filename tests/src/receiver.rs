//! The backends bpfprof pushes to, for the push tests: the receivers of
//! tests/receivers/ (Python, the official OpenTelemetry classes), run with
//! the test venv's Python, each logging one JSON line per request.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// OTLP/HTTP profiles: tests/receivers/otlp_receiver.py.
    Otlp,
    /// Pyroscope's /ingest: tests/receivers/pyroscope_receiver.py.
    Pyroscope,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Otlp => "otlp",
            Backend::Pyroscope => "pyroscope",
        }
    }

    fn script(self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("receivers")
            .join(format!("{}_receiver.py", self.name()))
    }
}

/// The test venv's Python, which `cargo xtask test` makes.
pub fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: `cargo xtask test` installs the test venv (Python with opentelemetry-proto)",
        python.display()
    );
    python
}

/// A receiver process on 127.0.0.1, stopped when dropped. Its request log
/// and stderr are files in the directory it was started with, which
/// outlive restarts: a restarted receiver appends to the same log.
pub struct Receiver {
    backend: Backend,
    args: Vec<String>,
    pub port: u16,
    /// The request log: one JSON line per request.
    pub log: PathBuf,
    stderr: PathBuf,
    child: Option<Child>,
}

/// How long a receiver may take to say it listens (Python and protobuf
/// start in a fraction of a second).
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a stopped receiver may take to finish the requests in flight.
const STOP_LIMIT: Duration = Duration::from_secs(15);

impl Receiver {
    /// Starts a receiver of `backend` on a free port, with `args` (e.g.
    /// `--status 401`, `--tls CERT KEY`), its files in `dir` (made here;
    /// not bpfprof's output directory, which must be new or empty).
    pub fn start(backend: Backend, dir: &Path, args: &[&str]) -> Receiver {
        std::fs::create_dir_all(dir).unwrap();
        let mut receiver = Receiver {
            backend,
            args: args.iter().map(|a| a.to_string()).collect(),
            port: 0,
            log: dir.join(format!("{}-requests.jsonl", backend.name())),
            stderr: dir.join(format!("{}-receiver.stderr", backend.name())),
            child: None,
        };
        receiver.spawn();
        receiver
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&self.stderr)
            .unwrap();
        let mut child = Command::new(python())
            .arg(self.backend.script())
            .args(["--port", &self.port.to_string(), "--out"])
            .arg(&self.log)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting the receiver");
        let stdout = child.stdout.take().unwrap();
        let (said, heard) = mpsc::channel();
        // Reads `listening PORT`, then whatever else comes, to the end.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("listening ") {
                    let _ = said.send(port.trim().parse::<u16>());
                }
            }
        });
        let port = heard.recv_timeout(START_LIMIT);
        let port = match port {
            Ok(Ok(port)) => port,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the {} receiver did not say it listens: {}",
                    self.backend.name(),
                    self.stderr()
                );
            }
        };
        assert!(
            self.port == 0 || self.port == port,
            "restarted on {port}, not {}",
            self.port
        );
        self.port = port;
        self.child = Some(child);
    }

    /// Stops the receiver (SIGTERM: it closes its port, then answers the
    /// requests it has); its port refuses connections from then on.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill has no preconditions; the child is not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let asked = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if asked.elapsed() > STOP_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the receiver did not stop: {}", self.stderr());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again on the same port, with the same arguments.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The requests logged so far, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: {e}: {line}", self.log.display()))
            })
            .collect()
    }

    /// The requests once at least `count` are logged; panics after `limit`.
    pub fn wait_for_requests(&self, count: usize, limit: Duration) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            assert!(
                start.elapsed() < limit,
                "{} of {count} requests after {limit:?}",
                requests.len()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the receiver wrote on stderr (a line per request, and errors).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
pub fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
