//! speedscope JSON (speedscope.app's file format): one "sampled" profile
//! for on-CPU samples and, when recorded, one for off-CPU microseconds,
//! each stack rooted at its process name. Opens with one click in the
//! browser, no server.

use std::{collections::HashMap, io::Write};

use serde_json::{Value, json};

use crate::{
    meta::RunMeta,
    profile::{FrameKind, Profile, StackSite},
};

pub(crate) fn render(profile: &Profile, meta: &RunMeta, off_cpu: bool) -> Value {
    let mut frames = Frames::default();
    let on_cpu = profile.on_cpu.iter().map(|(site, &n)| (site, n));
    let mut profiles = vec![sampled(
        &mut frames,
        profile,
        "On-CPU samples",
        "none",
        on_cpu,
    )];
    if off_cpu {
        let off = profile.off_cpu.iter().map(|(off, &us)| (&off.site, us));
        profiles.push(sampled(
            &mut frames,
            profile,
            "Off-CPU time",
            "microseconds",
            off,
        ));
    }
    json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "name": format!("bpfprof: {} on {}", meta.target, meta.hostname),
        "exporter": format!("bpfprof {}", meta.bpfprof_version),
        "activeProfileIndex": 0,
        "shared": { "frames": frames.list },
        "profiles": profiles,
    })
}

pub(crate) fn write(
    out: &mut dyn Write,
    profile: &Profile,
    meta: &RunMeta,
    off_cpu: bool,
) -> serde_json::Result<()> {
    serde_json::to_writer(out, &render(profile, meta, off_cpu))
}

#[derive(Default)]
struct Frames {
    list: Vec<Value>,
    ids: HashMap<(String, String, Option<u32>), usize>,
}

impl Frames {
    fn id(&mut self, name: &str, file: &str) -> usize {
        self.id_at(name, file, None)
    }

    /// A frame with its line in `file` (speedscope's `line`), if known.
    fn id_at(&mut self, name: &str, file: &str, line: Option<u32>) -> usize {
        let key = (name.to_string(), file.to_string(), line);
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.list.len();
        self.list.push(match (file.is_empty(), line) {
            (true, _) => json!({ "name": name }),
            (false, None) => json!({ "name": name, "file": file }),
            (false, Some(line)) => json!({ "name": name, "file": file, "line": line }),
        });
        self.ids.insert(key, id);
        id
    }
}

fn sampled<'a>(
    frames: &mut Frames,
    profile: &Profile,
    name: &str,
    unit: &str,
    stacks: impl Iterator<Item = (&'a StackSite, u64)>,
) -> Value {
    let mut samples = Vec::new();
    let mut weights = Vec::new();
    for (site, weight) in stacks {
        let mut stack = vec![frames.id(profile.process_name(site.tgid), "")];
        for &id in &site.frames {
            let frame = profile.frames.get(id);
            let file = match frame.kind {
                FrameKind::Kernel => "[kernel]",
                _ => frame.module.as_deref().unwrap_or(""),
            };
            // A Python function: its name, its .py file's path, its line.
            let id = match frame.python_source() {
                Some((function, line)) => {
                    let path = profile.frames.module_paths().get(file);
                    frames.id_at(function, path.map_or(file, String::as_str), Some(line))
                }
                None => frames.id(&frame.name, file),
            };
            stack.push(id);
        }
        samples.push(stack);
        weights.push(weight);
    }
    let total: u64 = weights.iter().sum();
    json!({
        "type": "sampled",
        "name": name,
        "unit": unit,
        "startValue": 0,
        "endValue": total,
        "samples": samples,
        "weights": weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Frame, OffState};

    #[test]
    fn stacks_are_rooted_at_the_process_and_weighted() {
        let mut p = Profile::default();
        p.name_process(1, || "app".into());
        let user = |n: &str| Frame {
            name: n.into(),
            module: Some("app".into()),
            kind: FrameKind::User,
        };
        let main = p.frames.intern(user("main"));
        let work = p.frames.intern(user("work"));
        p.add(
            StackSite {
                tgid: 1,
                tid: 1,
                frames: vec![main, work],
                ..StackSite::default()
            },
            7,
        );
        p.add_off_cpu(
            StackSite {
                tgid: 1,
                tid: 1,
                frames: vec![main],
                ..StackSite::default()
            },
            OffState::Sleeping,
            900,
        );
        let meta = RunMeta::new(
            99,
            "all processes".into(),
            std::time::SystemTime::now(),
            Default::default(),
        );
        let doc = render(&p, &meta, true);
        let frames = doc["shared"]["frames"].as_array().unwrap();
        let names: Vec<&str> = frames.iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["app", "main", "work"]);
        assert_eq!(doc["profiles"][0]["samples"][0], json!([0, 1, 2]));
        assert_eq!(doc["profiles"][0]["weights"][0], 7);
        assert_eq!(doc["profiles"][1]["unit"], "microseconds");
        assert_eq!(doc["profiles"][1]["endValue"], 900);
        assert_eq!(frames[1]["file"], "app");
    }
}
