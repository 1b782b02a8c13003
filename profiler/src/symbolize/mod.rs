//! Symbolization: turns drained instruction pointers into named frames in
//! the profile. One blazesym `Symbolizer` serves the whole run (it caches
//! parsed ELF and DWARF per file); each drain makes one batched call for all
//! kernel addresses and one per process for its user addresses, whatever
//! kind of stack (on-CPU, off-CPU, waker) they come from (`kernel`, `user`;
//! JIT code through `perf_map`). `sites` turns the named addresses into the
//! profile's stack sites; `resident` gives back, after each batch, the pages
//! of the files blazesym keeps mapped.

mod build_id;
mod demangle;
mod kallsyms;
mod kernel;
mod perf_map;
mod python;
mod resident;
mod sites;
mod user;

pub(crate) use sites::comm_to_string;
use sites::{BatchNames, clean, file_name, main_thread_comm};

use std::{
    cell::OnceCell,
    collections::{HashMap, HashSet},
    path::PathBuf,
};

use blazesym::{
    Pid,
    symbolize::{
        Input, Symbolizer as Blazesym,
        cache::{self, Cache},
        evict::{self, Evict},
        source::{Process, Source},
    },
};

use profiler_common::{image_is_older, python::PYTHON_FRAME_TAG};

use crate::{
    cli::Naming,
    drain::{Batch, RawStack, RawStacks},
    procfs,
    profile::{FrameId, OffState, PerfMapLosses, Profile, WakeSite},
    python::names::PythonNames,
};

const EEXIST: i32 = 17;
const ENOMEM: i32 = 12;
const EFAULT: i32 = 14;
const ENOENT: i32 = 2;

pub struct Symbolizer {
    blazesym: Blazesym,
    /// The core kernel's symbols (see `kallsyms`), found at the first
    /// kernel address.
    core_text: OnceCell<Option<kallsyms::CoreText>>,
    kernel_threads: HashMap<u32, bool>,
    /// JIT perf maps, read by us and not by blazesym (see `perf_map`).
    perf_maps: perf_map::PerfMaps,
    /// Processes whose maps are cached, with how many drains in a row
    /// found them gone, and the /proc/PID/map_files paths blazesym opened
    /// for them: it keeps a resolver per path until told to evict it.
    cached: HashMap<u32, CachedProcess>,
    /// Names of Python processes' frames (see `crate::python::names`).
    python: PythonNames,
    /// Whether names are demangled: here, not by blazesym, which would
    /// leave no trace of the symbol as the binary spells it.
    demangle: bool,
}

#[derive(Default)]
struct CachedProcess {
    drains_gone: u8,
    map_files: HashSet<PathBuf>,
    /// The mappings read at the last snapshot, to name unknown addresses
    /// by file without reading /proc/PID/maps again.
    mappings: Vec<procfs::Mapping>,
    /// Its name at the last snapshot, for naming it after it exits.
    name: Option<String>,
    /// Its binaries were opened through map_files while it ran, because
    /// some cannot be reached by path: name it through them after exit.
    binaries_opened: bool,
    /// Its image, as its newest process event gave it: user stacks of an
    /// older one ran code that the maps read now no longer hold.
    image: Option<u16>,
}

/// Frames per address, for one batch: outermost first (inlined last),
/// each with the source line it was at (0 where unknown).
type Names = HashMap<u64, Vec<(FrameId, u32)>>;

/// Python frames per their two words (code object, identity and
/// position), for one process and batch.
type PythonIds = HashMap<(u64, u64), FrameId>;

impl Default for Symbolizer {
    fn default() -> Self {
        Symbolizer::new(Naming {
            inline: true,
            demangle: true,
        })
    }
}

impl Symbolizer {
    pub(crate) fn new(naming: Naming) -> Symbolizer {
        Symbolizer {
            blazesym: Blazesym::builder()
                .enable_code_info(naming.inline)
                .enable_inlined_fns(naming.inline)
                .enable_demangling(false)
                .build(),
            core_text: OnceCell::new(),
            kernel_threads: HashMap::new(),
            perf_maps: perf_map::PerfMaps::default(),
            cached: HashMap::new(),
            python: PythonNames::default(),
            demangle: naming.demangle,
        }
    }

    /// Names every stack of a drained batch and adds it to the profile.
    pub fn add_batch(&mut self, batch: Batch, profile: &mut Profile) {
        let all_stacks: Vec<&RawStacks> = batch
            .on_cpu
            .iter()
            .map(|s| &s.stacks)
            .chain(batch.off_cpu.iter().map(|o| &o.stacks))
            .chain(
                batch
                    .wakes
                    .iter()
                    .flat_map(|w| [&w.blocked.stacks, &w.waker]),
            )
            .collect();
        let kernel = self.symbolize_kernel(&all_stacks, &mut profile.frames);
        let mut by_process: HashMap<u32, Vec<&RawStacks>> = HashMap::new();
        for stacks in &all_stacks {
            by_process.entry(stacks.key.tgid).or_default().push(stacks);
        }
        let mut user: HashMap<u32, Names> = HashMap::new();
        let mut images = HashMap::new();
        let mut python = HashMap::new();
        for (&tgid, stacks) in &by_process {
            let image = self.cached.get(&tgid).and_then(|c| c.image);
            if let Some(image) = image {
                images.insert(tgid, image);
            }
            // Stacks of an image since replaced are not named by the maps
            // of the one that replaced it (nor do they name its threads).
            let (current, before_exec): (Vec<&RawStacks>, Vec<&RawStacks>) =
                stacks.iter().partition(|s| !ran_before_exec(s, image));
            // Gone: the name it had at its last snapshot (after its last
            // exec), else a comm its main thread's stacks carry.
            let snapshot_name = self.cached.get(&tgid).and_then(|c| c.name.clone());
            profile.name_process(tgid, || {
                procfs::process_name(tgid)
                    .or(snapshot_name)
                    .unwrap_or_else(|| main_thread_comm(tgid, stacks))
            });
            for s in current.iter().chain(&before_exec) {
                profile.name_thread(tgid, s.key.tid, || comm_to_string(&s.key.comm));
            }
            if !current.is_empty() && !self.is_kernel_thread(tgid) {
                user.insert(
                    tgid,
                    self.symbolize_process(tgid, &current, &mut profile.frames),
                );
                let ids = self.name_python(tgid, &current, &mut profile.frames);
                if !ids.is_empty() {
                    python.insert(tgid, ids);
                }
            }
        }
        let names = BatchNames {
            kernel,
            user,
            images,
            python,
        };
        for sample in &batch.on_cpu {
            let site = names.site(&sample.stacks, profile, Some(sample.count));
            profile.add(site, sample.count);
        }
        for off in &batch.off_cpu {
            let site = names.site(&off.stacks, profile, None);
            profile.add_off_cpu(site, OffState::from_bpf(off.state), off.us);
        }
        for wake in &batch.wakes {
            let blocked = names.site(&wake.blocked.stacks, profile, None);
            let waker = names.site(&wake.waker, profile, None);
            let waker_name = comm_to_string(&wake.waker.key.comm);
            profile.add_wake(
                WakeSite {
                    blocked,
                    waker,
                    waker_name,
                },
                wake.blocked.us,
            );
        }
        resident::release_mapped_files();
    }

    /// Snapshots a live process's memory maps (and JIT perf map), so its
    /// addresses can be named after it exits. Called when BPF first sees
    /// the process, after each exec, and at each drain that has its
    /// samples. A process with no maps (gone, or exited and not yet reaped
    /// by its parent) keeps the snapshot it had: taking one now would
    /// replace it with nothing. Maps unchanged since are not snapshotted
    /// again.
    pub fn remember(&mut self, tgid: u32) {
        self.perf_maps.refresh(tgid);
        let mappings = procfs::mappings(tgid);
        // Known from here on (kernel threads too), so that `forget_exited`
        // drops all it keeps about it once it is gone.
        let cached = self.cached.entry(tgid).or_default();
        if mappings.is_empty() {
            return;
        }
        cached.drains_gone = 0;
        cached.name = procfs::process_name(tgid).or(cached.name.take());
        if cached.mappings == mappings {
            return;
        }
        let mut snapshot = cache::Process::new(Pid::from(tgid));
        snapshot.cache_perf_map = false;
        if self.blazesym.cache(&Cache::Process(snapshot)).is_err() {
            return;
        }
        // Exiting is for good: maps read after blazesym's snapshot were
        // there before it, so that snapshot is not empty.
        if procfs::mappings(tgid).is_empty() {
            // It exited in between: blazesym's snapshot may hold nothing.
            // Ours, read before, still names addresses by file.
            let _ = self
                .blazesym
                .evict(&Evict::Process(evict::Process::new(Pid::from(tgid))));
        }
        cached.mappings = mappings;
        for m in &cached.mappings {
            cached.map_files.insert(m.map_files_path(tgid));
        }
        self.open_unreachable_binaries(tgid);
    }

    /// A binary deleted or in another mount namespace can only be opened
    /// while the process lives: open them all now (pinned in blazesym's
    /// cache), in case it exits before the next drain.
    fn open_unreachable_binaries(&mut self, tgid: u32) {
        let Some(cached) = self.cached.get_mut(&tgid) else {
            return;
        };
        let executable = || cached.mappings.iter().filter(|m| m.executable);
        if executable().any(|m| m.path.starts_with('/') && !m.reachable(tgid)) {
            for m in executable() {
                let path = m.map_files_path(tgid);
                let _ = self.blazesym.cache(&Cache::Elf(cache::Elf::new(path)));
            }
            // Their debug info (found through each binary) too.
            let starts: Vec<u64> = executable().map(|m| m.start).collect();
            let source = Source::Process(Process::new(Pid::from(tgid)));
            let _ = self.blazesym.symbolize(&source, Input::AbsAddr(&starts));
            cached.binaries_opened = true;
        }
    }

    /// The image `tgid` has according to a process event: the newest one
    /// seen, since events of one process come in the order it made them.
    pub(crate) fn note_image(&mut self, tgid: u32, image: u16) {
        let cached = self.cached.entry(tgid).or_default();
        if cached.image.is_none_or(|now| !image_is_older(image, now)) {
            cached.image = Some(image);
        }
    }

    /// After an exec the old image's maps are void: they are dropped before
    /// the new ones are read, so that a process that exits before they can
    /// be read is left unnamed rather than named from the wrong binary.
    pub(crate) fn remember_exec(&mut self, tgid: u32) {
        let _ = self
            .blazesym
            .evict(&Evict::Process(evict::Process::new(Pid::from(tgid))));
        if let Some(cached) = self.cached.get_mut(&tgid) {
            cached.mappings.clear();
            cached.binaries_opened = false;
        }
        self.remember(tgid);
    }

    /// Drops what is cached for processes gone for two drains in a row (the
    /// first drain after an exit may still bring its last samples), so a
    /// run of days with processes coming and going stays the same size.
    pub(crate) fn forget_exited(&mut self) {
        let mut gone = Vec::new();
        for (&tgid, cached) in self.cached.iter_mut() {
            if procfs::exists(tgid) {
                cached.drains_gone = 0;
            } else {
                cached.drains_gone += 1;
                if cached.drains_gone >= 2 {
                    gone.push(tgid);
                }
            }
        }
        for tgid in gone {
            let cached = self.cached.remove(&tgid).unwrap_or_default();
            self.kernel_threads.remove(&tgid);
            self.perf_maps.forget(tgid);
            self.python.forget(tgid);
            let _ = self
                .blazesym
                .evict(&Evict::Process(evict::Process::new(Pid::from(tgid))));
            for path in cached.map_files {
                let _ = self.blazesym.evict(&Evict::Elf(evict::Elf::new(path)));
            }
        }
    }

    /// What reading JIT perf maps cost since the last call.
    pub(crate) fn take_perf_map_losses(&mut self) -> PerfMapLosses {
        self.perf_maps.take_losses()
    }

    fn is_kernel_thread(&mut self, tgid: u32) -> bool {
        if tgid == 0 {
            // The idle task: a wake from an interrupt on an idle CPU.
            return true;
        }
        if let Some(&known) = self.kernel_threads.get(&tgid) {
            return known;
        }
        // A process gone before we looked is counted as a user process.
        let kernel = procfs::is_kernel_thread(tgid).unwrap_or(false);
        self.kernel_threads.insert(tgid, kernel);
        kernel
    }
}

/// Whether a stack's user frames ran in an image older than `current`:
/// a process's code before it exec'd, a forked child's its parent's.
fn ran_before_exec(stacks: &RawStacks, current: Option<u16>) -> bool {
    matches!(
        (stacks.user_image, current),
        (Some(image), Some(current)) if image_is_older(image, current)
    )
}

/// A word of a user stack, leaf first: an instruction address, or a
/// Python frame (two words in the stack: see `profiler_common::python`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    /// The address, and the address to look it up by.
    Native {
        ip: u64,
        lookup: u64,
    },
    Python {
        code: u64,
        meta: u64,
    },
}

/// The words of a stack (Python frames only in a user stack: kernel
/// addresses have the tag's bit set). The first address is where the
/// sample landed; every later one is a return address, whose call
/// instruction is the byte before it: looking up `ip - 1` names the
/// caller's line and inlining correctly, as perf does.
fn words(ips: &[u64], user: bool) -> Vec<Word> {
    let mut words = Vec::with_capacity(ips.len());
    let mut native_seen = false;
    let mut i = 0;
    while i < ips.len() {
        let word = ips[i];
        if user && word & PYTHON_FRAME_TAG != 0 && word != u64::MAX && i + 1 < ips.len() {
            words.push(Word::Python {
                code: word & !PYTHON_FRAME_TAG,
                meta: ips[i + 1],
            });
            i += 2;
            continue;
        }
        let lookup = if native_seen {
            word.saturating_sub(1)
        } else {
            word
        };
        native_seen = true;
        words.push(Word::Native { ip: word, lookup });
        i += 1;
    }
    words
}

fn lookup_addrs(ips: &[u64], user: bool) -> impl Iterator<Item = u64> {
    words(ips, user).into_iter().filter_map(|w| match w {
        Word::Native { lookup, .. } => Some(lookup),
        Word::Python { .. } => None,
    })
}

fn unique_lookup_addrs<'a>(stacks: impl Iterator<Item = &'a RawStack>, user: bool) -> Vec<u64> {
    let mut seen = HashSet::new();
    stacks
        .flat_map(|stack| lookup_addrs(stack.frames(), user))
        .filter(|addr| seen.insert(*addr))
        .collect()
}

#[cfg(test)]
mod tests;
