//! Folded stacks, the format of FlameGraph and inferno: one line per
//! distinct stack, `process;outermost;...;innermost count`. On-CPU counts
//! are samples; off-CPU, wall and waker counts are microseconds.

use std::{collections::BTreeMap, io::Write};

use crate::profile::{Frame, FrameId, FrameKind, Profile, StackSite};

/// Folded stack text to count.
pub type Folded = BTreeMap<String, u64>;

/// On-CPU samples, merged across threads and processes of one name.
pub fn fold(profile: &Profile) -> Folded {
    let mut folded = Folded::new();
    for (site, &count) in &profile.on_cpu {
        *folded.entry(stack_line(profile, site)).or_default() += count;
    }
    folded
}

/// Off-CPU microseconds; each stack ends in its state (`[sleeping]`...).
pub(crate) fn fold_off_cpu(profile: &Profile) -> Folded {
    let mut folded = Folded::new();
    for (site, &us) in &profile.off_cpu {
        let mut line = stack_line(profile, &site.site);
        line.push(';');
        line.push_str(&site.state.frame());
        *folded.entry(line).or_default() += us;
    }
    folded
}

/// On-CPU and off-CPU time in one graph, in microseconds: each on-CPU
/// sample counts `sample_period_us`, and on-CPU stacks end in `[on-cpu]`.
pub(crate) fn fold_wall(profile: &Profile, sample_period_us: f64) -> Folded {
    let mut folded = fold_off_cpu(profile);
    let mut on_cpu: BTreeMap<String, u64> = BTreeMap::new();
    for (site, &samples) in &profile.on_cpu {
        *on_cpu
            .entry(stack_line(profile, site) + ";[on-cpu]")
            .or_default() += samples;
    }
    for (line, samples) in on_cpu {
        let us = (samples as f64 * sample_period_us).round() as u64;
        *folded.entry(line).or_default() += us;
    }
    folded
}

/// Blocked stacks with their wakers, in offwaketime's convention: the
/// blocked stack, a `--` frame, then the waker's stack innermost first,
/// ending in the waker's name.
pub(crate) fn fold_wakers(profile: &Profile) -> Folded {
    let mut folded = Folded::new();
    for (site, &us) in &profile.wakes {
        let mut line = stack_line(profile, &site.blocked);
        line.push_str(";--");
        for &id in site.waker.frames.iter().rev() {
            line.push(';');
            push_frame(&mut line, profile.frames.get(id));
        }
        line.push(';');
        line.push_str(&sanitize(&site.waker_name));
        *folded.entry(line).or_default() += us;
    }
    folded
}

fn stack_line(profile: &Profile, site: &StackSite) -> String {
    let mut line = sanitize(profile.process_name(site.tgid));
    push_frames(&mut line, profile, &site.frames);
    line
}

fn push_frames(line: &mut String, profile: &Profile, frames: &[FrameId]) {
    for &id in frames {
        line.push(';');
        push_frame(line, profile.frames.get(id));
    }
}

/// Kernel frames end in `_[k]` and inlined ones in `_[i]`, the suffixes
/// FlameGraph's and inferno's palettes colour by.
fn push_frame(line: &mut String, frame: &Frame) {
    line.push_str(&frame.name);
    match frame.kind {
        FrameKind::Kernel => line.push_str("_[k]"),
        FrameKind::Inlined => line.push_str("_[i]"),
        FrameKind::User | FrameKind::Python | FrameKind::Unknown | FrameKind::Pseudo => {}
    }
}

/// Process and thread names become single frames.
fn sanitize(name: &str) -> String {
    name.replace([';', ' '], "_")
}

pub(crate) fn lines(folded: &Folded) -> Vec<String> {
    folded
        .iter()
        .map(|(stack, count)| format!("{stack} {count}"))
        .collect()
}

pub(crate) fn write(out: &mut dyn Write, folded: &Folded) -> std::io::Result<()> {
    for line in lines(folded) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{OffState, WakeSite};

    fn user(name: &str) -> Frame {
        Frame {
            name: name.into(),
            module: None,
            kind: FrameKind::User,
        }
    }

    #[test]
    fn folds_user_then_kernel_frames_under_the_process_name() {
        let mut profile = Profile::default();
        profile.name_process(10, || "my app".into());
        let main = profile.frames.intern(user("main"));
        let write = profile.frames.intern(user("write"));
        let inlined = profile.frames.intern(Frame {
            kind: FrameKind::Inlined,
            ..user("helper")
        });
        let sys = profile.frames.intern(Frame {
            kind: FrameKind::Kernel,
            ..user("ksys_write")
        });
        profile.add(
            StackSite {
                tgid: 10,
                tid: 10,
                frames: vec![main, write, sys],
                ..StackSite::default()
            },
            4,
        );
        profile.add(
            StackSite {
                tgid: 10,
                tid: 11,
                frames: vec![main, write, sys],
                ..StackSite::default()
            },
            1,
        );
        profile.add(
            StackSite {
                tgid: 10,
                tid: 10,
                frames: vec![main, inlined],
                ..StackSite::default()
            },
            2,
        );
        let folded = fold(&profile);
        assert_eq!(
            lines(&folded),
            [
                "my_app;main;helper_[i] 2",
                "my_app;main;write;ksys_write_[k] 5"
            ]
        );
    }

    fn off_cpu_profile() -> Profile {
        let mut profile = Profile::default();
        profile.name_process(1, || "app".into());
        let main = profile.frames.intern(user("main"));
        let wait = profile.frames.intern(user("wait"));
        let notify = profile.frames.intern(user("notify"));
        profile.add(
            StackSite {
                tgid: 1,
                tid: 1,
                frames: vec![main],
                ..StackSite::default()
            },
            3,
        );
        let blocked = StackSite {
            tgid: 1,
            tid: 1,
            frames: vec![main, wait],
            ..StackSite::default()
        };
        profile.add_off_cpu(blocked.clone(), OffState::Sleeping, 700);
        profile.add_off_cpu(blocked.clone(), OffState::Uninterruptible, 50);
        let waker = StackSite {
            tgid: 1,
            tid: 2,
            frames: vec![main, notify],
            ..StackSite::default()
        };
        profile.add_wake(
            WakeSite {
                blocked,
                waker,
                waker_name: "notifier 1".into(),
            },
            700,
        );
        profile
    }

    #[test]
    fn off_cpu_stacks_end_in_their_state() {
        let folded = fold_off_cpu(&off_cpu_profile());
        assert_eq!(
            lines(&folded),
            [
                "app;main;wait;[sleeping] 700",
                "app;main;wait;[uninterruptible] 50"
            ]
        );
    }

    #[test]
    fn the_wall_view_converts_samples_to_microseconds() {
        let folded = fold_wall(&off_cpu_profile(), 10_101.01);
        assert_eq!(folded["app;main;[on-cpu]"], 30_303);
        assert_eq!(folded["app;main;wait;[sleeping]"], 700);
        assert_eq!(folded.values().sum::<u64>(), 30_303 + 750);
    }

    #[test]
    fn wakers_follow_the_offwaketime_convention() {
        let folded = fold_wakers(&off_cpu_profile());
        assert_eq!(
            lines(&folded),
            ["app;main;wait;--;notify;main;notifier_1 700"]
        );
    }
}
