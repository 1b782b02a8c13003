//! No kernel addresses in the outputs, which are 0644 and made to be
//! shared: one would give away where KASLR put the kernel, which
//! /proc/kallsyms hides from unprivileged users. Kernel frames keep their
//! names; user addresses stay. profile.pb.gz is read here by a decoder of
//! its own, not bpfprof's types.

use std::io::Read;

use integration_tests::{
    Workload,
    pprof::{messages, varint_field},
    profile, require_bpf,
};

#[test]
#[ignore = "needs root and BPF"]
fn kernel_addresses_stay_out_of_the_outputs() {
    let _bpf = require_bpf();
    let workload = Workload::start("wl-syscall", &[]);
    let run = profile(
        "kaslr",
        &[
            "--pid",
            &workload.pid().to_string(),
            "-d",
            "1",
            "--format",
            "folded,svg,json,pprof,speedscope",
        ],
    );
    run.assert_success();
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(run.dir.join("profile.pb.gz")).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    // profile.proto: mapping 3 (id 1, filename 5), location 4 (id 1,
    // mapping_id 2, address 3, line 4 with function_id 1), function 5 (id
    // 1, name 2), string_table 6.
    let strings: Vec<String> = messages(&bytes, 6)
        .into_iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let kernel_mapping = messages(&bytes, 3)
        .into_iter()
        .find(|m| strings[varint_field(m, 5) as usize] == "[kernel.kallsyms]")
        .map(|m| varint_field(m, 1))
        .expect("a kernel mapping: wl-syscall spends its time in read(2)");
    let function_names: Vec<(u64, String)> = messages(&bytes, 5)
        .into_iter()
        .map(|f| {
            (
                varint_field(f, 1),
                strings[varint_field(f, 2) as usize].clone(),
            )
        })
        .collect();
    let (mut kernel, mut user_with_address) = (Vec::new(), 0);
    for location in messages(&bytes, 4) {
        let address = varint_field(location, 3);
        if varint_field(location, 2) == kernel_mapping {
            let function = varint_field(messages(location, 4)[0], 1);
            let name = &function_names
                .iter()
                .find(|(id, _)| *id == function)
                .unwrap()
                .1;
            kernel.push((address, name.clone()));
        } else if address != 0 {
            user_with_address += 1;
        }
    }
    assert!(
        kernel.iter().any(|(_, name)| name.contains("read")),
        "kernel frames keep their names: {kernel:?}"
    );
    assert!(
        kernel.iter().all(|&(address, _)| address == 0),
        "kernel addresses in profile.pb.gz: {kernel:?}"
    );
    assert!(user_with_address > 0, "user addresses stay");
    for name in [
        "on-cpu.folded",
        "on-cpu.svg",
        "report.json",
        "speedscope.json",
    ] {
        let text = std::fs::read_to_string(run.dir.join(name)).unwrap();
        assert!(
            !text.to_ascii_lowercase().contains("0xffff"),
            "a kernel address in {name}"
        );
    }
}
