//! pprof: `profile.pb.gz` (profile.proto, gzip), for `go tool pprof`,
//! Pyroscope and Grafana. Samples carry `samples/count` and
//! `cpu/nanoseconds`, plus `off_cpu/nanoseconds` when off-CPU time was
//! recorded, with CPU time the default; labels name the pid, tid, thread
//! and off-CPU state. User locations carry their address in a mapping with
//! its real range and file offset, and lines with source files from debug
//! info (inlined functions too), so `go tool pprof -list` and `-disasm`
//! work; kernel locations carry names but no addresses (see
//! `Builder::location`).

pub(crate) mod proto;

use std::{collections::HashMap, io::Write};

use flate2::{Compression, write::GzEncoder};
use prost::Message;

use crate::{
    meta::RunMeta,
    profile::{FrameId, FrameKind, Profile, StackSite},
};

/// Builds the pprof message for a profile.
/// pprof's values are signed: a count past them (only a made-up saved
/// run has one) is shown as the largest, never as a negative number.
fn int64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn build(
    profile: &Profile,
    meta: &RunMeta,
    off_cpu: bool,
    start_unix_nanos: i64,
) -> proto::Profile {
    build_for(profile, meta, off_cpu, start_unix_nanos, &|_| true)
}

/// [`build`] of the samples of the processes `wanted` keeps (one
/// service's, for a push).
pub(crate) fn build_for(
    profile: &Profile,
    meta: &RunMeta,
    off_cpu: bool,
    start_unix_nanos: i64,
    wanted: &dyn Fn(u32) -> bool,
) -> proto::Profile {
    let mut b = Builder::new(profile);
    let period_ns = int64(meta.sample_period_ns());
    let mut types = vec![
        b.value_type("samples", "count"),
        b.value_type("cpu", "nanoseconds"),
    ];
    if off_cpu {
        types.push(b.value_type("off_cpu", "nanoseconds"));
    }
    let width = types.len();
    let mut samples = Vec::new();
    for (site, &count) in profile.on_cpu.iter().filter(|(s, _)| wanted(s.tgid)) {
        let mut value = vec![int64(count), int64(count).saturating_mul(period_ns)];
        value.resize(width, 0);
        samples.push(b.sample(site, value, None));
    }
    if off_cpu {
        for (off, &us) in profile.off_cpu.iter().filter(|(o, _)| wanted(o.site.tgid)) {
            let mut value = vec![0; width];
            value[2] = int64(us).saturating_mul(1000);
            samples.push(b.sample(&off.site, value, Some(off.state.name())));
        }
    }
    let period_type = Some(b.value_type("cpu", "nanoseconds"));
    // Without it, readers show the last type: off-CPU time, with --off-cpu.
    let default_sample_type = b.string("cpu");
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
        default_sample_type,
        ..proto::Profile::default()
    }
}

pub(crate) fn write(out: &mut dyn Write, message: &proto::Profile) -> std::io::Result<()> {
    let mut gz = GzEncoder::new(out, Compression::default());
    gz.write_all(&message.encode_to_vec())?;
    gz.finish().map(drop)
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
    mapping_ids: HashMap<MappingKey, u64>,
    locations: Vec<proto::Location>,
    location_ids: HashMap<LocationKey, u64>,
}

/// A mapping: a module with no known range, or a file mapped at a range.
#[derive(PartialEq, Eq, Hash)]
enum MappingKey {
    Module(String),
    Mapped(u64, u64, u64, String),
}

/// A location: its mapping, address, frames and their lines.
type LocationKey = (u64, u64, Vec<FrameId>, Vec<u32>);

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
            let lines: Vec<u32> = (i..end).map(|j| site.line(j)).collect();
            ids.push(self.location(site.tgid, pc, &site.frames[i..end], lines));
            i = end;
        }
        ids
    }

    fn location(&mut self, tgid: u32, pc: u64, group: &[FrameId], lines: Vec<u32>) -> u64 {
        // Kernel addresses are left out (the names stay): this file is
        // meant to be shared and uploaded, and one kernel address gives
        // away where KASLR put the kernel, which /proc/kallsyms hides from
        // unprivileged users. User addresses stay: they locate code in
        // files anyone can read.
        let pc = match self.profile.frames.get(group[0]).kind {
            FrameKind::Kernel => 0,
            _ => pc,
        };
        let mapping_id = self.mapping(tgid, pc, group[0]);
        let key = (mapping_id, pc, group.to_vec(), lines);
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        // Innermost (inlined) first, the function they are inlined into last.
        let line = group
            .iter()
            .zip(&key.3)
            .rev()
            .map(|(&frame, &line)| {
                let python = self.profile.frames.get(frame).python_source();
                proto::Line {
                    function_id: self.function(frame),
                    line: i64::from(python.map_or(line, |(_, line)| line)),
                    ..proto::Line::default()
                }
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
        // A Python function: its own name, its .py file, the line in Line.
        let (function, filename) = match frame.python_source() {
            Some((function, _)) => {
                let module = frame.module.clone().unwrap_or_default();
                let path = self.profile.frames.module_paths().get(&module).cloned();
                (function.to_string(), path.unwrap_or(module))
            }
            None => {
                let file = self.profile.frames.source_file(frame_id);
                (frame.name.clone(), file.unwrap_or_default().to_string())
            }
        };
        let name = self.string(&function);
        let system_name = match frame.kind {
            FrameKind::Python => name,
            _ => self.string(self.profile.frames.symbol(frame_id)),
        };
        let filename = self.string(&filename);
        let id = self.functions.len() as u64 + 1;
        self.functions.push(proto::Function {
            id,
            name,
            system_name,
            filename,
            ..proto::Function::default()
        });
        self.function_ids.insert(frame_id, id);
        id
    }

    /// The mapping of a location: the file mapped at `pc` in process
    /// `tgid` where it is known, else its frame's module without a range
    /// (0 for pseudo-frames and Python functions, which are in no binary).
    fn mapping(&mut self, tgid: u32, pc: u64, frame_id: FrameId) -> u64 {
        let frames = &self.profile.frames;
        let frame = frames.get(frame_id);
        let mapped = match frame.kind {
            FrameKind::User | FrameKind::Inlined | FrameKind::Unknown if pc != 0 => {
                frames.mapping_at(tgid, pc)
            }
            _ => None,
        };
        let key = match (mapped, frame.kind, &frame.module) {
            (Some(m), ..) => MappingKey::Mapped(m.start, m.limit, m.file_offset, m.path.clone()),
            (None, FrameKind::Kernel, _) => MappingKey::Module("[kernel.kallsyms]".into()),
            (None, FrameKind::Python, _) | (None, _, None) => return 0,
            (None, _, Some(module)) => MappingKey::Module(module.clone()),
        };
        if let Some(&id) = self.mapping_ids.get(&key) {
            return id;
        }
        // The module's file name, its path and where it was mapped: a
        // module without a known mapping has its noted path and no range.
        let (module, path, (memory_start, memory_limit, file_offset)) = match &key {
            MappingKey::Mapped(start, limit, offset, path) => {
                let module = path.rsplit('/').next().unwrap_or(path);
                (module, path.as_str(), (*start, *limit, *offset))
            }
            MappingKey::Module(module) => {
                let path = frames.module_paths().get(module);
                (
                    module.as_str(),
                    path.map_or(module.as_str(), String::as_str),
                    (0, 0, 0),
                )
            }
        };
        let build_id = frames.build_id(module).unwrap_or_default().to_string();
        let filename = self.string(path);
        let build_id = self.string(&build_id);
        let id = self.mappings.len() as u64 + 1;
        self.mappings.push(proto::Mapping {
            id,
            memory_start,
            memory_limit,
            file_offset,
            filename,
            build_id,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        });
        self.mapping_ids.insert(key, id);
        id
    }
}

#[cfg(test)]
mod tests;
