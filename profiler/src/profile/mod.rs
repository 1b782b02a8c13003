//! The profile model: interned frames; on-CPU samples, off-CPU time and
//! waker time per (thread, stack); the processes and threads seen; and the
//! losses counted. Symbolization fills it; analysis and the renderers only
//! read it.

mod frames;
mod losses;
mod printable;

use std::collections::{BTreeMap, HashMap};

pub(crate) use frames::MappedFile;
pub use frames::{Frame, FrameId, FrameKind, FrameTable};
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
    /// The source line each frame was at, where debug info gives one (0
    /// where not, and past the end when none was given).
    pub lines: Vec<u32>,
}

impl StackSite {
    pub(crate) fn push(&mut self, frame: FrameId, pc: u64) {
        self.push_at_line(frame, pc, 0);
    }

    pub(crate) fn push_at_line(&mut self, frame: FrameId, pc: u64, line: u32) {
        self.frames.push(frame);
        self.pcs.push(pc);
        self.lines.push(line);
    }

    /// The source line of frame `i` (0 when unknown).
    pub(crate) fn line(&self, i: usize) -> u32 {
        self.lines.get(i).copied().unwrap_or(0)
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

#[derive(Debug, Default, Clone)]
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
        self.frames.merge_knowledge(&other.frames, &ids);
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
                lines: site.lines,
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
