use super::*;

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bpfprof-dir-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_planted_link_is_replaced_not_followed() {
    let root = scratch("link");
    let target = root.join("secret");
    std::fs::write(&target, "keep me").unwrap();
    let out_path = root.join("out");
    std::fs::create_dir(&out_path).unwrap();
    std::os::unix::fs::symlink(&target, out_path.join("report.json")).unwrap();
    assert!(
        OutDir::named(&out_path, false, None)
            .err()
            .unwrap()
            .contains("not empty; use --force"),
    );
    let out = OutDir::named(&out_path, true, None).unwrap();
    out.write("report.json", |w| Ok(w.write_all(b"{}")?))
        .unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    let written = std::fs::symlink_metadata(out_path.join("report.json")).unwrap();
    assert!(written.is_file(), "the link itself was replaced");
    assert_eq!(names(&out_path), ["report.json"], "no temporary left");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_link_as_the_directory_is_refused_even_with_force() {
    let root = scratch("dirlink");
    std::fs::create_dir(root.join("real")).unwrap();
    std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
    for force in [false, true] {
        for name in ["link", "link/"] {
            let err = OutDir::named(&root.join(name), force, None).err().unwrap();
            assert!(err.contains("is a symbolic link"), "{err}");
        }
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_taken_name_gets_a_suffix() {
    let root = scratch("taken");
    let base = root.join("bpfprof-20260101-120000");
    std::fs::create_dir(&base).unwrap();
    let out = OutDir::create_new(&base, None).unwrap();
    assert_eq!(out.path(), root.join("bpfprof-20260101-120000-1"));
    let next = OutDir::create_new(&base, None).unwrap();
    assert_eq!(next.path(), root.join("bpfprof-20260101-120000-2"));
    assert!(names(&base).is_empty(), "the taken one is left alone");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_failed_write_leaves_no_file_and_no_temporary() {
    let root = scratch("failed");
    let out = OutDir::named(&root.join("out"), false, None).unwrap();
    out.write("on-cpu.folded", |w| Ok(w.write_all(b"old 1\n")?))
        .unwrap();
    let err = out
        .write("on-cpu.folded", |w| {
            w.write_all(b"half a li")?;
            anyhow::bail!("disk full")
        })
        .unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        format!(
            "writing {}: disk full",
            root.join("out/on-cpu.folded").display()
        )
    );
    assert_eq!(names(&root.join("out")), ["on-cpu.folded"]);
    assert_eq!(
        std::fs::read_to_string(root.join("out/on-cpu.folded")).unwrap(),
        "old 1\n",
        "the previous file stays whole"
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn removing_a_subdirectory_takes_only_the_files_written_there() {
    let root = scratch("remove");
    let out = OutDir::named(&root.join("out"), false, None).unwrap();
    let windows = out.subdir("windows").unwrap();
    let one = windows.new_subdir("000000-a").unwrap();
    one.write("report.json", |w| Ok(w.write_all(b"{}")?))
        .unwrap();
    let id = one.identity().unwrap();
    let written = vec!["report.json".to_string()];
    windows.remove_subdir("000000-a", id, &written).unwrap();
    assert!(names(&root.join("out/windows")).is_empty());

    let two = windows.new_subdir("000001-a").unwrap();
    two.write("report.json", |w| Ok(w.write_all(b"{}")?))
        .unwrap();
    std::fs::write(root.join("out/windows/000001-a/notes"), "mine").unwrap();
    let id = two.identity().unwrap();
    assert!(windows.remove_subdir("000001-a", id, &written).is_err());
    assert_eq!(names(&root.join("out/windows/000001-a")), ["notes"]);

    // A directory put in place of the one written is not touched.
    std::fs::create_dir(root.join("out/windows/000002-a")).unwrap();
    std::fs::write(root.join("out/windows/000002-a/report.json"), "x").unwrap();
    assert!(windows.remove_subdir("000002-a", id, &written).is_err());
    assert_eq!(names(&root.join("out/windows/000002-a")), ["report.json"]);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn an_uncreatable_directory_is_named() {
    let err = OutDir::named(Path::new("/proc/bpfprof-cannot-exist"), false, None)
        .err()
        .unwrap();
    assert!(
        err.starts_with("--output /proc/bpfprof-cannot-exist: cannot create"),
        "{err}"
    );
}
