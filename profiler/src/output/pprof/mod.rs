//! pprof: `profile.pb.gz` (profile.proto, gzip), for `go tool pprof`,
//! Pyroscope and Grafana. Samples carry `samples/count` and
//! `cpu/nanoseconds`, plus `off_cpu/nanoseconds` when off-CPU time was
//! recorded; labels name the pid, tid, thread and off-CPU state.

pub mod proto;

use std::{collections::HashMap, io::Write, path::Path};

use anyhow::{Context, Result};
use flate2::{Compression, write::GzEncoder};
use prost::Message;

use crate::{
    meta::RunMeta,
    profile::{FrameId, FrameKind, Profile, StackSite},
};

/// Builds the pprof message for a profile.
pub fn build(
    profile: &Profile,
    meta: &RunMeta,
    off_cpu: bool,
    start_unix_nanos: i64,
) -> proto::Profile {
    let mut b = Builder::new(profile);
    let period_ns = (1e9 / meta.freq_hz as f64).round() as i64;
    let mut types = vec![
        b.value_type("samples", "count"),
        b.value_type("cpu", "nanoseconds"),
    ];
    if off_cpu {
        types.push(b.value_type("off_cpu", "nanoseconds"));
    }
    let width = types.len();
    let mut samples = Vec::new();
    for (site, &count) in &profile.on_cpu {
        let mut value = vec![count as i64, count as i64 * period_ns];
        value.resize(width, 0);
        samples.push(b.sample(site, value, None));
    }
    if off_cpu {
        for (off, &us) in &profile.off_cpu {
            let mut value = vec![0; width];
            value[2] = us as i64 * 1000;
            samples.push(b.sample(&off.site, value, Some(off.state.name())));
        }
    }
    let period_type = Some(b.value_type("cpu", "nanoseconds"));
    let comment = vec![b.string(&format!(
        "bpfprof {} on {}",
        meta.bpfprof_version, meta.hostname
    ))];
    proto::Profile {
        sample_type: types,
        sample: samples,
        mapping: b.mappings,
        location: b.locations,
        function: b.functions,
        string_table: b.strings,
        time_nanos: start_unix_nanos,
        duration_nanos: (meta.duration_secs * 1e9) as i64,
        period_type,
        period: period_ns,
        comment,
        ..proto::Profile::default()
    }
}

pub fn write(path: &Path, message: &proto::Profile) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    let mut gz = GzEncoder::new(file, Compression::default());
    gz.write_all(&message.encode_to_vec())
        .and_then(|()| gz.finish().map(drop))
        .with_context(|| format!("writing {}", path.display()))
}

/// Interns strings, functions, mappings and locations as pprof wants them:
/// ids from 1, string 0 the empty string.
struct Builder<'a> {
    profile: &'a Profile,
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<proto::Function>,
    function_ids: HashMap<FrameId, u64>,
    mappings: Vec<proto::Mapping>,
    mapping_ids: HashMap<String, u64>,
    locations: Vec<proto::Location>,
    location_ids: HashMap<(u64, Vec<FrameId>), u64>,
}

impl<'a> Builder<'a> {
    fn new(profile: &'a Profile) -> Builder<'a> {
        let mut b = Builder {
            profile,
            strings: Vec::new(),
            string_ids: HashMap::new(),
            functions: Vec::new(),
            function_ids: HashMap::new(),
            mappings: Vec::new(),
            mapping_ids: HashMap::new(),
            locations: Vec::new(),
            location_ids: HashMap::new(),
        };
        b.string("");
        b
    }

    fn string(&mut self, text: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(text) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(text.to_string());
        self.string_ids.insert(text.to_string(), id);
        id
    }

    fn value_type(&mut self, kind: &str, unit: &str) -> proto::ValueType {
        proto::ValueType {
            r#type: self.string(kind),
            unit: self.string(unit),
        }
    }

    fn sample(&mut self, site: &StackSite, value: Vec<i64>, state: Option<&str>) -> proto::Sample {
        // pprof lists locations leaf first.
        let mut location_id = self.locations_of(site);
        location_id.reverse();
        let thread = self.profile.threads.get(&site.tid).map(|t| t.name.clone());
        let process = self.profile.process_name(site.tgid).to_string();
        let mut label = vec![
            self.num_label("pid", site.tgid),
            self.num_label("tid", site.tid),
            self.str_label("process", &process),
        ];
        if let Some(thread) = thread {
            label.push(self.str_label("thread", &thread));
        }
        if let Some(state) = state {
            label.push(self.str_label("state", state));
        }
        proto::Sample {
            location_id,
            value,
            label,
        }
    }

    fn num_label(&mut self, key: &str, value: u32) -> proto::Label {
        proto::Label {
            key: self.string(key),
            num: i64::from(value),
            ..proto::Label::default()
        }
    }

    fn str_label(&mut self, key: &str, value: &str) -> proto::Label {
        proto::Label {
            key: self.string(key),
            str: self.string(value),
            ..proto::Label::default()
        }
    }

    /// Location ids, outermost first: a function and the functions inlined
    /// into it share an address and become one location with several lines.
    fn locations_of(&mut self, site: &StackSite) -> Vec<u64> {
        let mut ids = Vec::new();
        let mut i = 0;
        while i < site.frames.len() {
            let pc = site.pcs[i];
            let mut end = i + 1;
            while end < site.frames.len()
                && pc != 0
                && site.pcs[end] == pc
                && self.profile.frames.get(site.frames[end]).kind == FrameKind::Inlined
            {
                end += 1;
            }
            ids.push(self.location(pc, &site.frames[i..end]));
            i = end;
        }
        ids
    }

    fn location(&mut self, pc: u64, group: &[FrameId]) -> u64 {
        let key = (pc, group.to_vec());
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        let mapping_id = self.mapping(group[0]);
        // Innermost (inlined) first, the function they are inlined into last.
        let line = group
            .iter()
            .rev()
            .map(|&frame| proto::Line {
                function_id: self.function(frame),
                ..proto::Line::default()
            })
            .collect();
        let id = self.locations.len() as u64 + 1;
        self.locations.push(proto::Location {
            id,
            mapping_id,
            address: pc,
            line,
            ..proto::Location::default()
        });
        self.location_ids.insert(key, id);
        id
    }

    fn function(&mut self, frame_id: FrameId) -> u64 {
        if let Some(&id) = self.function_ids.get(&frame_id) {
            return id;
        }
        let frame = self.profile.frames.get(frame_id);
        let name = self.string(&frame.name);
        let id = self.functions.len() as u64 + 1;
        self.functions.push(proto::Function {
            id,
            name,
            system_name: name,
            ..proto::Function::default()
        });
        self.function_ids.insert(frame_id, id);
        id
    }

    /// The mapping of a frame's module (0 for pseudo-frames).
    fn mapping(&mut self, frame_id: FrameId) -> u64 {
        let frame = self.profile.frames.get(frame_id);
        let module = match (frame.kind, &frame.module) {
            (FrameKind::Kernel, _) => "[kernel.kallsyms]".to_string(),
            (_, Some(module)) => module.clone(),
            (_, None) => return 0,
        };
        if let Some(&id) = self.mapping_ids.get(&module) {
            return id;
        }
        let path = self.profile.frames.module_paths().get(&module).cloned();
        let build_id = path.as_deref().and_then(build_id_of).unwrap_or_default();
        let filename = self.string(path.as_deref().unwrap_or(&module));
        let build_id = self.string(&build_id);
        let id = self.mappings.len() as u64 + 1;
        self.mappings.push(proto::Mapping {
            id,
            filename,
            build_id,
            has_functions: true,
            has_inline_frames: true,
            ..proto::Mapping::default()
        });
        self.mapping_ids.insert(module, id);
        id
    }
}

/// The GNU build id of an ELF file, in hex, when the file is readable.
pub fn build_id_of(path: &str) -> Option<String> {
    use object::Object;
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let id = file.build_id().ok()??;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Frame, OffState};
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn profile() -> Profile {
        let mut p = Profile::default();
        p.name_process(7, || "app".into());
        p.name_thread(7, 8, || "worker".into());
        let f = |p: &mut Profile, name: &str, kind| {
            let module =
                (kind != FrameKind::Kernel && kind != FrameKind::Pseudo).then(|| "app".to_string());
            p.frames.intern(Frame {
                name: name.into(),
                module,
                kind,
            })
        };
        let main = f(&mut p, "main", FrameKind::User);
        let outer = f(&mut p, "outer", FrameKind::User);
        let inlined = f(&mut p, "inlined", FrameKind::Inlined);
        let read = f(&mut p, "ksys_read", FrameKind::Kernel);
        let lost = f(&mut p, "[lost stack]", FrameKind::Pseudo);
        let site = StackSite {
            tgid: 7,
            tid: 8,
            frames: vec![main, outer, inlined, read],
            pcs: vec![0x1010, 0x2020, 0x2020, 0xffff_0000],
        };
        p.add(site.clone(), 5);
        p.add(
            StackSite {
                tgid: 7,
                tid: 8,
                frames: vec![lost],
                pcs: vec![0],
            },
            1,
        );
        p.add_off_cpu(site, OffState::Uninterruptible, 250);
        p
    }

    #[test]
    fn round_trips_with_every_id_resolved() {
        let mut meta = RunMeta::new(
            100,
            "pid 7".into(),
            std::time::SystemTime::now(),
            Default::default(),
        );
        meta.duration_secs = 2.0;
        let dir = std::env::temp_dir().join(format!("bpfprof-pprof-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("profile.pb.gz");
        write(
            &path,
            &build(&profile(), &meta, true, 1_700_000_000_000_000_000),
        )
        .unwrap();
        let mut bytes = Vec::new();
        GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let decoded = proto::Profile::decode(bytes.as_slice()).unwrap();

        let s = |id: i64| decoded.string_table[id as usize].as_str();
        assert_eq!(decoded.string_table[0], "");
        let types: Vec<_> = decoded
            .sample_type
            .iter()
            .map(|t| (s(t.r#type), s(t.unit)))
            .collect();
        assert_eq!(
            types,
            [
                ("samples", "count"),
                ("cpu", "nanoseconds"),
                ("off_cpu", "nanoseconds")
            ]
        );
        assert_eq!(
            (decoded.period, decoded.duration_nanos),
            (10_000_000, 2_000_000_000)
        );
        let function_ids: Vec<u64> = decoded.function.iter().map(|f| f.id).collect();
        let mapping_ids: Vec<u64> = decoded.mapping.iter().map(|m| m.id).collect();
        let location_ids: Vec<u64> = decoded.location.iter().map(|l| l.id).collect();
        for location in &decoded.location {
            assert!(location.mapping_id == 0 || mapping_ids.contains(&location.mapping_id));
            for line in &location.line {
                assert!(function_ids.contains(&line.function_id));
            }
        }
        for sample in &decoded.sample {
            assert!(
                sample
                    .location_id
                    .iter()
                    .all(|id| location_ids.contains(id))
            );
            assert_eq!(sample.value.len(), 3);
            for label in &sample.label {
                let _ = s(label.key);
                let _ = s(label.str);
            }
        }
        // The inlined function shares its caller's address: one location, two lines.
        let inline = decoded
            .location
            .iter()
            .find(|l| l.address == 0x2020)
            .unwrap();
        let names: Vec<&str> = inline
            .line
            .iter()
            .map(|l| s(decoded.function[l.function_id as usize - 1].name))
            .collect();
        assert_eq!(names, ["inlined", "outer"]);
        // Leaf first: the kernel frame leads the on-CPU sample.
        let on_cpu = decoded.sample.iter().find(|s| s.value[0] == 5).unwrap();
        assert_eq!(
            decoded.location[on_cpu.location_id[0] as usize - 1].address,
            0xffff_0000
        );
        assert_eq!(on_cpu.value[1], 50_000_000);
        let off = decoded.sample.iter().find(|s| s.value[2] > 0).unwrap();
        assert_eq!(off.value[2], 250_000);
        assert!(
            off.label
                .iter()
                .any(|l| s(l.key) == "state" && s(l.str) == "uninterruptible")
        );
        let kernel = decoded
            .mapping
            .iter()
            .find(|m| s(m.filename) == "[kernel.kallsyms]");
        assert!(kernel.is_some());
    }
}
