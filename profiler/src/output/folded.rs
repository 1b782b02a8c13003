//! Folded stacks, the format of FlameGraph and inferno: one line per
//! distinct stack, `process;outermost;...;innermost count`.

use std::{collections::BTreeMap, io::Write, path::Path};

use anyhow::{Context, Result};

use crate::profile::{Frame, FrameKind, Profile};

/// Stack text to count, merged across threads and processes of one name.
pub fn fold(profile: &Profile) -> BTreeMap<String, u64> {
    let mut folded = BTreeMap::new();
    for (site, &count) in &profile.stacks {
        let mut line = profile.process_name(site.tgid).replace([';', ' '], "_");
        for &id in &site.frames {
            line.push(';');
            push_frame(&mut line, profile.frames.get(id));
        }
        *folded.entry(line).or_default() += count;
    }
    folded
}

/// Kernel frames end in `_[k]` and inlined ones in `_[i]`, the suffixes
/// FlameGraph's and inferno's palettes colour by.
fn push_frame(line: &mut String, frame: &Frame) {
    line.push_str(&frame.name);
    match frame.kind {
        FrameKind::Kernel => line.push_str("_[k]"),
        FrameKind::Inlined => line.push_str("_[i]"),
        FrameKind::User | FrameKind::Pseudo => {}
    }
}

pub fn lines(folded: &BTreeMap<String, u64>) -> Vec<String> {
    folded
        .iter()
        .map(|(stack, count)| format!("{stack} {count}"))
        .collect()
}

pub fn write(path: &Path, folded: &BTreeMap<String, u64>) -> Result<()> {
    let mut out = Vec::new();
    for line in lines(folded) {
        writeln!(out, "{line}")?;
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::StackSite;

    #[test]
    fn folds_user_then_kernel_frames_under_the_process_name() {
        let mut profile = Profile::default();
        profile.name_process(10, || "my app".into());
        let user = |name: &str| Frame {
            name: name.into(),
            module: None,
            kind: FrameKind::User,
        };
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
            },
            4,
        );
        profile.add(
            StackSite {
                tgid: 10,
                tid: 11,
                frames: vec![main, write, sys],
            },
            1,
        );
        profile.add(
            StackSite {
                tgid: 10,
                tid: 10,
                frames: vec![main, inlined],
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
}
