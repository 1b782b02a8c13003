//! OTLP profiles: one closed window as an `ExportProfilesServiceRequest`
//! (profiles v1development, opentelemetry-proto v1.10.0). Owns the
//! translation of the window's per-service pprof messages into OTLP's
//! shape: one dictionary for the whole request, one resource per service,
//! one profile per sample type, and the attribute names OpenTelemetry's
//! semantic conventions give to what pprof carries as labels. Sending the
//! bytes is the push thread's job.

mod dictionary;

/// The profiles development version of this schema, sent as
/// OTLP-Profiles-Development-Version: receivers that know the header refuse
/// a version they do not decode instead of misreading it.
pub(crate) const DEVELOPMENT_VERSION: &str = "1";

use std::{
    collections::{BTreeMap, HashMap, hash_map::Entry},
    time::UNIX_EPOCH,
};

use opentelemetry_proto::tonic::{
    collector::profiles::v1development::ExportProfilesServiceRequest,
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value},
    profiles::v1development::{
        Function, Line, Mapping, Profile, ResourceProfiles, Sample, ScopeProfiles, Stack,
    },
    resource::v1::Resource,
};
use prost::Message;

use self::dictionary::{Attribute, Dictionary, LocationKey};
use crate::{
    fnv::fnv64,
    output::pprof::proto,
    push::window::{ProcessAttributes, PushWindow, ServiceWindow},
};

const CPU: &str = "cpu";
const OFF_CPU: &str = "off_cpu";
const NANOSECONDS: &str = "nanoseconds";

/// The request for one window.
pub(crate) fn request(window: &PushWindow) -> ExportProfilesServiceRequest {
    let mut dict = Dictionary::default();
    let resource_profiles = window
        .services
        .iter()
        .map(|service| resource_profiles(&mut dict, window, service))
        .collect();
    ExportProfilesServiceRequest {
        resource_profiles,
        dictionary: Some(dict.finish()),
    }
}

/// The request for one window, as the bytes OTLP/HTTP posts.
pub(crate) fn encode(window: &PushWindow) -> Vec<u8> {
    request(window).encode_to_vec()
}

fn resource_profiles(
    dict: &mut Dictionary,
    window: &PushWindow,
    service: &ServiceWindow,
) -> ResourceProfiles {
    let mut attributes = vec![
        string_key_value("service.name", &service.name),
        string_key_value("host.name", &window.host_name),
    ];
    // Resource keys must be unique. The first value of a key stays, so a
    // label can neither rename the service its samples were split by nor
    // the host, and a label given twice keeps its first value.
    for (key, value) in &window.labels {
        if !attributes.iter().any(|kv| kv.key == *key) {
            attributes.push(string_key_value(key, value));
        }
    }
    let mut kinds = vec![CPU];
    if window.off_cpu {
        kinds.push(OFF_CPU);
    }
    let mut encoder = ServiceEncoder::new(dict, service);
    let profiles = kinds
        .into_iter()
        .filter_map(|kind| encoder.profile(window, kind))
        .collect();
    ResourceProfiles {
        resource: Some(Resource {
            attributes,
            ..Resource::default()
        }),
        scope_profiles: vec![ScopeProfiles {
            scope: Some(InstrumentationScope {
                name: "bpfprof".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..InstrumentationScope::default()
            }),
            profiles,
            ..ScopeProfiles::default()
        }],
        ..ResourceProfiles::default()
    }
}

fn string_key_value(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

/// 16 bytes that differ between runs (host, start), windows (index),
/// services and sample types. Derived rather than random, so a retried
/// window keeps its ids and a receiver can drop the copy it already has.
fn profile_id(window: &PushWindow, start_ns: u64, service: &str, kind: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for part in [
        window.host_name.as_bytes(),
        &start_ns.to_le_bytes(),
        &window.index.to_le_bytes(),
        service.as_bytes(),
        kind.as_bytes(),
    ] {
        // Each part after its length: no two tuples run into the same bytes.
        bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
        bytes.extend_from_slice(part);
    }
    let low = fnv64(&bytes);
    bytes.extend_from_slice(&low.to_le_bytes());
    let high = fnv64(&bytes);
    let mut id = [low.to_le_bytes(), high.to_le_bytes()].concat();
    // All zeroes is the one invalid id.
    if id.iter().all(|&b| b == 0) {
        id[0] = 1;
    }
    id
}

/// One service's pprof message, moved into the shared dictionary.
struct ServiceEncoder<'a> {
    dict: &'a mut Dictionary,
    service: &'a str,
    pprof: &'a proto::Profile,
    processes: &'a BTreeMap<u32, ProcessAttributes>,
    locations: HashMap<u64, &'a proto::Location>,
    functions: HashMap<u64, &'a proto::Function>,
    mappings: HashMap<u64, &'a proto::Mapping>,
    /// Where each pprof id went in the dictionary, so that a location met
    /// in many samples is translated once.
    location_index: HashMap<u64, i32>,
    function_index: HashMap<u64, i32>,
    mapping_index: HashMap<u64, i32>,
}

impl<'a> ServiceEncoder<'a> {
    fn new(dict: &'a mut Dictionary, service: &'a ServiceWindow) -> ServiceEncoder<'a> {
        let pprof = &service.pprof;
        ServiceEncoder {
            dict,
            service: &service.name,
            pprof,
            processes: &service.processes,
            locations: pprof.location.iter().map(|l| (l.id, l)).collect(),
            functions: pprof.function.iter().map(|f| (f.id, f)).collect(),
            mappings: pprof.mapping.iter().map(|m| (m.id, m)).collect(),
            location_index: HashMap::new(),
            function_index: HashMap::new(),
            mapping_index: HashMap::new(),
        }
    }

    /// A pprof string; a bad index reads as pprof's own "not set".
    fn text(&self, index: i64) -> &'a str {
        let strings = &self.pprof.string_table;
        usize::try_from(index)
            .ok()
            .and_then(|i| strings.get(i))
            .map_or("", String::as_str)
    }

    /// The `kind`/nanoseconds profile, or none when no sample has such time
    /// (a service that only waited has no CPU profile): an empty profile
    /// says nothing a missing one does not, and costs a message.
    fn profile(&mut self, window: &PushWindow, kind: &'static str) -> Option<Profile> {
        let column = self
            .pprof
            .sample_type
            .iter()
            .position(|t| self.text(t.r#type) == kind && self.text(t.unit) == NANOSECONDS)?;
        let samples = self.samples(column);
        if samples.is_empty() {
            return None;
        }
        // CPU time is sampled: each sample stands for pprof's period of CPU
        // time. Off-CPU time is measured, every wait past --min-block-us
        // with its own length, so there is no period to give, and a period
        // type of off_cpu/nanoseconds would claim one: both stay unset
        // (the .proto calls them informational).
        let (period_type, period) = match (kind, &self.pprof.period_type) {
            (CPU, Some(t)) => {
                let (kind, unit) = (self.text(t.r#type), self.text(t.unit));
                (Some(self.dict.value_type(kind, unit)), self.pprof.period)
            }
            _ => (None, 0),
        };
        let start_ns = window
            .start
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Some(Profile {
            sample_type: Some(self.dict.value_type(kind, NANOSECONDS)),
            samples,
            time_unix_nano: start_ns,
            duration_nano: window.duration_ns,
            period_type,
            period,
            profile_id: profile_id(window, start_ns, self.service, kind),
            ..Profile::default()
        })
    }

    /// The samples with time in value `column`, the ones with the same
    /// stack and attributes added up (OTLP calls them one sample).
    fn samples(&mut self, column: usize) -> Vec<Sample> {
        let mut samples: Vec<Sample> = Vec::new();
        let mut seen: HashMap<(i32, Vec<i32>), usize> = HashMap::new();
        for sample in &self.pprof.sample {
            let value = sample.value.get(column).copied().unwrap_or(0);
            if value == 0 {
                continue;
            }
            // Both list the leaf first.
            let location_indices = sample
                .location_id
                .iter()
                .map(|&id| self.location(id))
                .collect();
            let stack_index = self.dict.stacks.intern(&Stack { location_indices });
            let attribute_indices = self.sample_attributes(sample);
            match seen.entry((stack_index, attribute_indices)) {
                Entry::Occupied(at) => {
                    let total = &mut samples[*at.get()].values[0];
                    *total = total.saturating_add(value);
                }
                Entry::Vacant(at) => {
                    samples.push(Sample {
                        stack_index,
                        attribute_indices: at.key().1.clone(),
                        values: vec![value],
                        ..Sample::default()
                    });
                    at.insert(samples.len() - 1);
                }
            }
        }
        samples
    }

    /// pprof's labels under their semantic-convention names, and what the
    /// run knows of the sample's process.
    fn sample_attributes(&mut self, sample: &proto::Sample) -> Vec<i32> {
        let mut indices = Vec::new();
        let mut pid = None;
        let mut process_label = None;
        for label in &sample.label {
            let text = self.text(label.str);
            let (key, value) = match self.text(label.key) {
                "pid" => {
                    pid = u32::try_from(label.num).ok();
                    ("process.pid", Attribute::Int(label.num))
                }
                "tid" => ("thread.id", Attribute::Int(label.num)),
                "thread" => ("thread.name", Attribute::Str(text.into())),
                "state" => ("thread.state", Attribute::Str(text.into())),
                "process" => {
                    process_label = Some(text);
                    continue;
                }
                _ => continue,
            };
            indices.push(self.dict.attribute(key, value));
        }
        let process = pid.and_then(|pid| self.processes.get(&pid));
        // The process label is the same name, for a pid the window's
        // process list missed.
        let name = process
            .map(|p| p.executable_name.as_str())
            .filter(|name| !name.is_empty())
            .or(process_label);
        for (key, value) in [
            ("process.executable.name", name),
            (
                "process.executable.path",
                process.and_then(|p| p.executable_path.as_deref()),
            ),
            (
                "container.id",
                process.and_then(|p| p.container_id.as_deref()),
            ),
            ("k8s.pod.uid", process.and_then(|p| p.pod_uid.as_deref())),
        ] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                indices.push(self.dict.attribute(key, Attribute::Str(value.into())));
            }
        }
        indices
    }

    /// The dictionary index of pprof location `id`; 0, the null location,
    /// for an id the message does not hold.
    fn location(&mut self, id: u64) -> i32 {
        if let Some(&index) = self.location_index.get(&id) {
            return index;
        }
        let Some(&location) = self.locations.get(&id) else {
            return 0;
        };
        let mapping_index = self.mapping(location.mapping_id);
        // Both put the innermost inlined function first and the function
        // it is inlined into last: the lines keep their order.
        let lines = location
            .line
            .iter()
            .map(|line| Line {
                function_index: self.function(line.function_id),
                line: line.line,
                column: line.column,
            })
            .collect();
        let index = self.dict.locations.intern(&LocationKey {
            mapping_index,
            address: location.address,
            lines,
        });
        self.location_index.insert(id, index);
        index
    }

    fn function(&mut self, id: u64) -> i32 {
        if let Some(&index) = self.function_index.get(&id) {
            return index;
        }
        let Some(&function) = self.functions.get(&id) else {
            return 0;
        };
        let function = Function {
            name_strindex: self.dict.string(self.text(function.name)),
            system_name_strindex: self.dict.string(self.text(function.system_name)),
            filename_strindex: self.dict.string(self.text(function.filename)),
            start_line: function.start_line,
        };
        let index = self.dict.functions.intern(&function);
        self.function_index.insert(id, index);
        index
    }

    /// pprof's mapping 0 (none) is OTLP's mapping 0 too.
    fn mapping(&mut self, id: u64) -> i32 {
        if let Some(&index) = self.mapping_index.get(&id) {
            return index;
        }
        let Some(&mapping) = self.mappings.get(&id) else {
            return 0;
        };
        let build_id = self.text(mapping.build_id);
        let attribute_indices = if build_id.is_empty() {
            Vec::new()
        } else {
            let value = Attribute::Str(build_id.into());
            vec![
                self.dict
                    .attribute("process.executable.build_id.gnu", value),
            ]
        };
        let mapping = Mapping {
            memory_start: mapping.memory_start,
            memory_limit: mapping.memory_limit,
            file_offset: mapping.file_offset,
            filename_strindex: self.dict.string(self.text(mapping.filename)),
            attribute_indices,
        };
        let index = self.dict.mappings.intern(&mapping);
        self.mapping_index.insert(id, index);
        index
    }
}

#[cfg(test)]
mod tests;
