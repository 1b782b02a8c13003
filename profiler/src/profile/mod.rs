//! The profile model: interned frames; on-CPU samples, off-CPU time and
//! waker time per (thread, stack); the processes and threads seen; and the
//! losses counted. Symbolization fills it; analysis and the renderers only
//! read it.

mod losses;
mod printable;

use std::collections::{BTreeMap, HashMap};

pub(crate) use losses::Losses;
use printable::make_printable;
pub(crate) use printable::printable;

/// What the JIT perf maps cost the run, by cause, since the symbolizer
/// last handed them over (see `Losses::add_perf_map_losses`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PerfMapLosses {
    /// Maps not used: owned by another user, or not a regular file.
    pub(crate) ignored: u64,
    /// Lines that did not parse.
    pub(crate) lines_skipped: u64,
    /// Maps larger than the bound: only their start was read.
    pub(crate) cut: u64,
}

/// Index into [`FrameTable`].
pub type FrameId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrameKind {
    User,
    /// A function inlined into the user frame below it (from DWARF).
    Inlined,
    Kernel,
    /// A user address no symbol covers: named `[module+0xoffset]`, or
    /// `[unknown]` when it is in no file.
    Unknown,
    /// Not a function: a marker such as `[truncated]` or `[lost stack]`.
    Pseudo,
    /// A Python function, named `function (file.py:line)`; its module is
    /// the file's name (the whole path in `FrameTable::module_paths`).
    Python,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    pub name: String,
    /// File name of the binary or library (not the whole path).
    pub module: Option<String>,
    pub kind: FrameKind,
}

impl Frame {
    pub(crate) fn pseudo(name: &str) -> Frame {
        Frame {
            name: name.to_string(),
            module: None,
            kind: FrameKind::Pseudo,
        }
    }

    /// A Python frame's function and line, from its name `function
    /// (file.py:line)`.
    pub(crate) fn python_source(&self) -> Option<(&str, u32)> {
        if self.kind != FrameKind::Python {
            return None;
        }
        let (function, place) = self.name.rsplit_once(" (")?;
        let line = place.strip_suffix(')')?.rsplit_once(':')?.1.parse().ok()?;
        Some((function, line))
    }
}

/// Every distinct frame once, so stacks are short vectors of ids. Names
/// and modules are stored printable (see `printable`).
#[derive(Debug, Default)]
pub struct FrameTable {
    frames: Vec<Frame>,
    ids: HashMap<Frame, FrameId>,
    /// The full path of each module (frames keep only its file name).
    module_paths: BTreeMap<String, String>,
    /// The GNU build id of each module that has one, in hex, read while
    /// the run could still reach the file its frames were named from.
    build_ids: BTreeMap<String, String>,
}

impl FrameTable {
    pub fn intern(&mut self, mut frame: Frame) -> FrameId {
        make_printable(&mut frame.name);
        if let Some(module) = &mut frame.module {
            make_printable(module);
        }
        if let Some(&id) = self.ids.get(&frame) {
            return id;
        }
        let id = self.frames.len() as FrameId;
        self.frames.push(frame.clone());
        self.ids.insert(frame, id);
        id
    }

    pub(crate) fn get(&self, id: FrameId) -> &Frame {
        &self.frames[id as usize]
    }

    pub(crate) fn all(&self) -> &[Frame] {
        &self.frames
    }

    pub(crate) fn note_module_path(&mut self, name: &str, path: &str) {
        let name = printable(name);
        if !self.module_paths.contains_key(name.as_ref()) {
            let path = printable(path).into_owned();
            self.module_paths.insert(name.into_owned(), path);
        }
    }

    /// Whether a module's path is noted already (its frames are stored by
    /// its printable name).
    pub(crate) fn knows_module(&self, name: &str) -> bool {
        self.module_paths.contains_key(printable(name).as_ref())
    }

    /// Notes a module's build id (hex), the first one given.
    pub(crate) fn note_build_id(&mut self, name: &str, build_id: &str) {
        let name = printable(name).into_owned();
        let build_id = printable(build_id).into_owned();
        self.build_ids.entry(name).or_insert(build_id);
    }

    /// The build id of a module, by its (printable) file name.
    pub(crate) fn build_id(&self, name: &str) -> Option<&str> {
        self.build_ids.get(name).map(String::as_str)
    }

    /// Modules seen, by file name, with their full paths.
    pub(crate) fn module_paths(&self) -> &BTreeMap<String, String> {
        &self.module_paths
    }
}

/// A stack as counted: which thread, and its frames outermost first
/// (user frames, then kernel frames).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct StackSite {
    pub tgid: u32,
    pub tid: u32,
    pub frames: Vec<FrameId>,
    /// The instruction address of each frame, as the kernel recorded it
    /// (return addresses for callers); inlined frames share their caller's,
    /// pseudo-frames have 0. Kept for pprof's locations.
    pub pcs: Vec<u64>,
}

impl StackSite {
    pub(crate) fn push(&mut self, frame: FrameId, pc: u64) {
        self.frames.push(frame);
        self.pcs.push(pc);
    }
}

/// Why a thread was off-CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum OffState {
    /// S: waiting for an event, a lock, a timer, a socket.
    Sleeping,
    /// D: mostly disk and other I/O.
    Uninterruptible,
    /// R: runnable, waiting for a CPU.
    Preempted,
    /// Stopped, traced, parked.
    Other,
}

impl OffState {
    pub(crate) const ALL: [OffState; 4] = [
        OffState::Sleeping,
        OffState::Uninterruptible,
        OffState::Preempted,
        OffState::Other,
    ];

    pub(crate) fn from_bpf(state: u32) -> OffState {
        match state {
            profiler_common::state::SLEEPING => OffState::Sleeping,
            profiler_common::state::UNINTERRUPTIBLE => OffState::Uninterruptible,
            profiler_common::state::PREEMPTED => OffState::Preempted,
            _ => OffState::Other,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            OffState::Sleeping => "sleeping",
            OffState::Uninterruptible => "uninterruptible",
            OffState::Preempted => "preempted",
            OffState::Other => "other",
        }
    }

    /// The pseudo-frame that ends an off-CPU stack: why it waited.
    pub(crate) fn frame(self) -> String {
        format!("[{}]", self.name())
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Microseconds per off-CPU state, indexed by `OffState::index`.
pub(crate) type StateTimes = [u64; 4];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProcessInfo {
    /// The process name (its main thread's comm), the root frame of its stacks.
    pub(crate) name: String,
    pub(crate) samples: u64,
    pub(crate) off_us: StateTimes,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ThreadInfo {
    pub(crate) tgid: u32,
    /// The thread's own comm.
    pub(crate) name: String,
    pub(crate) samples: u64,
    pub(crate) off_us: StateTimes,
}

/// An off-CPU stack and why it waited.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct OffCpuSite {
    pub(crate) site: StackSite,
    pub(crate) state: OffState,
}

/// A blocked stack and the thread (and stack) that woke it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct WakeSite {
    pub(crate) blocked: StackSite,
    pub(crate) waker: StackSite,
    /// The waker thread's comm.
    pub(crate) waker_name: String,
}

#[derive(Debug, Default)]
pub struct Profile {
    pub frames: FrameTable,
    /// On-CPU samples.
    pub on_cpu: HashMap<StackSite, u64>,
    /// Off-CPU microseconds.
    pub(crate) off_cpu: HashMap<OffCpuSite, u64>,
    /// Off-CPU microseconds by waker (`--wakers`).
    pub(crate) wakes: HashMap<WakeSite, u64>,
    pub(crate) processes: BTreeMap<u32, ProcessInfo>,
    pub(crate) threads: BTreeMap<u32, ThreadInfo>,
    pub(crate) losses: Losses,
}

impl Profile {
    pub fn add(&mut self, site: StackSite, count: u64) {
        if let Some(process) = self.processes.get_mut(&site.tgid) {
            process.samples += count;
        }
        if let Some(thread) = self.threads.get_mut(&site.tid) {
            thread.samples += count;
        }
        *self.on_cpu.entry(site).or_default() += count;
    }

    pub(crate) fn add_off_cpu(&mut self, site: StackSite, state: OffState, us: u64) {
        if let Some(process) = self.processes.get_mut(&site.tgid) {
            process.off_us[state.index()] += us;
        }
        if let Some(thread) = self.threads.get_mut(&site.tid) {
            thread.off_us[state.index()] += us;
        }
        *self.off_cpu.entry(OffCpuSite { site, state }).or_default() += us;
    }

    pub(crate) fn add_wake(&mut self, mut site: WakeSite, us: u64) {
        make_printable(&mut site.waker_name);
        *self.wakes.entry(site).or_default() += us;
    }

    /// Records a process name (made printable) the first time the process
    /// is seen.
    pub fn name_process(&mut self, tgid: u32, name: impl FnOnce() -> String) {
        self.processes.entry(tgid).or_insert_with(|| ProcessInfo {
            name: printable(&name()).into_owned(),
            ..ProcessInfo::default()
        });
    }

    /// Records a thread (its name made printable) the first time it is seen.
    pub(crate) fn name_thread(&mut self, tgid: u32, tid: u32, name: impl FnOnce() -> String) {
        self.threads.entry(tid).or_insert_with(|| ThreadInfo {
            tgid,
            name: printable(&name()).into_owned(),
            ..ThreadInfo::default()
        });
    }

    pub(crate) fn total_samples(&self) -> u64 {
        self.on_cpu.values().sum()
    }

    /// Adds a window's profile to this one. Threads and processes are
    /// collapsed by process name (the first pid seen stands for all), and
    /// addresses dropped (address randomization gives every new process
    /// other ones; the windows keep them), so a run of days with processes
    /// coming and going stays the same size.
    pub(crate) fn merge_collapsed(&mut self, other: Profile) {
        let ids: Vec<FrameId> = other
            .frames
            .all()
            .iter()
            .map(|f| self.frames.intern(f.clone()))
            .collect();
        for (name, path) in other.frames.module_paths() {
            self.frames.note_module_path(name, path);
        }
        for (name, build_id) in &other.frames.build_ids {
            self.frames.note_build_id(name, build_id);
        }
        let mut pid_of: HashMap<u32, u32> = HashMap::new();
        for (&tgid, info) in &other.processes {
            let existing = self
                .processes
                .iter()
                .find(|(_, p)| p.name == info.name)
                .map(|(&pid, _)| pid);
            let pid = existing.unwrap_or(tgid);
            self.name_process(pid, || info.name.clone());
            self.name_thread(pid, pid, || info.name.clone());
            pid_of.insert(tgid, pid);
        }
        let remap = |site: StackSite| {
            let pid = pid_of.get(&site.tgid).copied().unwrap_or(site.tgid);
            StackSite {
                tgid: pid,
                tid: pid,
                pcs: vec![0; site.frames.len()],
                frames: site.frames.iter().map(|&f| ids[f as usize]).collect(),
            }
        };
        for (site, n) in other.on_cpu {
            self.add(remap(site), n);
        }
        for (off, us) in other.off_cpu {
            self.add_off_cpu(remap(off.site), off.state, us);
        }
        for (wake, us) in other.wakes {
            let site = WakeSite {
                blocked: remap(wake.blocked),
                waker: remap(wake.waker),
                waker_name: wake.waker_name,
            };
            self.add_wake(site, us);
        }
        self.losses.add(&other.losses);
    }

    pub(crate) fn process_name(&self, tgid: u32) -> &str {
        self.processes
            .get(&tgid)
            .map_or("[unknown process]", |p| p.name.as_str())
    }
}

#[cfg(test)]
mod tests;
