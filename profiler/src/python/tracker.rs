//! Which processes BPF walks Python frames in: each process is inspected
//! when BPF first sees it and after each exec; a CPython found is given to
//! BPF (`PYTHON_PROCESSES`), one not yet initialised is tried again at the
//! next drains, one that cannot be walked is kept with its reason for the
//! Quality block. Exited processes are forgotten.

use std::collections::{BTreeMap, HashMap};

use super::process::{Interpreter, inspect};
use crate::{bpf::Collector, procfs};

/// Drains a process found not yet initialised is tried again at.
const READY_TRIES: u8 = 20;
/// Drains a process found not to be Python is tried again at: right after
/// an exec its libraries are not mapped yet.
const LOADED_TRIES: u8 = 1;

#[derive(Default)]
pub(crate) struct Tracker {
    /// Processes BPF walks, with their minor version (3.x).
    walked: HashMap<u32, u32>,
    /// CPython found before its thread states exist: tries left.
    not_ready: HashMap<u32, u8>,
    /// Processes found not to be Python, maybe too early: tries left.
    not_python: HashMap<u32, u8>,
    /// Python processes not walked: by pid, the version and why.
    unsupported: BTreeMap<u32, (String, String)>,
}

impl Tracker {
    /// A process BPF saw first, or that exec'd: inspected (again). Its
    /// minor version if it is walked from now on.
    pub(crate) fn on_process(&mut self, collector: &mut Collector, tgid: u32) -> Option<u32> {
        if self.walked.remove(&tgid).is_some() {
            let _ = collector.remove_python_processes(&[tgid]);
        }
        self.not_ready.remove(&tgid);
        self.unsupported.remove(&tgid);
        self.not_python.insert(tgid, LOADED_TRIES);
        self.inspect(collector, tgid, READY_TRIES);
        self.minor(tgid)
    }

    /// A process whose maps changed (a library loaded since): inspected
    /// again unless it is walked already (an embedded interpreter loaded
    /// late).
    pub(crate) fn on_maps_changed(&mut self, collector: &mut Collector, tgid: u32) -> Option<u32> {
        if self.walked.contains_key(&tgid) || self.not_ready.contains_key(&tgid) {
            return None;
        }
        self.inspect(collector, tgid, READY_TRIES);
        self.minor(tgid)
    }

    fn inspect(&mut self, collector: &mut Collector, tgid: u32, tries: u8) {
        let result = inspect(tgid);
        if !matches!(result, Interpreter::NotPython) {
            self.not_python.remove(&tgid);
        }
        match result {
            Interpreter::NotPython => {}
            Interpreter::Python(process) => {
                if collector.set_python_process(tgid, &process).is_ok() {
                    self.walked.insert(tgid, process.minor);
                }
            }
            Interpreter::NotReady if tries > 0 => {
                self.not_ready.insert(tgid, tries - 1);
            }
            Interpreter::NotReady => {
                let reason = "its interpreter did not finish starting".to_string();
                self.unsupported.insert(tgid, ("CPython".into(), reason));
            }
            Interpreter::Unsupported { version, reason } => {
                self.unsupported.insert(tgid, (version, reason));
            }
        }
    }

    /// At each drain: the processes not ready before are tried again (those
    /// walked now are returned), and those that exited forgotten.
    pub(crate) fn on_drain(&mut self, collector: &mut Collector) -> Vec<u32> {
        let mut ready = Vec::new();
        for (tgid, tries) in std::mem::take(&mut self.not_python) {
            if tries > 0 {
                self.not_python.insert(tgid, tries - 1);
            }
            self.inspect(collector, tgid, READY_TRIES);
            if self.walked.contains_key(&tgid) {
                ready.push(tgid);
            }
        }
        for (tgid, tries) in std::mem::take(&mut self.not_ready) {
            self.inspect(collector, tgid, tries);
            if self.walked.contains_key(&tgid) {
                ready.push(tgid);
            }
        }
        let gone: Vec<u32> = self
            .walked
            .keys()
            .copied()
            .filter(|&tgid| !procfs::exists(tgid))
            .collect();
        if !gone.is_empty() {
            let _ = collector.remove_python_processes(&gone);
            for tgid in gone {
                self.walked.remove(&tgid);
            }
        }
        self.not_ready.retain(|&tgid, _| procfs::exists(tgid));
        ready
    }

    /// The minor version of a process BPF walks.
    pub(crate) fn minor(&self, tgid: u32) -> Option<u32> {
        self.walked.get(&tgid).copied()
    }

    /// The Python processes not walked, each with its version and reason.
    pub(crate) fn unsupported(&self) -> &BTreeMap<u32, (String, String)> {
        &self.unsupported
    }
}
