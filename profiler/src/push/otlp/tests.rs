use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::profiles::v1development::{
    KeyValueAndUnit, Link, Location, ProfilesDictionary, ValueType,
};

use super::*;
use crate::{
    meta::RunMeta,
    output::pprof,
    profile::{self, Frame, FrameKind, MappedFile, OffState, StackSite},
    push::window::ProcessAttributes,
};

const START_SECS: u64 = 1_700_000_000;

/// Process 7 of service "api", thread 8 "worker": `main` calls `outer`,
/// into which `inlined` is inlined, which is in `ksys_read`: 5 samples
/// on-CPU and a 250 us uninterruptible wait.
fn api() -> profile::Profile {
    let mut p = profile::Profile::default();
    p.name_process(7, || "api".into());
    p.name_thread(7, 8, || "worker".into());
    let f = |p: &mut profile::Profile, name: &str, kind| {
        let module = (kind != FrameKind::Kernel).then(|| "api".to_string());
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
    p.frames.note_source_file(outer, "/src/api.c");
    p.frames.note_build_id("api", "abcd12");
    p.frames.note_mapping(
        7,
        MappedFile {
            start: 0x1000,
            limit: 0x3000,
            file_offset: 0x4000,
            path: "/usr/bin/api".into(),
        },
    );
    let site = StackSite {
        tgid: 7,
        tid: 8,
        frames: vec![main, outer, inlined, read],
        pcs: vec![0x1010, 0x2020, 0x2020, 0xffff_ffff_8123_4567],
        lines: vec![3, 12, 40, 0],
    };
    p.add(site.clone(), 5);
    p.add_off_cpu(site, OffState::Uninterruptible, 250);
    p
}

/// Process 9 of service "db", its thread unnamed: `main` calls `query`,
/// 3 samples on-CPU.
fn db() -> profile::Profile {
    let mut p = profile::Profile::default();
    p.name_process(9, || "db".into());
    let mut f = |name: &str| {
        p.frames.intern(Frame {
            name: name.into(),
            module: Some("db".into()),
            kind: FrameKind::User,
        })
    };
    let frames = vec![f("main"), f("query")];
    p.add(
        StackSite {
            tgid: 9,
            tid: 10,
            frames,
            pcs: vec![0x5000, 0x5100],
            lines: vec![0, 0],
        },
        3,
    );
    p
}

fn window() -> PushWindow {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(START_SECS);
    let meta = RunMeta::new(100, "all".into(), start, Duration::from_secs(10));
    let pprof = |p: &profile::Profile| pprof::build(p, &meta, true, 0);
    let api_process = ProcessAttributes {
        executable_name: "api".into(),
        executable_path: Some("/usr/bin/api".into()),
        container_id: Some("c0ffee".into()),
        pod_uid: None,
    };
    PushWindow {
        index: 4,
        start,
        duration_ns: 10_000_000_000,
        host_name: "box".into(),
        labels: vec![
            ("env".into(), "prod".into()),
            ("host.name".into(), "other".into()),
        ],
        freq_hz: 100,
        off_cpu: true,
        services: vec![
            ServiceWindow {
                name: "api".into(),
                pprof: pprof(&api()),
                processes: BTreeMap::from([(7, api_process)]),
            },
            ServiceWindow {
                name: "db".into(),
                pprof: pprof(&db()),
                // No process list: the name comes from the pprof label.
                processes: BTreeMap::new(),
            },
        ],
    }
}

/// `window()` encoded and decoded back.
fn decoded(window: &PushWindow) -> ExportProfilesServiceRequest {
    ExportProfilesServiceRequest::decode(encode(window).as_slice()).unwrap()
}

fn dictionary(request: &ExportProfilesServiceRequest) -> &ProfilesDictionary {
    request.dictionary.as_ref().unwrap()
}

fn profiles(request: &ExportProfilesServiceRequest, resource: usize) -> &[Profile] {
    &request.resource_profiles[resource].scope_profiles[0].profiles
}

fn string(dict: &ProfilesDictionary, index: i32) -> &str {
    &dict.string_table[usize::try_from(index).unwrap()]
}

/// The function names of a stack, leaf first, inlined functions before
/// the function they are inlined into.
fn stack_names(dict: &ProfilesDictionary, stack_index: i32) -> Vec<&str> {
    let stack = &dict.stack_table[stack_index as usize];
    let lines = stack
        .location_indices
        .iter()
        .flat_map(|&l| &dict.location_table[l as usize].lines);
    lines
        .map(|line| {
            let function = &dict.function_table[line.function_index as usize];
            string(dict, function.name_strindex)
        })
        .collect()
}

/// Attributes as "key=value" strings, in the order given.
fn attributes(dict: &ProfilesDictionary, indices: &[i32]) -> Vec<String> {
    indices
        .iter()
        .map(|&i| {
            let attribute = &dict.attribute_table[i as usize];
            assert_eq!(attribute.unit_strindex, 0);
            let key = string(dict, attribute.key_strindex);
            format!("{key}={}", text(attribute.value.as_ref()))
        })
        .collect()
}

/// An attribute value as text: only ints and (inline) strings are sent.
fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::IntValue(n)) => n.to_string(),
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("unexpected attribute value {other:?}"),
    }
}

fn value_type<'a>(
    dict: &'a ProfilesDictionary,
    t: Option<&ValueType>,
) -> Option<(&'a str, &'a str)> {
    t.map(|t| (string(dict, t.type_strindex), string(dict, t.unit_strindex)))
}

#[test]
fn tables_start_with_their_zero_value_and_hold_no_duplicates() {
    let request = decoded(&window());
    let dict = dictionary(&request);
    assert_eq!(dict.string_table[0], "");
    assert_eq!(dict.mapping_table[0], Mapping::default());
    assert_eq!(dict.location_table[0], Location::default());
    assert_eq!(dict.function_table[0], Function::default());
    assert_eq!(dict.link_table, vec![Link::default()]);
    assert_eq!(dict.attribute_table[0], KeyValueAndUnit::default());
    assert_eq!(dict.stack_table[0], Stack::default());
    fn unique<T: PartialEq>(table: &[T]) -> bool {
        (0..table.len()).all(|i| !table[i + 1..].contains(&table[i]))
    }
    assert!(unique(&dict.string_table));
    assert!(unique(&dict.mapping_table));
    assert!(unique(&dict.location_table));
    assert!(unique(&dict.function_table));
    assert!(unique(&dict.attribute_table));
    assert!(unique(&dict.stack_table));
    // One `main` function for both services: the dictionary is shared.
    let mains = dict.function_table.iter();
    let mains = mains.filter(|f| string(dict, f.name_strindex) == "main");
    assert_eq!(mains.count(), 1);
}

#[test]
fn every_index_names_an_entry() {
    let request = decoded(&window());
    let dict = dictionary(&request);
    let in_range = |index: i32, len: usize| usize::try_from(index).is_ok_and(|i| i < len);
    let string = |index: i32| in_range(index, dict.string_table.len());
    let attributes = |indices: &[i32]| {
        let len = dict.attribute_table.len();
        indices.iter().all(|&i| in_range(i, len))
    };
    for attribute in &dict.attribute_table {
        assert!(string(attribute.key_strindex) && string(attribute.unit_strindex));
    }
    for f in &dict.function_table {
        let names = [f.name_strindex, f.system_name_strindex, f.filename_strindex];
        assert!(names.into_iter().all(string));
    }
    for mapping in &dict.mapping_table {
        assert!(string(mapping.filename_strindex));
        assert!(attributes(&mapping.attribute_indices));
    }
    let functions = dict.function_table.len();
    for location in &dict.location_table {
        assert!(in_range(location.mapping_index, dict.mapping_table.len()));
        let mut lines = location.lines.iter();
        assert!(lines.all(|l| in_range(l.function_index, functions)));
    }
    let locations = dict.location_table.len();
    for stack in &dict.stack_table[1..] {
        assert!(!stack.location_indices.is_empty());
        let mut indices = stack.location_indices.iter();
        assert!(indices.all(|&l| l != 0 && in_range(l, locations)));
    }
    let all = request
        .resource_profiles
        .iter()
        .flat_map(|r| &r.scope_profiles);
    for profile in all.flat_map(|s| &s.profiles) {
        let types = [&profile.sample_type, &profile.period_type];
        for t in types.into_iter().flatten() {
            assert!(string(t.type_strindex) && string(t.unit_strindex));
        }
        for sample in &profile.samples {
            assert!(in_range(sample.stack_index, dict.stack_table.len()));
            assert_ne!(sample.stack_index, 0);
            assert!(attributes(&sample.attribute_indices));
            assert_eq!(sample.link_index, 0);
        }
    }
}

#[test]
fn one_resource_per_service_with_host_and_labels() {
    let request = decoded(&window());
    assert_eq!(request.resource_profiles.len(), 2);
    for (resource, service) in request.resource_profiles.iter().zip(["api", "db"]) {
        let attributes = resource.resource.as_ref().unwrap().attributes.iter();
        let attributes: Vec<String> = attributes
            .map(|kv| format!("{}={}", kv.key, text(kv.value.as_ref())))
            .collect();
        let service = format!("service.name={service}");
        // The label naming the host again does not make a second host.name.
        assert_eq!(attributes, [service.as_str(), "host.name=box", "env=prod"]);
        let scope = resource.scope_profiles[0].scope.as_ref().unwrap();
        assert_eq!(scope.name, "bpfprof");
        assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
    }
}

#[test]
fn cpu_and_off_cpu_profiles_carry_their_own_time() {
    let request = decoded(&window());
    let dict = dictionary(&request);
    let (api, db) = (profiles(&request, 0), profiles(&request, 1));
    // db never waited: no off-CPU profile of its own.
    assert_eq!((api.len(), db.len()), (2, 1));
    for (profile, kind) in [(&api[0], "cpu"), (&api[1], "off_cpu"), (&db[0], "cpu")] {
        let sample_type = value_type(dict, profile.sample_type.as_ref());
        assert_eq!(sample_type, Some((kind, "nanoseconds")));
        assert_eq!(profile.time_unix_nano, START_SECS * 1_000_000_000);
        assert_eq!(profile.duration_nano, 10_000_000_000);
    }
    let period_type = value_type(dict, api[0].period_type.as_ref());
    assert_eq!(
        (period_type, api[0].period),
        (Some(("cpu", "nanoseconds")), 10_000_000)
    );
    assert_eq!((api[1].period_type, api[1].period), (None, 0));
    let values = |p: &Profile| {
        p.samples
            .iter()
            .map(|s| s.values.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&api[0]), [[50_000_000]]);
    assert_eq!(values(&api[1]), [[250_000]]);
    assert_eq!(values(&db[0]), [[30_000_000]]);
}

#[test]
fn stacks_list_the_leaf_first_and_inlined_functions_before_their_caller() {
    let request = decoded(&window());
    let dict = dictionary(&request);
    let (api, db) = (profiles(&request, 0), profiles(&request, 1));
    let api_stack = ["ksys_read", "inlined", "outer", "main"];
    assert_eq!(stack_names(dict, api[0].samples[0].stack_index), api_stack);
    assert_eq!(stack_names(dict, api[1].samples[0].stack_index), api_stack);
    assert_eq!(
        stack_names(dict, db[0].samples[0].stack_index),
        ["query", "main"]
    );
    // `inlined` and `outer` share one location, at its address in the
    // mapping of /usr/bin/api, whose build id it carries.
    let stack = &dict.stack_table[api[0].samples[0].stack_index as usize];
    let location = &dict.location_table[stack.location_indices[1] as usize];
    assert_eq!((location.address, location.lines.len()), (0x2020, 2));
    assert_eq!(location.lines[1].line, 12);
    let mapping = &dict.mapping_table[location.mapping_index as usize];
    assert_eq!(string(dict, mapping.filename_strindex), "/usr/bin/api");
    let range = (
        mapping.memory_start,
        mapping.memory_limit,
        mapping.file_offset,
    );
    assert_eq!(range, (0x1000, 0x3000, 0x4000));
    assert_eq!(
        attributes(dict, &mapping.attribute_indices),
        ["process.executable.build_id.gnu=abcd12"]
    );
    let outer = &dict.function_table[location.lines[1].function_index as usize];
    assert_eq!(string(dict, outer.filename_strindex), "/src/api.c");
}

#[test]
fn samples_carry_process_and_thread_attributes() {
    let request = decoded(&window());
    let dict = dictionary(&request);
    let (api, db) = (profiles(&request, 0), profiles(&request, 1));
    let api_attributes = [
        "process.pid=7",
        "thread.id=8",
        "thread.name=worker",
        "process.executable.name=api",
        "process.executable.path=/usr/bin/api",
        "container.id=c0ffee",
    ];
    let on = attributes(dict, &api[0].samples[0].attribute_indices);
    assert_eq!(on, api_attributes);
    let off = attributes(dict, &api[1].samples[0].attribute_indices);
    let state = "thread.state=uninterruptible";
    assert_eq!(
        off,
        [&api_attributes[..3], &[state], &api_attributes[3..]].concat()
    );
    let db_attributes = attributes(dict, &db[0].samples[0].attribute_indices);
    assert_eq!(
        db_attributes,
        [
            "process.pid=9",
            "thread.id=10",
            "process.executable.name=db"
        ]
    );
}

#[test]
fn identical_samples_are_added_up() {
    let mut window = window();
    let pprof = &mut window.services[1].pprof;
    pprof.sample.push(pprof.sample[0].clone());
    let request = decoded(&window);
    let samples = &profiles(&request, 1)[0].samples;
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].values, [60_000_000]);
}

#[test]
fn profile_ids_differ_by_window_service_and_type() {
    let window = window();
    let ids = |window: &PushWindow| -> Vec<Vec<u8>> {
        let request = request(window);
        let all = request.resource_profiles.into_iter();
        let all = all.flat_map(|r| r.scope_profiles).flat_map(|s| s.profiles);
        all.map(|p| p.profile_id).collect()
    };
    let mut next = window.clone();
    next.index += 1;
    let mut all = [ids(&window), ids(&next)].concat();
    assert_eq!(all.len(), 6);
    assert!(
        all.iter()
            .all(|id| id.len() == 16 && id.iter().any(|&b| b != 0))
    );
    // A retried window keeps its ids.
    assert_eq!(ids(&window), ids(&window.clone()));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 6);
}
