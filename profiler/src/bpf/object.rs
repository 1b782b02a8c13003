//! The BPF object a run loads: the one embedded at build time, or the file
//! `--bpf-object` names. The file is checked before anything is created or
//! loaded: a regular file (opened without blocking, so a FIFO or a device
//! cannot hang bpfprof), of bounded size, a BPF ELF that parses, whose maps
//! at the run's sizes fit in the machine (see `map_memory`).

use std::{borrow::Cow, path::Path};

use super::map_memory;
use crate::{
    cli::Config,
    untrusted_file::{self, NotRead},
};

#[cfg(bpfprof_embedded_obj)]
static EMBEDDED: Option<&[u8]> = Some(aya::include_bytes_aligned!(concat!(
    env!("OUT_DIR"),
    "/profiler-ebpf.o"
)));
#[cfg(not(bpfprof_embedded_obj))]
static EMBEDDED: Option<&[u8]> = None;

/// Far above any BPF object bpfprof builds (a few MiB with debug info).
const MAX_BYTES: u64 = 256 << 20;

/// `EM_BPF`, the ELF machine of BPF objects.
const EM_BPF: u16 = 247;

/// A run's BPF object: the bytes checked before the run are the bytes
/// loaded. None when this bpfprof was built without one and no
/// `--bpf-object` was given.
pub(crate) type ObjectBytes = Option<Cow<'static, [u8]>>;

/// The object's bytes: `--bpf-object`'s file, else the embedded object.
/// The error is the line to print.
fn bytes(config: &Config) -> Result<ObjectBytes, String> {
    match &config.bpf_object {
        Some(path) => read(path).map(|b| Some(Cow::Owned(b))),
        None => Ok(EMBEDDED.map(Cow::Borrowed)),
    }
}

/// Reads and checks the object and the memory its maps would take, before
/// anything is created, and returns it for loading; the error is the line
/// to print (bad input: exit status 2).
pub(crate) fn check(config: &Config) -> Result<ObjectBytes, String> {
    let Some(bytes) = bytes(config)? else {
        // Loading says how to build one.
        return Ok(None);
    };
    let shown = config
        .bpf_object
        .as_ref()
        .map_or("the embedded BPF object".into(), |p| {
            format!("--bpf-object {}", p.display())
        });
    let object = parse(&bytes).map_err(|why| format!("{shown}: {why}"))?;
    if let Some(mem_total) = map_memory::mem_total() {
        let cpus = super::online_cpu_count();
        map_memory::check(
            config,
            &map_memory::planned(config, &object, cpus),
            mem_total,
        )?;
    }
    Ok(Some(bytes))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    let fail = |why: String| format!("--bpf-object {}: {why}", path.display());
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => e.to_string(),
    };
    let file = untrusted_file::open(path, true).map_err(|e| fail(io(e)))?;
    untrusted_file::read_whole(file, MAX_BYTES).map_err(|why| {
        fail(match why {
            NotRead::Io(e) => io(e),
            NotRead::NotRegular(kind) => {
                format!("{}, not a BPF object file", untrusted_file::describe(kind))
            }
            NotRead::TooLarge(len) => format!("{} MiB, too large for a BPF object", len >> 20),
            NotRead::Grew => "grew past the size a BPF object can have".into(),
        })
    })
}

/// Parses a BPF object; the error says why it is not one, in a phrase.
fn parse(bytes: &[u8]) -> Result<aya_obj::Object, String> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file, so not a BPF object".into());
    }
    let machine = match (bytes.get(5), bytes.get(18..20)) {
        (Some(1), Some(m)) => u16::from_le_bytes([m[0], m[1]]),
        (Some(2), Some(m)) => u16::from_be_bytes([m[0], m[1]]),
        _ => return Err("a truncated or malformed ELF file".into()),
    };
    if machine != EM_BPF {
        return Err(format!(
            "an ELF file for another machine (e_machine {machine}), not a BPF object"
        ));
    }
    // The error's own text only: its source repeats it.
    aya_obj::Object::parse(bytes).map_err(|e| format!("not a BPF object bpfprof can load: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bpf_elf_files_parse() {
        assert!(parse(b"").unwrap_err().contains("not an ELF"));
        assert!(parse(b"hello world").unwrap_err().contains("not an ELF"));
        let own = std::fs::read("/proc/self/exe").unwrap();
        let err = parse(&own).unwrap_err();
        assert!(err.contains("another machine"), "{err}");
        if let Some(embedded) = EMBEDDED {
            parse(embedded).unwrap();
        }
    }

    #[test]
    fn the_object_declares_exactly_the_names_userspace_knows() {
        use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
        use profiler_common::names;
        let Some(embedded) = EMBEDDED else { return };
        let elf = object::File::parse(embedded).unwrap();
        let in_section = |section: &str| -> Vec<String> {
            let mut found: Vec<String> = elf
                .symbols()
                .filter(|s| {
                    // Named statics; the strings of log records are local.
                    s.is_global()
                        && s.section_index()
                            .and_then(|i| elf.section_by_index(i).ok())
                            .is_some_and(|sec| sec.name() == Ok(section))
                })
                .filter_map(|s| s.name().ok().map(str::to_string))
                .collect();
            found.sort_unstable();
            found
        };
        let sorted = |list: &[&str]| {
            let mut list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            list.sort_unstable();
            list
        };
        // Legacy maps in `maps`, BTF-defined ones (maps of maps) in `.maps`.
        let mut maps = in_section("maps");
        maps.extend(in_section(".maps"));
        maps.sort_unstable();
        assert_eq!(maps, sorted(&names::ALL_MAPS));
        assert_eq!(in_section(".rodata"), sorted(&names::ALL_GLOBALS));
    }

    #[test]
    fn special_files_are_named_without_blocking() {
        let fifo = std::env::temp_dir().join(format!("bpfprof-fifo-{}", std::process::id()));
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = read(&fifo).unwrap_err();
        std::fs::remove_file(&fifo).unwrap();
        assert!(err.ends_with("a FIFO, not a BPF object file"), "{err}");
        let err = read(Path::new("/dev/null")).unwrap_err();
        assert_eq!(
            err,
            "--bpf-object /dev/null: a device, not a BPF object file"
        );
        let err = read(Path::new("/tmp")).unwrap_err();
        assert_eq!(err, "--bpf-object /tmp: a directory, not a BPF object file");
        let err = read(Path::new("/nonexistent/x.o")).unwrap_err();
        assert_eq!(err, "--bpf-object /nonexistent/x.o: no such file");
    }
}
