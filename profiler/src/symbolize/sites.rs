//! From named addresses to stack sites: user frames then kernel frames,
//! outermost first, with pseudo-frames where a stack could not be recorded,
//! and the quality counts (truncation, unnamed frames) of on-CPU samples;
//! and the names of frames, modules and threads as the outputs show them.

use std::collections::HashMap;

use profiler_common::{Loss, MAX_STACK_DEPTH};

use super::{EEXIST, EFAULT, ENOENT, ENOMEM, Names, PythonIds, Word, ran_before_exec, words};
use crate::{
    drain::{RawStack, RawStacks},
    profile::{Frame, FrameId, FrameKind, Profile, StackSite},
};

/// The names of one batch: kernel addresses, and user addresses per process.
pub(super) struct BatchNames {
    pub(crate) kernel: Names,
    pub(crate) user: HashMap<u32, Names>,
    /// Each process's image now (see `ProcessEvent::image`).
    pub(crate) images: HashMap<u32, u16>,
    /// The Python frames of each process, by their two words.
    pub(crate) python: HashMap<u32, PythonIds>,
}

impl BatchNames {
    /// The frames of a thread's stacks, outermost first: user, then kernel.
    /// `samples` is set for on-CPU samples, whose losses are counted.
    pub(crate) fn site(
        &self,
        stacks: &RawStacks,
        profile: &mut Profile,
        samples: Option<u64>,
    ) -> StackSite {
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
        let too_deep = [&stacks.user, &stacks.kernel]
            .iter()
            .any(|s| s.frames().len() >= MAX_STACK_DEPTH);
        let incomplete = matches!(stacks.user, RawStack::Partial(_));
        if too_deep || incomplete {
            pseudo(&mut site, profile, "[truncated]");
        }
        let current_image = self.images.get(&stacks.key.tgid).copied();
        match &stacks.user {
            // Code of an image since replaced, whose maps are gone: one
            // unnamed frame that says whose it was.
            RawStack::Frames(_) | RawStack::Partial(_)
                if ran_before_exec(stacks, current_image) =>
            {
                let frame = profile.frames.intern(Frame {
                    name: format!("[{} before exec]", comm_to_string(&stacks.key.comm)),
                    module: None,
                    kind: FrameKind::Unknown,
                });
                site.push(frame, 0);
            }
            RawStack::Frames(ips) | RawStack::Partial(ips) => {
                let python = self.python.get(&stacks.key.tgid);
                push_named(&mut site, ips, user, python, true)
            }
            // Kernel threads have no user stack.
            RawStack::Failed(EFAULT) if user.is_none() => {}
            RawStack::Failed(EFAULT) => {
                if let Some(count) = samples {
                    profile.losses[Loss::UserStackMissing] += count;
                }
                pseudo(&mut site, profile, "[missing user stack]");
            }
            RawStack::Failed(ENOENT) => {}
            other => site.push(loss_frame(other, profile), 0),
        }
        match &stacks.kernel {
            RawStack::Frames(ips) => push_named(&mut site, ips, Some(&self.kernel), None, false),
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
            if incomplete {
                profile.losses[Loss::IncompleteUnwinds] += count;
            }
            count_quality(&site.frames, too_deep, count, profile);
        }
        site
    }
}

/// Counts an on-CPU sample's truncation and unnamed frames (per module).
fn count_quality(frames: &[FrameId], truncated: bool, count: u64, profile: &mut Profile) {
    let losses = &mut profile.losses;
    losses.samples += count;
    if truncated {
        losses[Loss::TruncatedStacks] += count;
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
    losses[Loss::UnknownFrames] += count;
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
/// the address the kernel recorded for it (0 for a Python frame).
fn push_named(
    site: &mut StackSite,
    ips: &[u64],
    names: Option<&Names>,
    python: Option<&PythonIds>,
    user: bool,
) {
    for word in words(ips, user).into_iter().rev() {
        match word {
            Word::Native { ip, lookup } => {
                for &(frame, line) in names.and_then(|n| n.get(&lookup)).into_iter().flatten() {
                    site.push_at_line(frame, ip, line);
                }
            }
            Word::Python { code, meta } => {
                if let Some(&frame) = python.and_then(|p| p.get(&(code, meta))) {
                    site.push(frame, 0);
                }
            }
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
            profile.losses[Loss::StacksLostInDrain] += 1;
            "[lost stack]".to_string()
        }
        RawStack::Frames(_) | RawStack::Partial(_) | RawStack::KernelNames(_) => {
            unreachable!("only failed stacks get a loss frame")
        }
    };
    profile.frames.intern(Frame::pseudo(&name))
}

pub(super) fn main_thread_comm(tgid: u32, stacks: &[&RawStacks]) -> String {
    let stack = stacks
        .iter()
        .find(|s| s.key.tid == tgid)
        .or(stacks.first())
        .expect("a process has at least one stack");
    comm_to_string(&stack.key.comm)
}

pub(crate) fn comm_to_string(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

pub(super) fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Folded stacks use `;` between frames and one line per stack.
pub(super) fn clean(name: &str) -> String {
    name.replace([';', '\n', '\r'], "_")
}
