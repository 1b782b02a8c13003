use super::*;
use crate::{
    analysis,
    profile::{Frame, FrameKind, OffState, Profile, StackSite},
};

fn profile() -> Profile {
    let mut p = Profile::default();
    p.name_process(7, || "app".into());
    p.name_thread(7, 8, || "worker".into());
    let mut frame = |name: &str, kind| {
        p.frames.intern(Frame {
            name: name.into(),
            module: Some("app".into()),
            kind,
        })
    };
    let frames = vec![
        frame("main", FrameKind::User),
        frame("work", FrameKind::User),
    ];
    let site = StackSite {
        tgid: 7,
        tid: 8,
        pcs: vec![0x10, 0x20],
        frames,
        lines: Vec::new(),
    };
    p.add(site.clone(), 3);
    p.add_off_cpu(site, OffState::Sleeping, 1500);
    p.losses
        .unknown_frames_by_module
        .insert("libx.so".into(), 2);
    p.losses
        .unwind_tables_not_loaded_by_binary
        .insert("/usr/lib/libbig.so".into(), 1 << 20);
    p.losses.python_not_walked_by_process.insert(
        "python2.7 (pid 12)".into(),
        "CPython 2.7: not supported".into(),
    );
    p
}

/// The report of `profile()`, with or without its off-CPU time.
fn report(off_cpu: bool) -> Report {
    let profile = profile();
    let summary = analysis::summarize(&profile, off_cpu, 10_000.0);
    let meta = RunMeta::new(
        100,
        "pid 7".into(),
        std::time::UNIX_EPOCH,
        Default::default(),
    );
    Report::new(&meta, &summary, &profile.losses, &["report.json"])
}

/// What `report` reads is what was written: the text written, read
/// back and written again, is the same, off-CPU parts included.
#[test]
fn a_report_reads_back_as_written() {
    let written = report(true);
    assert!(written.off_cpu.is_some() && !written.hot_functions.is_empty());
    let text = written.to_json();
    let read: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(read, written);
    assert_eq!(read.to_json(), text);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let function = &value["hot_functions"][0];
    assert!(
        function["self"].is_u64() && function["total"].is_u64(),
        "{function}"
    );
    assert_eq!(value["off_cpu"]["processes"][0]["pid"], 7);
    assert_eq!(value["off_cpu"]["processes"][0]["threads"][0]["tid"], 8);
    assert!(value.get("off_cpu_call_paths").is_some());
}

/// Saved runs of older versions, whose off-CPU processes and threads
/// were keyed `id`, still read.
#[test]
fn older_reports_keyed_id_still_read() {
    let mut value = serde_json::to_value(report(true)).unwrap();
    let process = &mut value["off_cpu"]["processes"][0];
    let pid = process.as_object_mut().unwrap().remove("pid").unwrap();
    process["id"] = pid;
    let thread = &mut process["threads"][0];
    let tid = thread.as_object_mut().unwrap().remove("tid").unwrap();
    thread["id"] = tid;
    let read: Report = serde_json::from_value(value).unwrap();
    let process = &read.off_cpu.unwrap().processes[0];
    assert_eq!((process.pid, process.threads[0].tid), (7, 8));
}

fn schema() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/report.schema.json"
    )))
    .unwrap();
    jsonschema::meta::validate(&schema).expect("a valid JSON Schema");
    jsonschema::validator_for(&schema).unwrap()
}

fn schema_errors(validator: &jsonschema::Validator, value: &serde_json::Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// docs/report.schema.json describes what is written, every field of it,
/// with off-CPU time and without; a field it does not list is refused.
#[test]
fn reports_match_their_schema() {
    let validator = schema();
    for off_cpu in [true, false] {
        let value = serde_json::to_value(report(off_cpu)).unwrap();
        assert_eq!(
            schema_errors(&validator, &value),
            Vec::<String>::new(),
            "{value:#}"
        );
        assert_eq!(value.get("off_cpu").is_some(), off_cpu);
        assert_eq!(value.get("off_cpu_call_paths").is_some(), off_cpu);
    }
    let mut value = serde_json::to_value(report(true)).unwrap();
    value["off_cpu"]["processes"][0]["threads"][0]["id"] = 8.into();
    value["errors"]
        .as_object_mut()
        .unwrap()
        .remove("perf_maps_cut");
    let errors = schema_errors(&validator, &value);
    assert!(
        errors.iter().any(|e| e.contains("'id' was unexpected")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("\"perf_maps_cut\" is a required")),
        "{errors:?}"
    );
}
