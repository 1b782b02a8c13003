//! speedscope JSON (speedscope.app's file format): one "sampled" profile
//! of on-CPU time and, when recorded, one of off-CPU time, both in
//! nanoseconds, each stack rooted at its process name; off-CPU stacks end
//! in their state (`[sleeping]`...), as in the folded files. Frames carry
//! their source file and line where known. Opens with one click in the
//! browser, no server.

use std::{collections::HashMap, io::Write};

use serde_json::{Value, json};

use crate::{
    meta::RunMeta,
    profile::{FrameId, OffState, Profile, StackSite},
};

pub(crate) fn render(profile: &Profile, meta: &RunMeta, off_cpu: bool) -> Value {
    let mut frames = Frames::default();
    let period_ns = meta.sample_period_ns();
    let on_cpu = profile
        .on_cpu
        .iter()
        .map(|(site, &n)| (site, None, n.saturating_mul(period_ns)));
    let mut profiles = vec![sampled(&mut frames, profile, "On-CPU time", on_cpu)];
    if off_cpu {
        let off = profile
            .off_cpu
            .iter()
            .map(|(off, &us)| (&off.site, Some(off.state), us.saturating_mul(1000)));
        profiles.push(sampled(&mut frames, profile, "Off-CPU time", off));
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

/// speedscope's shared frame list, each frame once. Frames of the table
/// are kept apart by id: two functions of one name in different modules
/// stay two frames.
#[derive(Default)]
struct Frames {
    list: Vec<Value>,
    table: HashMap<FrameId, usize>,
    /// Process names (the roots) and off-CPU states (the leaves).
    named: HashMap<String, usize>,
}

impl Frames {
    fn push(&mut self, frame: Value) -> usize {
        self.list.push(frame);
        self.list.len() - 1
    }

    fn named(&mut self, name: &str) -> usize {
        if let Some(&index) = self.named.get(name) {
            return index;
        }
        let index = self.push(json!({ "name": name }));
        self.named.insert(name.to_string(), index);
        index
    }

    fn of_table(&mut self, profile: &Profile, id: FrameId) -> usize {
        if let Some(&index) = self.table.get(&id) {
            return index;
        }
        let index = self.push(frame_json(profile, id));
        self.table.insert(id, index);
        index
    }
}

/// A frame as speedscope shows it: its function's name and, where known,
/// its source file and line. A Python frame's file is its .py file's
/// path; a native frame's is its function's source file from debug info,
/// without a line (a frame stands for the whole function here; pprof has
/// the lines). The module is no source file: it is never given as one.
fn frame_json(profile: &Profile, id: FrameId) -> Value {
    let frame = profile.frames.get(id);
    match frame.python_source() {
        Some((function, line)) => {
            let module = frame.module.as_deref().unwrap_or_default();
            let path = profile.frames.module_paths().get(module);
            match path.map_or(module, String::as_str) {
                "" => json!({ "name": function, "line": line }),
                file => json!({ "name": function, "file": file, "line": line }),
            }
        }
        None => match profile.frames.source_file(id) {
            Some(file) => json!({ "name": frame.name, "file": file }),
            None => json!({ "name": frame.name }),
        },
    }
}

/// One sampled profile: each stack (with its off-CPU state, if any) and
/// its weight in nanoseconds.
fn sampled<'a>(
    frames: &mut Frames,
    profile: &Profile,
    name: &str,
    stacks: impl Iterator<Item = (&'a StackSite, Option<OffState>, u64)>,
) -> Value {
    let mut samples = Vec::new();
    let mut weights = Vec::new();
    for (site, state, weight) in stacks {
        let mut stack = vec![frames.named(profile.process_name(site.tgid))];
        stack.extend(site.frames.iter().map(|&id| frames.of_table(profile, id)));
        if let Some(state) = state {
            stack.push(frames.named(&state.frame()));
        }
        samples.push(stack);
        weights.push(weight);
    }
    let total = weights.iter().fold(0u64, |sum, &w| sum.saturating_add(w));
    json!({
        "type": "sampled",
        "name": name,
        "unit": "nanoseconds",
        "startValue": 0,
        "endValue": total,
        "samples": samples,
        "weights": weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Frame, FrameKind};

    fn site(frames: Vec<FrameId>) -> StackSite {
        StackSite {
            tgid: 1,
            tid: 1,
            frames,
            ..StackSite::default()
        }
    }

    fn frame(p: &mut Profile, name: &str, module: Option<&str>, kind: FrameKind) -> FrameId {
        p.frames.intern(Frame {
            name: name.into(),
            module: module.map(Into::into),
            kind,
        })
    }

    /// A run of `app`: main -> work (7 samples), main -> work in another
    /// module, read (kernel) and a Python function (1 each), and main
    /// asleep for 900 us.
    fn document() -> Value {
        let mut p = Profile::default();
        p.name_process(1, || "app".into());
        p.frames.note_module_path("job.py", "/srv/job.py");
        let main = frame(&mut p, "main", Some("app"), FrameKind::User);
        let work = frame(&mut p, "work", Some("app"), FrameKind::User);
        p.frames.note_source_file(work, "/src/app/work.c");
        let other_work = frame(&mut p, "work", Some("libother.so"), FrameKind::User);
        let read = frame(&mut p, "ksys_read", None, FrameKind::Kernel);
        let python = frame(
            &mut p,
            "step (job.py:12)",
            Some("job.py"),
            FrameKind::Python,
        );
        p.add(site(vec![main, work]), 7);
        p.add(site(vec![main, other_work]), 1);
        p.add(site(vec![main, read]), 1);
        p.add(site(vec![main, python]), 1);
        p.add_off_cpu(site(vec![main]), OffState::Sleeping, 900);
        let meta = RunMeta::new(
            99,
            "all processes".into(),
            std::time::SystemTime::now(),
            Default::default(),
        );
        render(&p, &meta, true)
    }

    /// The frames of the stack that ends in `leaf`, by name.
    fn stack_ending_in(doc: &Value, profile: usize, leaf: &str) -> (Vec<Value>, u64) {
        let frames = doc["shared"]["frames"].as_array().unwrap();
        let samples = doc["profiles"][profile]["samples"].as_array().unwrap();
        let weights = doc["profiles"][profile]["weights"].as_array().unwrap();
        samples
            .iter()
            .zip(weights)
            .map(|(stack, weight)| {
                let stack: Vec<Value> = stack
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| frames[i.as_u64().unwrap() as usize].clone())
                    .collect();
                (stack, weight.as_u64().unwrap())
            })
            .find(|(stack, _)| stack.last().unwrap()["name"] == leaf)
            .unwrap_or_else(|| panic!("no stack ends in {leaf}: {doc}"))
    }

    /// Time on both axes: on-CPU samples weigh their period (as pprof's
    /// cpu values), off-CPU microseconds a thousand nanoseconds.
    #[test]
    fn weights_are_nanoseconds() {
        let doc = document();
        let period = 10_101_010; // 1e9 / 99 Hz, rounded
        assert_eq!(doc["profiles"][0]["unit"], "nanoseconds");
        assert_eq!(doc["profiles"][1]["unit"], "nanoseconds");
        assert_eq!(stack_ending_in(&doc, 0, "ksys_read").1, period);
        assert_eq!(doc["profiles"][0]["endValue"], 10 * period);
        assert_eq!(doc["profiles"][1]["endValue"], 900_000);
    }

    /// Stacks are rooted at their process; off-CPU ones end in their
    /// state, as in off-cpu.folded.
    #[test]
    fn stacks_run_from_process_to_state() {
        let doc = document();
        let (stack, weight) = stack_ending_in(&doc, 1, "[sleeping]");
        assert_eq!(
            stack,
            [
                json!({"name": "app"}),
                json!({"name": "main"}),
                json!({"name": "[sleeping]"})
            ]
        );
        assert_eq!(weight, 900_000);
    }

    /// A frame's file is its source file: a Python frame's .py path and
    /// line, a native frame's from debug info; never a module's name.
    #[test]
    fn frames_carry_source_files_not_modules() {
        let doc = document();
        let (stack, _) = stack_ending_in(&doc, 0, "step");
        assert_eq!(
            stack[2],
            json!({"name": "step", "file": "/srv/job.py", "line": 12})
        );
        let frames = doc["shared"]["frames"].as_array().unwrap();
        let works = frames.iter().filter(|f| f["name"] == "work").count();
        assert_eq!(works, 2, "two functions of one name stay apart: {doc}");
        let with_file = json!({"name": "work", "file": "/src/app/work.c"});
        assert_eq!(frames.iter().filter(|&f| *f == with_file).count(), 1);
        let named = |f: &&Value| f["name"] != "step" && f["file"] != "/src/app/work.c";
        for frame in frames.iter().filter(named) {
            assert_eq!(frame.as_object().unwrap().len(), 1, "name only: {frame}");
        }
    }

    /// What speedscope itself accepts: its published schema (vendored
    /// under tests/schemas), and frame indices that exist.
    #[test]
    fn documents_match_speedscopes_schema() {
        let schema: Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/schemas/speedscope-file-format-schema.json"
        )))
        .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let doc = document();
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert_eq!(errors, Vec::<String>::new(), "{doc}");
        let frames = doc["shared"]["frames"].as_array().unwrap().len() as u64;
        for profile in doc["profiles"].as_array().unwrap() {
            let samples = profile["samples"].as_array().unwrap();
            assert_eq!(samples.len(), profile["weights"].as_array().unwrap().len());
            assert!(
                samples
                    .iter()
                    .flat_map(|s| s.as_array().unwrap())
                    .all(|i| i.as_u64().unwrap() < frames)
            );
        }
    }
}
