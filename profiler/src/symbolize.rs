//! Symbolization: turns drained instruction pointers into named frames in
//! the profile. One blazesym `Symbolizer` serves the whole run (it caches
//! parsed ELF and DWARF per file); each drain makes one batched call for all
//! kernel addresses and one per process for its user addresses, whatever
//! kind of stack (on-CPU, off-CPU, waker) they come from.

use std::collections::{HashMap, HashSet};

use blazesym::{
    Pid,
    symbolize::{
        Input, Symbolized, Symbolizer as Blazesym,
        cache::{self, Cache},
        evict::{self, Evict},
        source::{Kernel, Process, Source},
    },
};

use profiler_common::MAX_STACK_DEPTH;

use crate::{
    cli::Naming,
    drain::{Batch, RawStack, RawStacks},
    procfs,
    profile::{Frame, FrameId, FrameKind, FrameTable, OffState, Profile, StackSite, WakeSite},
};

const EEXIST: i32 = 17;
const ENOMEM: i32 = 12;
const EFAULT: i32 = 14;
const ENOENT: i32 = 2;

pub struct Symbolizer {
    blazesym: Blazesym,
    kernel_threads: HashMap<u32, bool>,
    /// Whether a process's JIT perf map may be read, decided while it is
    /// alive: only maps owned by the process's user are trusted, since
    /// anyone can plant a file in /tmp.
    perf_map_trusted: HashMap<u32, bool>,
    perf_maps_ignored: u64,
    /// Processes whose maps are cached, with how many drains in a row
    /// found them gone.
    cached: HashMap<u32, u8>,
}

/// Frames per address, for one batch: outermost first (inlined last).
type Names = HashMap<u64, Vec<FrameId>>;

impl Default for Symbolizer {
    fn default() -> Self {
        Symbolizer::new(Naming {
            inline: true,
            demangle: true,
        })
    }
}

impl Symbolizer {
    pub fn new(naming: Naming) -> Symbolizer {
        Symbolizer {
            blazesym: Blazesym::builder()
                .enable_code_info(naming.inline)
                .enable_inlined_fns(naming.inline)
                .enable_demangling(naming.demangle)
                .build(),
            kernel_threads: HashMap::new(),
            perf_map_trusted: HashMap::new(),
            perf_maps_ignored: 0,
            cached: HashMap::new(),
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
        for (&tgid, stacks) in &by_process {
            profile.name_process(tgid, || {
                procfs::process_name(tgid).unwrap_or_else(|| main_thread_comm(tgid, stacks))
            });
            for s in stacks {
                profile.name_thread(tgid, s.key.tid, || comm_to_string(&s.key.comm));
            }
            if !self.is_kernel_thread(tgid) {
                user.insert(
                    tgid,
                    self.symbolize_process(tgid, stacks, &mut profile.frames),
                );
            }
        }
        let names = BatchNames { kernel, user };
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
    }

    /// Snapshots a live process's memory maps (and JIT perf map), so its
    /// addresses can be named after it exits. Called when BPF first sees
    /// the process and after each exec; a process already gone is skipped.
    pub fn remember(&mut self, tgid: u32) {
        let mut snapshot = cache::Process::new(Pid::from(tgid));
        snapshot.cache_perf_map = self.perf_map_allowed(tgid);
        if self.blazesym.cache(&Cache::Process(snapshot)).is_ok() {
            self.cached.insert(tgid, 0);
        }
    }

    /// Drops what is cached for processes gone for two drains in a row (the
    /// first drain after an exit may still bring its last samples), so a
    /// run of days with processes coming and going stays the same size.
    pub fn forget_exited(&mut self) {
        let mut gone = Vec::new();
        for (&tgid, absent) in self.cached.iter_mut() {
            if procfs::exists(tgid) {
                *absent = 0;
            } else {
                *absent += 1;
                if *absent >= 2 {
                    gone.push(tgid);
                }
            }
        }
        for tgid in gone {
            self.cached.remove(&tgid);
            self.kernel_threads.remove(&tgid);
            self.perf_map_trusted.remove(&tgid);
            let _ = self
                .blazesym
                .evict(&Evict::Process(evict::Process::new(Pid::from(tgid))));
        }
    }

    fn perf_map_allowed(&mut self, tgid: u32) -> bool {
        if let Some(&trusted) = self.perf_map_trusted.get(&tgid) {
            return trusted;
        }
        let Some(trusted) = procfs::perf_map_trusted(tgid) else {
            return false; // gone before we could check: do not read it
        };
        if !trusted {
            self.perf_maps_ignored += 1;
        }
        self.perf_map_trusted.insert(tgid, trusted);
        trusted
    }

    /// JIT perf maps left unread because another user owned them, since
    /// the last call.
    pub fn take_perf_maps_ignored(&mut self) -> u64 {
        std::mem::take(&mut self.perf_maps_ignored)
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

    fn symbolize_kernel(&self, stacks: &[&RawStacks], table: &mut FrameTable) -> Names {
        let addrs = unique_lookup_addrs(stacks.iter().map(|s| &s.kernel));
        let source = Source::Kernel(Kernel::default());
        let results = self
            .blazesym
            .symbolize(&source, Input::AbsAddr(&addrs))
            .unwrap_or_default();
        let mut names = Names::new();
        for (addr, result) in addrs.iter().zip(results) {
            let ids = match result {
                Symbolized::Sym(sym) => vec![table.intern(Frame {
                    name: clean(&sym.name),
                    module: None,
                    kind: FrameKind::Kernel,
                })],
                Symbolized::Unknown(_) => vec![table.intern(Frame {
                    name: format!("[unknown {addr:#x}]"),
                    module: None,
                    kind: FrameKind::Kernel,
                })],
            };
            names.insert(*addr, ids);
        }
        names
    }

    fn symbolize_process(
        &mut self,
        tgid: u32,
        stacks: &[&RawStacks],
        table: &mut FrameTable,
    ) -> Names {
        let addrs = unique_lookup_addrs(stacks.iter().map(|s| &s.user));
        let alive = procfs::exists(tgid);
        if alive {
            // Refresh the snapshot: libraries may have been loaded since.
            self.remember(tgid);
        }
        let mut source = Process::new(Pid::from(tgid));
        source.perf_map = self.perf_map_allowed(tgid);
        // map_files needs a live process; after exit the cached paths serve.
        source.map_files = alive;
        let results = self
            .blazesym
            .symbolize(&Source::Process(source), Input::AbsAddr(&addrs))
            .unwrap_or_default();
        let mut mappings = None;
        let mut names = Names::new();
        for (i, addr) in addrs.iter().enumerate() {
            let ids = match results.get(i) {
                Some(Symbolized::Sym(sym)) => {
                    let path = sym.module.as_deref().map(|m| m.to_string_lossy());
                    let module = path.as_deref().map(file_name);
                    if let (Some(name), Some(path)) = (&module, &path) {
                        table.note_module_path(name, path);
                    }
                    let mut ids = vec![table.intern(Frame {
                        name: clean(&sym.name),
                        module: module.clone(),
                        kind: FrameKind::User,
                    })];
                    ids.extend(sym.inlined.iter().map(|inlined| {
                        table.intern(Frame {
                            name: clean(&inlined.name),
                            module: module.clone(),
                            kind: FrameKind::Inlined,
                        })
                    }));
                    ids
                }
                _ => {
                    let mappings = mappings.get_or_insert_with(|| procfs::mappings(tgid));
                    let mapping = procfs::find_mapping(mappings, *addr);
                    vec![table.intern(Frame {
                        name: mapping.map_or_else(|| "[unknown]".into(), |m| m.describe(*addr)),
                        module: mapping.map(|m| file_name(&m.path)),
                        kind: FrameKind::Unknown,
                    })]
                }
            };
            names.insert(*addr, ids);
        }
        names
    }
}

/// Frame 0 is where the sample landed; every other frame is a return
/// address, whose call instruction is the byte before it. Looking up
/// `ip - 1` names the caller's line and inlining correctly, as perf does.
fn lookup_addrs(ips: &[u64]) -> impl Iterator<Item = u64> + '_ {
    ips.iter()
        .enumerate()
        .map(|(i, &ip)| if i == 0 { ip } else { ip.saturating_sub(1) })
}

fn unique_lookup_addrs<'a>(stacks: impl Iterator<Item = &'a RawStack>) -> Vec<u64> {
    let mut seen = HashSet::new();
    stacks
        .flat_map(|stack| lookup_addrs(stack.frames()))
        .filter(|addr| seen.insert(*addr))
        .collect()
}

/// The names of one batch: kernel addresses, and user addresses per process.
struct BatchNames {
    kernel: Names,
    user: HashMap<u32, Names>,
}

impl BatchNames {
    /// The frames of a thread's stacks, outermost first: user, then kernel.
    /// `samples` is set for on-CPU samples, whose losses are counted.
    fn site(&self, stacks: &RawStacks, profile: &mut Profile, samples: Option<u64>) -> StackSite {
        let mut site = StackSite {
            tgid: stacks.key.tgid,
            tid: stacks.key.tid,
            ..StackSite::default()
        };
        let pseudo = |site: &mut StackSite, profile: &mut Profile, name: &str| {
            site.push(profile.frames.intern(Frame::pseudo(name)), 0);
        };
        if matches!(stacks.kernel, RawStack::KernelNames(_)) {
            pseudo(&mut site, profile, "[blocked since before start]");
        }
        let user = self.user.get(&stacks.key.tgid);
        let truncated = [&stacks.user, &stacks.kernel]
            .iter()
            .any(|s| s.frames().len() >= MAX_STACK_DEPTH);
        if truncated {
            pseudo(&mut site, profile, "[truncated]");
        }
        match &stacks.user {
            RawStack::Frames(ips) => push_named(&mut site, ips, user),
            // Kernel threads have no user stack.
            RawStack::Failed(EFAULT) if user.is_none() => {}
            RawStack::Failed(EFAULT) => {
                if let Some(count) = samples {
                    profile.losses.user_stack_missing += count;
                }
                pseudo(&mut site, profile, "[missing user stack]");
            }
            RawStack::Failed(ENOENT) => {}
            other => site.push(loss_frame(other, profile), 0),
        }
        match &stacks.kernel {
            RawStack::Frames(ips) => push_named(&mut site, ips, Some(&self.kernel)),
            RawStack::KernelNames(names) => {
                for name in names.iter().rev() {
                    let frame = profile.frames.intern(Frame {
                        name: clean(name),
                        module: None,
                        kind: FrameKind::Kernel,
                    });
                    site.push(frame, 0);
                }
            }
            // The sample landed in user mode: there is no kernel stack.
            RawStack::Failed(EFAULT) => {}
            other => site.push(loss_frame(other, profile), 0),
        }
        if site.frames.is_empty() {
            pseudo(&mut site, profile, "[no stack]");
        }
        if let Some(count) = samples {
            count_quality(&site.frames, truncated, count, profile);
        }
        site
    }
}

/// Counts an on-CPU sample's truncation and unnamed frames (per module).
fn count_quality(frames: &[FrameId], truncated: bool, count: u64, profile: &mut Profile) {
    let losses = &mut profile.losses;
    losses.samples += count;
    if truncated {
        losses.truncated_stacks += count;
    }
    let mut modules: Vec<&str> = frames
        .iter()
        .map(|&id| profile.frames.get(id))
        .filter(|f| f.kind == FrameKind::Unknown)
        .map(|f| f.module.as_deref().unwrap_or("[no file]"))
        .collect();
    if modules.is_empty() {
        return;
    }
    losses.samples_with_unknown_frames += count;
    modules.sort_unstable();
    modules.dedup();
    for module in modules {
        *losses
            .unknown_frames_by_module
            .entry(module.to_string())
            .or_default() += count;
    }
}

/// Appends the frames of a leaf-first stack, outermost first, each with
/// the address the kernel recorded for it.
fn push_named(site: &mut StackSite, ips: &[u64], names: Option<&Names>) {
    let Some(names) = names else { return };
    let addrs: Vec<u64> = lookup_addrs(ips).collect();
    for (ip, addr) in ips.iter().zip(addrs).rev() {
        for &frame in names.get(&addr).into_iter().flatten() {
            site.push(frame, *ip);
        }
    }
}

/// A pseudo-frame standing where a stack could not be recorded.
fn loss_frame(stack: &RawStack, profile: &mut Profile) -> FrameId {
    let name = match stack {
        RawStack::Failed(EEXIST) => "[stack collision]".to_string(),
        RawStack::Failed(ENOMEM) => "[stack map full]".to_string(),
        RawStack::Failed(errno) => format!("[stack error {errno}]"),
        RawStack::Lost => {
            profile.losses.stacks_lost_in_drain += 1;
            "[lost stack]".to_string()
        }
        RawStack::Frames(_) | RawStack::KernelNames(_) => {
            unreachable!("only failed stacks get a loss frame")
        }
    };
    profile.frames.intern(Frame::pseudo(&name))
}

fn main_thread_comm(tgid: u32, stacks: &[&RawStacks]) -> String {
    let stack = stacks
        .iter()
        .find(|s| s.key.tid == tgid)
        .or(stacks.first())
        .expect("a process has at least one stack");
    comm_to_string(&stack.key.comm)
}

pub fn comm_to_string(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Folded stacks use `;` between frames and one line per stack.
fn clean(name: &str) -> String {
    name.replace([';', '\n', '\r'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drain::RawSample;
    use profiler_common::StackKey;

    #[inline(never)]
    fn a_named_function_of_ours() -> u64 {
        std::hint::black_box(a_named_function_of_ours as *const () as usize as u64)
    }

    fn sample_with_user_stack(ips: Vec<u64>) -> RawSample {
        let mut key = StackKey {
            tgid: std::process::id(),
            tid: std::process::id(),
            ..StackKey::default()
        };
        key.comm[..4].copy_from_slice(b"test");
        RawSample {
            stacks: RawStacks {
                key,
                user: RawStack::Frames(ips),
                kernel: RawStack::Failed(EFAULT),
            },
            count: 3,
        }
    }

    fn batch(on_cpu: Vec<RawSample>) -> Batch {
        Batch {
            on_cpu,
            ..Batch::default()
        }
    }

    #[test]
    fn return_addresses_are_looked_up_one_byte_earlier() {
        let addrs: Vec<u64> = lookup_addrs(&[100, 200, 300]).collect();
        assert_eq!(addrs, vec![100, 199, 299]);
    }

    #[test]
    fn names_a_function_of_this_process() {
        let addr = a_named_function_of_ours();
        let mut symbolizer = Symbolizer::default();
        let mut profile = Profile::default();
        symbolizer.add_batch(
            batch(vec![sample_with_user_stack(vec![addr + 1])]),
            &mut profile,
        );
        let (site, count) = profile.on_cpu.iter().next().unwrap();
        assert_eq!(*count, 3);
        let frame = profile.frames.get(site.frames[0]);
        assert!(frame.name.contains("a_named_function_of_ours"), "{frame:?}");
        assert_eq!(frame.kind, FrameKind::User);
        assert!(
            frame.module.as_deref().unwrap_or("").starts_with("bpfprof"),
            "{frame:?}"
        );
    }

    #[test]
    fn losses_become_pseudo_frames_and_are_counted() {
        let mut sample = sample_with_user_stack(vec![]);
        sample.stacks.user = RawStack::Failed(EFAULT);
        sample.stacks.kernel = RawStack::Failed(EEXIST);
        let mut profile = Profile::default();
        Symbolizer::default().add_batch(batch(vec![sample]), &mut profile);
        let site = profile.on_cpu.keys().next().unwrap();
        let names: Vec<&str> = site
            .frames
            .iter()
            .map(|&f| profile.frames.get(f).name.as_str())
            .collect();
        assert_eq!(names, ["[missing user stack]", "[stack collision]"]);
        assert_eq!(profile.losses.user_stack_missing, 3);
    }

    #[test]
    fn off_cpu_stacks_and_wakers_are_named_too() {
        let addr = a_named_function_of_ours();
        let blocked = sample_with_user_stack(vec![addr + 1]).stacks;
        let mut waker = blocked.clone();
        waker.key.tid += 1;
        waker.key.comm = *b"waker\0\0\0\0\0\0\0\0\0\0\0";
        let off = crate::drain::RawOffCpu {
            stacks: blocked,
            state: 0,
            us: 500,
        };
        let wake = crate::drain::RawWake {
            blocked: off.clone(),
            waker,
        };
        let mut profile = Profile::default();
        let batch = Batch {
            off_cpu: vec![off],
            wakes: vec![wake],
            ..Batch::default()
        };
        Symbolizer::default().add_batch(batch, &mut profile);
        let (site, us) = profile.off_cpu.iter().next().unwrap();
        assert_eq!((*us, site.state), (500, OffState::Sleeping));
        assert!(
            profile
                .frames
                .get(site.site.frames[0])
                .name
                .contains("a_named_function_of_ours")
        );
        let (wake, us) = profile.wakes.iter().next().unwrap();
        assert_eq!((*us, wake.waker_name.as_str()), (500, "waker"));
        assert_eq!(profile.threads.len(), 2);
    }

    #[test]
    fn stacks_at_the_depth_limit_are_marked_truncated_and_counted() {
        let addr = a_named_function_of_ours();
        let deep = sample_with_user_stack(vec![addr + 1; MAX_STACK_DEPTH]);
        let shallow = sample_with_user_stack(vec![addr + 1; 3]);
        let mut profile = Profile::default();
        Symbolizer::default().add_batch(batch(vec![deep, shallow]), &mut profile);
        let truncated: Vec<_> = profile
            .on_cpu
            .keys()
            .filter(|site| profile.frames.get(site.frames[0]).name == "[truncated]")
            .collect();
        assert_eq!(truncated.len(), 1, "only the 127-frame stack is cut");
        assert_eq!(profile.losses.truncated_stacks, 3);
        assert_eq!(profile.losses.samples, 6);
        assert_eq!(profile.losses.samples_with_unknown_frames, 0);
    }

    #[test]
    fn comms_stop_at_the_first_nul() {
        assert_eq!(comm_to_string(b"bash\0\0\0\0"), "bash");
        assert_eq!(comm_to_string(b"sixteen-chars-xx"), "sixteen-chars-xx");
    }
}
