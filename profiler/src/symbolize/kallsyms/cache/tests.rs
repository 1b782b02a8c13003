//! The copy's checks, in a scratch directory standing for /run/bpfprof
//! (owned by whoever runs the tests, who stands for root).

use super::*;
use std::{
    os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt, symlink},
    sync::mpsc,
    time::Duration,
};

const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff81000010 T do_one
ffffffff81000020 t helper
ffffffff81200000 T _etext
ffffffffc0000000 t mod_func\t[some_mod]
";

/// A private directory holding the root (`bpfprof`), removed when dropped.
struct Scratch {
    base: PathBuf,
}

impl Scratch {
    fn new(test: &str) -> Scratch {
        let base =
            std::env::temp_dir().join(format!("bpfprof-cache-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::DirBuilder::new().mode(0o700).create(&base).unwrap();
        Scratch { base }
    }

    fn store(&self, boot_id: &str) -> Store {
        Store {
            root: self.base.join("bpfprof"),
            boot_id: boot_id.to_string(),
            // SAFETY: geteuid cannot fail.
            owner: unsafe { libc::geteuid() },
        }
    }

    fn copy(&self, boot_id: &str) -> PathBuf {
        self.base.join("bpfprof").join(boot_id).join(COPY)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// The store's answer, and whether it had to read /proc/kallsyms (stood
/// for by `KALLSYMS`) to make a new copy. Fails rather than hang.
fn core_text(store: Store) -> (Result<CoreText, NoCopy>, bool) {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut read = false;
        let result = store.core_text(|| {
            read = true;
            Some(KALLSYMS.to_string())
        });
        let _ = send.send((result, read));
    });
    receive
        .recv_timeout(Duration::from_secs(10))
        .expect("the store blocked")
}

fn whole(scratch: &Scratch, boot_id: &str) -> CoreText {
    CoreText {
        kallsyms: scratch.copy(boot_id),
        start: 0xffffffff81000000,
        end: 0xffffffff81200000,
    }
}

#[test]
fn a_copy_is_made_once_then_used() {
    let scratch = Scratch::new("made");
    let (made, read) = core_text(scratch.store("boot-a"));
    assert_eq!(made, Ok(whole(&scratch, "boot-a")));
    assert!(read);
    let text = fs::read_to_string(scratch.copy("boot-a")).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    assert!(
        header.starts_with(
            "# bpfprof-kallsyms v1 boot=boot-a start=ffffffff81000000 end=ffffffff81200000 symbols=4 fnv64="
        ),
        "{header}"
    );
    assert_eq!(body.lines().count(), 4);
    for dir in [
        scratch.base.join("bpfprof"),
        scratch.base.join("bpfprof/boot-a"),
    ] {
        assert_eq!(fs::metadata(dir).unwrap().mode() & 0o777, 0o700);
    }
    let (used, read) = core_text(scratch.store("boot-a"));
    assert_eq!(used, Ok(whole(&scratch, "boot-a")));
    assert!(!read, "a whole copy is used as it is");
}

#[test]
fn a_damaged_copy_is_made_anew() {
    let scratch = Scratch::new("damaged");
    let _ = core_text(scratch.store("boot-a"));
    let good = fs::read_to_string(scratch.copy("boot-a")).unwrap();
    let header_end = good.find('\n').unwrap() + 1;
    let other_boot = good.replace("boot=boot-a", "boot=boot-b");
    let damages: [(&str, String); 7] = [
        ("cut in a line", good[..good.len() - 7].to_string()),
        (
            "cut after a line",
            good[..good.rfind("ffffffff81200000").unwrap()].to_string(),
        ),
        ("a byte changed", good.replace("do_one", "do_0ne")),
        ("no header", good[header_end..].to_string()),
        ("another boot's", other_boot),
        ("garbage", "garbage\n\u{1}\u{2}".repeat(100)),
        ("empty", String::new()),
    ];
    for (damage, text) in damages {
        fs::write(scratch.copy("boot-a"), text).unwrap();
        let (result, read) = core_text(scratch.store("boot-a"));
        assert_eq!(result, Ok(whole(&scratch, "boot-a")), "{damage}");
        assert!(read, "{damage}: not made anew");
        assert_eq!(
            fs::read_to_string(scratch.copy("boot-a")).unwrap(),
            good,
            "{damage}"
        );
    }
}

#[test]
fn special_files_links_and_loose_modes_are_replaced_not_used() {
    let scratch = Scratch::new("special");
    let _ = core_text(scratch.store("boot-a"));
    let copy = scratch.copy("boot-a");
    let good = fs::read(&copy).unwrap();
    let elsewhere = scratch.base.join("elsewhere");
    fs::write(&elsewhere, &good).unwrap();
    let plant: [(&str, &dyn Fn()); 5] = [
        ("a FIFO", &|| {
            let path = std::ffi::CString::new(copy.to_str().unwrap()).unwrap();
            // SAFETY: a valid C string; mkfifo only creates a file.
            assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        }),
        ("a link to a whole copy", &|| {
            symlink(&elsewhere, &copy).unwrap()
        }),
        ("a directory", &|| fs::create_dir(&copy).unwrap()),
        ("a copy others can write", &|| {
            fs::write(&copy, &good).unwrap();
            fs::set_permissions(&copy, fs::Permissions::from_mode(0o622)).unwrap();
        }),
        ("a copy too large", &|| {
            fs::write(&copy, &good).unwrap();
            let file = fs::OpenOptions::new().append(true).open(&copy).unwrap();
            file.set_len(MAX_COPY_BYTES + 1).unwrap();
        }),
    ];
    for (what, plant) in plant {
        fs::remove_file(&copy).unwrap();
        plant();
        let (result, read) = core_text(scratch.store("boot-a"));
        assert_eq!(result, Ok(whole(&scratch, "boot-a")), "{what}");
        assert!(read, "{what}: used");
        let meta = fs::symlink_metadata(&copy).unwrap();
        assert!(meta.is_file() && meta.mode() & 0o777 == 0o600, "{what}");
        assert_eq!(fs::read(&copy).unwrap(), good, "{what}");
    }
    assert_eq!(
        fs::read(&elsewhere).unwrap(),
        good,
        "a link's target is left alone"
    );
}

#[test]
fn a_link_for_the_boot_directory_is_replaced_and_other_boots_dropped() {
    let scratch = Scratch::new("bootlink");
    let _ = core_text(scratch.store("boot-a"));
    let elsewhere = scratch.base.join("elsewhere");
    fs::rename(scratch.base.join("bpfprof/boot-a"), &elsewhere).unwrap();
    symlink(&elsewhere, scratch.base.join("bpfprof/boot-a")).unwrap();
    let (result, read) = core_text(scratch.store("boot-a"));
    assert_eq!(result, Ok(whole(&scratch, "boot-a")));
    assert!(read);
    assert!(
        fs::symlink_metadata(scratch.base.join("bpfprof/boot-a"))
            .unwrap()
            .is_dir()
    );
    assert!(
        elsewhere.join(COPY).is_file(),
        "the link's target is left alone"
    );

    let (result, _) = core_text(scratch.store("boot-b"));
    assert_eq!(result, Ok(whole(&scratch, "boot-b")));
    assert!(
        !scratch.base.join("bpfprof/boot-a").exists(),
        "an earlier boot's copy stays"
    );
}

#[test]
fn directories_others_can_change_are_neither_used_nor_deleted() {
    let scratch = Scratch::new("unsafe");
    let _ = core_text(scratch.store("boot-a"));
    let root = scratch.base.join("bpfprof");
    let mode = |path: &Path, mode| fs::set_permissions(path, fs::Permissions::from_mode(mode));
    let refused = |expected: &str| {
        let (result, read) = core_text(scratch.store("boot-a"));
        let Err(NoCopy::Unsafe(problem)) = result else {
            panic!("{expected}: {result:?}");
        };
        assert!(problem.contains(expected), "{problem}");
        assert!(!read);
        assert!(scratch.copy("boot-a").is_file(), "{expected}: deleted");
    };
    mode(&root, 0o777).unwrap();
    refused(&format!(
        "{} can be written by others (mode 777)",
        root.display()
    ));
    mode(&root, 0o700).unwrap();

    let boot = root.join("boot-a");
    mode(&boot, 0o770).unwrap();
    refused("boot-a can be written by others (mode 770)");
    mode(&boot, 0o700).unwrap();

    mode(&scratch.base, 0o1777).unwrap();
    refused(&format!(
        "{} can be written by others",
        scratch.base.display()
    ));
    mode(&scratch.base, 0o700).unwrap();

    let mut store = scratch.store("boot-a");
    store.owner += 1;
    let result = store.core_text(|| None);
    assert!(
        matches!(&result, Err(NoCopy::Unsafe(p)) if p.contains("is owned by uid")),
        "{result:?}"
    );

    let real = scratch.base.join("real");
    fs::rename(&root, &real).unwrap();
    symlink(&real, &root).unwrap();
    let (result, _) = core_text(scratch.store("boot-a"));
    assert_eq!(
        result,
        Err(NoCopy::Unsafe(format!(
            "{} is a symbolic link",
            root.display()
        )))
    );
    assert!(real.join("boot-a").join(COPY).is_file());
}

#[test]
fn without_a_parent_directory_or_symbols_there_is_quietly_no_copy() {
    let scratch = Scratch::new("missing");
    let mut store = scratch.store("boot-a");
    store.root = scratch.base.join("no-run/bpfprof");
    assert_eq!(core_text(store).0, Err(NoCopy::Unavailable));
    let hidden = scratch
        .store("boot-a")
        .core_text(|| Some("0000000000000000 T _stext\n0000000000000000 T _etext\n".into()));
    assert_eq!(hidden, Err(NoCopy::Unavailable));
    assert!(!scratch.copy("boot-a").exists());
}
