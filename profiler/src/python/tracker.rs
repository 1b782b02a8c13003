//! Which processes BPF walks Python frames in: each process is inspected
//! when BPF first sees it, after each exec and when its maps change; a
//! CPython found is given to BPF (`PYTHON_PROCESSES`). A process caught
//! too early (its libraries not mapped yet right after its exec, or its
//! interpreter not initialised) is tried again soon, every few
//! milliseconds for a while, then at each drain. One that cannot be
//! walked is kept with its reason for the Quality block. Exited processes
//! are forgotten.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use profiler_common::python::PythonProcess;

use super::process::{Interpreter, inspect};
use crate::{bpf::Collector, procfs};

/// How often, and how many times, a process caught too early is tried
/// again before it is left to the drains.
const SOON: Duration = Duration::from_millis(10);
const SOON_TRIES: u8 = 50;
/// Drains a CPython not initialised yet is tried again at after that.
const DRAIN_TRIES: u8 = 20;

#[derive(Default)]
pub(crate) struct Tracker {
    /// Processes BPF walks, with their minor version (3.x).
    walked: HashMap<u32, u32>,
    /// Processes to try again soon: tries left.
    soon: HashMap<u32, u8>,
    /// CPython not initialised after that: drains left.
    not_ready: HashMap<u32, u8>,
    /// When `soon` is due.
    soon_at: Option<Instant>,
    /// Python processes not walked since the last `take_not_walked`:
    /// `name (pid N)`, and the version and why.
    unsupported: BTreeMap<String, String>,
    /// Processes reported not walkable: each once.
    reported: HashSet<u32>,
}

impl Tracker {
    /// A process that exec'd: what was known of its old image is dropped,
    /// and it is inspected anew. Its minor version if it is walked now.
    pub(crate) fn on_exec(&mut self, collector: &mut Collector, tgid: u32) -> Option<u32> {
        if self.walked.remove(&tgid).is_some() {
            let _ = collector.remove_python_processes(&[tgid]);
        }
        self.soon.remove(&tgid);
        self.not_ready.remove(&tgid);
        self.reported.remove(&tgid);
        self.inspect(collector, tgid)
    }

    /// A process BPF saw first, or whose maps changed (a library loaded
    /// since: an interpreter mapped after the exec, or embedded and loaded
    /// late): inspected unless it is walked already. One waited for is
    /// inspected now too: its maps changing may be what it waited for.
    pub(crate) fn on_seen(&mut self, collector: &mut Collector, tgid: u32) -> Option<u32> {
        if self.walked.contains_key(&tgid) {
            return None;
        }
        self.inspect(collector, tgid)
    }

    /// Inspects `tgid`: its minor version when it is walked from now on.
    /// A process that may not have mapped its libraries or started its
    /// interpreter yet is tried again soon.
    fn inspect(&mut self, collector: &mut Collector, tgid: u32) -> Option<u32> {
        match inspect(tgid) {
            Interpreter::Python(process) => {
                self.soon.remove(&tgid);
                return self.walk(collector, tgid, &process);
            }
            // Only an interpreter, by its name, is waited for.
            Interpreter::NotPython if looks_like_python(tgid) => self.try_soon(tgid),
            Interpreter::NotPython => {}
            Interpreter::NotReady => self.try_soon(tgid),
            Interpreter::Unsupported { version, reason } => {
                self.soon.remove(&tgid);
                self.not_walked(tgid, &version, &reason);
            }
        }
        None
    }

    /// Gives BPF the process's layout: its minor version once it is walked.
    fn walk(
        &mut self,
        collector: &mut Collector,
        tgid: u32,
        process: &PythonProcess,
    ) -> Option<u32> {
        collector.set_python_process(tgid, process).ok()?;
        self.walked.insert(tgid, process.minor);
        Some(process.minor)
    }

    fn try_soon(&mut self, tgid: u32) {
        self.soon.entry(tgid).or_insert(SOON_TRIES);
        self.soon_at.get_or_insert_with(|| Instant::now() + SOON);
    }

    /// When the processes caught too early are due to be tried again.
    pub(crate) fn soon_at(&self) -> Option<Instant> {
        self.soon_at
    }

    /// Tries again the processes caught too early; those walked from now
    /// on, with their minor versions.
    pub(crate) fn retry_soon(&mut self, collector: &mut Collector) -> Vec<(u32, u32)> {
        self.soon_at = None;
        let mut walked = Vec::new();
        for (tgid, tries) in std::mem::take(&mut self.soon) {
            let found = inspect(tgid);
            match found {
                Interpreter::Python(process) => {
                    walked.extend(self.walk(collector, tgid, &process).map(|m| (tgid, m)));
                }
                Interpreter::Unsupported { version, reason } => {
                    self.not_walked(tgid, &version, &reason);
                }
                _ if tries > 1 && procfs::exists(tgid) => {
                    self.soon.insert(tgid, tries - 1);
                }
                Interpreter::NotReady if procfs::exists(tgid) => {
                    self.not_ready.insert(tgid, DRAIN_TRIES);
                }
                _ => {}
            }
        }
        if !self.soon.is_empty() {
            self.soon_at = Some(Instant::now() + SOON);
        }
        walked
    }

    /// At each drain: the interpreters not initialised before are tried
    /// again (those walked now are returned, with their minor versions),
    /// and the processes that exited forgotten.
    pub(crate) fn on_drain(&mut self, collector: &mut Collector) -> Vec<(u32, u32)> {
        let mut walked = Vec::new();
        for (tgid, tries) in std::mem::take(&mut self.not_ready) {
            match inspect(tgid) {
                Interpreter::Python(process) => {
                    walked.extend(self.walk(collector, tgid, &process).map(|m| (tgid, m)));
                }
                Interpreter::Unsupported { version, reason } => {
                    self.not_walked(tgid, &version, &reason);
                }
                Interpreter::NotReady if tries > 1 => {
                    self.not_ready.insert(tgid, tries - 1);
                }
                Interpreter::NotReady => {
                    self.not_walked(tgid, "CPython", "its interpreter did not finish starting");
                }
                Interpreter::NotPython => {}
            }
        }
        let gone = procfs::exited(self.walked.keys().copied());
        if !gone.is_empty() {
            let _ = collector.remove_python_processes(&gone);
            for tgid in gone {
                self.walked.remove(&tgid);
            }
        }
        self.not_ready.retain(|&tgid, _| procfs::exists(tgid));
        self.reported.retain(|&tgid| procfs::exists(tgid));
        walked
    }

    fn not_walked(&mut self, tgid: u32, version: &str, reason: &str) {
        if !self.reported.insert(tgid) {
            return;
        }
        let name = procfs::process_name(tgid).unwrap_or_else(|| "?".into());
        self.unsupported.insert(
            format!("{name} (pid {tgid})"),
            format!("{version}: {reason}"),
        );
    }

    /// The Python processes found not walkable since the last call, each
    /// with its version and why (for the Quality block).
    pub(crate) fn take_not_walked(&mut self) -> BTreeMap<String, String> {
        std::mem::take(&mut self.unsupported)
    }
}

/// Whether a process runs an interpreter by the name of its executable
/// (`python3.12`, `python3`): only those are waited for after an exec.
fn looks_like_python(tgid: u32) -> bool {
    procfs::process_name(tgid).is_some_and(|name| name.starts_with("python"))
}
