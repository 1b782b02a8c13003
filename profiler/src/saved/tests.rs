use super::*;

#[test]
fn folded_lines_parse_and_errors_name_the_line() {
    let counts =
        parse_folded("# comment\napp;main;work 3\n\napp;main;work 2\napp;main 1\n").unwrap();
    assert_eq!(counts["app;main;work"], 5);
    assert_eq!(counts.len(), 2);
    assert_eq!(
        parse_folded("app;main 1\napp;main\n").unwrap_err(),
        (2, "expected `stack count`, found `app;main`".into())
    );
    assert_eq!(parse_folded("app;main x\n").unwrap_err().0, 1);
    assert!(
        parse_folded(" 5\n")
            .unwrap_err()
            .1
            .contains("without a stack")
    );
}

#[test]
fn counts_that_add_up_past_the_limit_are_refused() {
    let too_large = |line| {
        (
            line,
            format!("count too large: the counts add up to more than {MAX_TOTAL}"),
        )
    };
    assert_eq!(
        parse_folded(&format!("a;b {MAX_TOTAL}\n")).unwrap()["a;b"],
        MAX_TOTAL
    );
    let max = u64::MAX;
    assert_eq!(
        parse_folded(&format!("a;b 1\na;c {max}\na;c {max}\n")).unwrap_err(),
        too_large(2)
    );
    let half = MAX_TOTAL / 2 + 1;
    assert_eq!(
        parse_folded(&format!("a;b {half}\n\na;b {half}\n")).unwrap_err(),
        too_large(3),
        "the same stack twice"
    );
    assert_eq!(
        parse_folded("a;b 18446744073709551616\n").unwrap_err(),
        too_large(1)
    );
}

#[test]
fn long_lines_are_refused_and_names_made_printable() {
    let long = format!("app;{} 1\n", "f;".repeat(MAX_LINE_BYTES / 2));
    assert_eq!(
        parse_folded(&format!("app;main 1\n{long}")).unwrap_err(),
        (2, "line longer than 1 MiB".to_string())
    );
    let counts = parse_folded("\x1b[31mapp;ma\u{9b}in 2\n").unwrap();
    assert_eq!(counts["\\x1b[31mapp;ma\\u{9b}in"], 2);
    let (_, msg) = parse_folded("app;\x1b[2Jmain\n").unwrap_err();
    assert!(
        msg.contains("app;\\x1b[2Jmain") && !msg.contains('\x1b'),
        "{msg}"
    );
}

#[test]
fn only_regular_files_are_read_and_only_so_much() {
    let dir = std::env::temp_dir().join(format!("bpfprof-saved-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let error = |path: &Path, limit| read_bounded(path, limit).unwrap_err().to_string();
    assert_eq!(
        error(Path::new("/dev/zero"), 1 << 20),
        "/dev/zero: not a regular file"
    );
    let fifo = dir.join("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    assert!(error(&fifo, 1 << 20).ends_with("fifo: not a regular file"));
    let big = dir.join("big");
    std::fs::write(&big, [b'x'; 2048]).unwrap();
    assert!(error(&big, 1024).ends_with("big: larger than 0 MiB"));
    assert_eq!(read_bounded(&big, 2048).unwrap().len(), 2048);
    let binary = dir.join("binary");
    std::fs::write(&binary, b"a 1\nb 2\n\xff\xfe 3\n").unwrap();
    assert!(error(&binary, 1024).ends_with("binary:3: not UTF-8 text"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A saved report.json may say anything: its names come back printable,
/// and one that is not a report is refused naming the file.
#[test]
fn reports_are_read_typed_with_printable_names() {
    let dir = std::env::temp_dir().join(format!("bpfprof-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = r#""run": {"bpfprof_version": "0", "hostname": "h\u001b[2J", "kernel": "k",
        "cpus": 1, "freq_hz": 99, "target": "t", "start_time": "s", "duration_secs": 1.0}"#;
    let report = format!(
        r#"{{{run}, "processes": [{{"pid": 4, "name": "a\u001b]0;x", "samples": 1, "percent": 100.0}}],
        "hot_functions": [{{"name": "f\u009b", "module": "m\u0007", "self": 1, "total": 1,
        "self_percent": 100.0, "total_percent": 100.0}}],
        "errors": {{"unknown_frames_by_module": {{"\u001bm": 3}}}}}}"#
    );
    std::fs::write(dir.join("report.json"), report).unwrap();
    let read = read_report(&dir).unwrap();
    assert_eq!(read.run.hostname, "h\\x1b[2J");
    assert_eq!(read.processes[0].name, "a\\x1b]0;x");
    assert_eq!(read.hot_functions[0].name, "f\\u{9b}");
    assert_eq!(read.hot_functions[0].module, "m\\x07");
    assert_eq!(read.errors.unknown_frames_by_module["\\x1bm"], 3);
    assert!(read.call_paths.is_empty() && read.off_cpu.is_none());
    std::fs::write(dir.join("report.json"), r#"{"run": 5}"#).unwrap();
    let err = format!("{:#}", read_report(&dir).unwrap_err());
    assert!(
        err.contains("report.json: not a bpfprof report: invalid type"),
        "{err}"
    );
    std::fs::write(dir.join("report.json"), "{").unwrap();
    let err = format!("{:#}", read_report(&dir).unwrap_err());
    assert!(err.contains("report.json: not valid JSON"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rebuilt_profiles_keep_frame_kinds_processes_and_states() {
    let pids = HashMap::from([("app".to_string(), 42)]);
    let modules = HashMap::from([("main".to_string(), "app".to_string())]);
    let mut rebuilder = Rebuilder::new(&pids, &modules);
    rebuilder.add_on_cpu(
        &parse_folded("app;main;helper_[i];sys_read_[k] 4\nother;[libx.so+0x10] 1\n").unwrap(),
    );
    rebuilder.add_off_cpu(&parse_folded("app;main;schedule_[k];[uninterruptible] 900\n").unwrap());
    let p = rebuilder.profile;
    assert_eq!(p.processes[&42].samples, 4);
    assert_eq!(p.processes[&42].off_us, [0, 900, 0, 0]);
    let (site, _) = p.on_cpu.iter().find(|(s, _)| s.tgid == 42).unwrap();
    let kinds: Vec<FrameKind> = site.frames.iter().map(|&f| p.frames.get(f).kind).collect();
    assert_eq!(
        kinds,
        [FrameKind::User, FrameKind::Inlined, FrameKind::Kernel]
    );
    assert_eq!(p.frames.get(site.frames[0]).module.as_deref(), Some("app"));
    assert_eq!(
        p.processes.values().filter(|p| p.name == "other").count(),
        1
    );
}
