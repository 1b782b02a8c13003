use super::*;
use crate::profile::{Frame, MappedFile, OffState};
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
    p.frames.note_source_file(outer, "/src/app.c");
    p.frames.note_source_file(inlined, "/src/app.h");
    p.frames.note_symbol(outer, "_Z5outerv");
    p.frames.note_mapping(
        7,
        MappedFile {
            start: 0x1000,
            limit: 0x3000,
            file_offset: 0x4000,
            path: "/usr/bin/app".into(),
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
    p.add(
        StackSite {
            tgid: 7,
            tid: 8,
            frames: vec![lost],
            pcs: vec![0],
            lines: vec![0],
        },
        1,
    );
    p.add_off_cpu(site, OffState::Uninterruptible, 250);
    p
}

/// `profile()` written as profile.pb.gz and read back.
fn written_and_decoded() -> proto::Profile {
    let mut meta = RunMeta::new(
        100,
        "pid 7".into(),
        std::time::SystemTime::now(),
        Default::default(),
    );
    meta.duration_secs = 2.0;
    let mut gz = Vec::new();
    write(
        &mut gz,
        &build(&profile(), &meta, true, 1_700_000_000_000_000_000),
    )
    .unwrap();
    let mut bytes = Vec::new();
    GzDecoder::new(gz.as_slice())
        .read_to_end(&mut bytes)
        .unwrap();
    proto::Profile::decode(bytes.as_slice()).unwrap()
}

/// Every id a location, line or sample holds names an entry.
fn assert_ids_resolve(decoded: &proto::Profile) {
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
            let _ = &decoded.string_table[label.key as usize];
            let _ = &decoded.string_table[label.str as usize];
        }
    }
}

#[test]
fn round_trips_with_every_id_resolved() {
    let decoded = written_and_decoded();
    assert_ids_resolve(&decoded);
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
    // Each line of the location: its function's file, the line in it, and
    // the symbol as the binary spells it.
    let places: Vec<(&str, &str, i64)> = inline
        .line
        .iter()
        .map(|l| {
            let f = &decoded.function[l.function_id as usize - 1];
            (s(f.filename), s(f.system_name), l.line)
        })
        .collect();
    assert_eq!(
        places,
        [
            ("/src/app.h", "inlined", 40),
            ("/src/app.c", "_Z5outerv", 12)
        ]
    );
    // Mapped where the process had the file: the range and file offset.
    let mapping = &decoded.mapping[inline.mapping_id as usize - 1];
    assert_eq!(
        (
            mapping.memory_start,
            mapping.memory_limit,
            mapping.file_offset
        ),
        (0x1000, 0x3000, 0x4000)
    );
    assert_eq!(s(mapping.filename), "/usr/bin/app");
    assert_eq!(s(decoded.default_sample_type), "cpu");
    // Leaf first: the kernel frame leads the on-CPU sample, named, but
    // without its address.
    let on_cpu = decoded.sample.iter().find(|s| s.value[0] == 5).unwrap();
    let leaf = &decoded.location[on_cpu.location_id[0] as usize - 1];
    assert_eq!(leaf.address, 0);
    assert_eq!(
        s(decoded.function[leaf.line[0].function_id as usize - 1].name),
        "ksys_read"
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

#[test]
fn values_past_int64_saturate() {
    let mut p = Profile::default();
    p.name_process(7, || "app".into());
    let main = p.frames.intern(Frame::pseudo("main"));
    let site = StackSite {
        tgid: 7,
        tid: 7,
        frames: vec![main],
        pcs: vec![0],
        lines: vec![0],
    };
    p.add(site.clone(), i64::MAX as u64);
    p.add_off_cpu(site, OffState::Sleeping, u64::MAX);
    let meta = RunMeta::new(
        99,
        "pid 7".into(),
        std::time::SystemTime::now(),
        Default::default(),
    );
    let values: Vec<Vec<i64>> = build(&p, &meta, true, 0)
        .sample
        .into_iter()
        .map(|s| s.value)
        .collect();
    assert!(values.contains(&vec![i64::MAX, i64::MAX, 0]), "{values:?}");
    assert!(values.contains(&vec![0, 0, i64::MAX]), "{values:?}");
}
