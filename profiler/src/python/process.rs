//! Finding CPython in a process: which mapped file is the interpreter (a
//! `libpython3.X` or an executable with `_PyRuntime`), its version and
//! whether `offsets` knows its layout, the eval loop's code, and where
//! each thread's `PyThreadState` is from its thread pointer: all that BPF
//! needs (`PythonProcess`) to walk the process's Python frames. The file
//! and the memory are the process's, so untrusted: every read is bounded,
//! and a layout that does not check out is refused, never walked.

use profiler_common::python::PythonProcess;

use super::{
    memory::ProcessMemory,
    offsets::{self, DEBUG_OFFSETS_BYTES, TSS_KEY, VersionLayout},
};
use crate::{
    procfs::{self, Mapping},
    untrusted_file,
};

mod elf;
#[cfg(test)]
mod tests;

use elf::ElfFacts;

/// What a process is, for the Python walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Interpreter {
    NotPython,
    Python(PythonProcess),
    /// A Python this profiler cannot walk, and why (for the Quality block).
    Unsupported {
        version: String,
        reason: String,
    },
    /// CPython before its thread-state key exists: try again later.
    NotReady,
}

/// glibc 2.36 on x86-64 keeps a thread's values of pthread keys below 32
/// in `struct pthread.specific_1stblock`, 16-byte `{seq, data}` pairs this
/// far from the thread pointer (`pthread_getspecific`'s disassembly).
const GLIBC_SPECIFIC_1STBLOCK: u64 = 0x310;
/// How far past a thread pointer another glibc's block is looked for,
/// and in how many threads.
const SEARCH_BYTES: u64 = 4096;
const SEARCH_THREADS: usize = 4;
/// Thread states looked at: the list is the process's, maybe a cycle.
const MAX_THREADS: usize = 64;

/// The interpreter's file, one executable mapping of it, and the minor
/// version its name says (`libpython3.X…`, `python3.X`).
struct Found {
    mapping: Mapping,
    facts: ElfFacts,
    name_minor: Option<u32>,
}

/// What BPF needs to walk process `tgid`'s Python frames, if it runs CPython.
pub(crate) fn inspect(tgid: u32) -> Interpreter {
    let mappings = procfs::mappings(tgid);
    let Some(found) = find_interpreter(tgid, &mappings) else {
        return python_2(&mappings).unwrap_or(Interpreter::NotPython);
    };
    match python_process(tgid, &found, &mappings) {
        Ok(process) => Interpreter::Python(process),
        // A read failed because the process has exited meanwhile.
        Err(Interpreter::Unsupported { .. }) if !procfs::exists(tgid) => Interpreter::NotPython,
        Err(other) => other,
    }
}

/// What BPF needs for `found` in process `tgid`, or what it is instead.
fn python_process(
    tgid: u32,
    found: &Found,
    mappings: &[Mapping],
) -> Result<PythonProcess, Interpreter> {
    let path = &found.mapping.path;
    let (minor, version) = version(found).ok_or_else(|| Interpreter::Unsupported {
        version: "3.?".into(),
        reason: format!("{path}: no Py_Version symbol and no 3.X in its name"),
    })?;
    let fail = |reason: String| Interpreter::Unsupported {
        version: version.clone(),
        reason,
    };
    let mut layout = offsets::layout(minor)
        .ok_or_else(|| fail(format!("CPython {version}: version not supported ({path})")))?;
    let bias = found.facts.bias(&found.mapping);
    let (eval, eval_size) = found
        .facts
        .eval
        .ok_or_else(|| fail(format!("{path}: no _PyEval_EvalFrameDefault symbol")))?;
    let eval = [
        eval.wrapping_add(bias),
        eval.wrapping_add(eval_size).wrapping_add(bias),
    ];
    let mapped = mappings.iter().any(|m| {
        m.executable && m.file_id == found.mapping.file_id && m.start <= eval[0] && eval[1] <= m.end
    });
    if !mapped {
        let at = eval[0];
        return Err(fail(format!(
            "pid {tgid}: _PyEval_EvalFrameDefault at {at:#x} is not in {path}'s code"
        )));
    }
    let memory = ProcessMemory::open(tgid).ok_or(Interpreter::NotPython)?;
    let (key, interpreters_head) = thread_key(&memory, &found.facts, bias, minor, &mut layout)
        .map_err(|e| e.map_reason(|r| fail(format!("pid {tgid}, {path}: {r}"))))?;
    if key >= 32 {
        return Err(fail(format!(
            "pid {tgid}: its thread-state pthread key {key} is not in glibc's in-thread block"
        )));
    }
    let threads = thread_states(&memory, interpreters_head, &layout);
    if threads.is_empty() {
        return Err(Interpreter::NotReady);
    }
    let tstate_from_fsbase = tss_slot(&memory, &threads, key).ok_or_else(|| {
        fail(format!(
            "pid {tgid}: no thread's pthread slot of key {key} holds its PyThreadState"
        ))
    })?;
    let cold = found.facts.cold.map_or([0, 0], |(start, end)| {
        [start.wrapping_add(bias), end.wrapping_add(bias)]
    });
    Ok(PythonProcess {
        eval_ranges: [eval, cold],
        tstate_from_fsbase,
        walk: layout.walk,
        minor,
        offsets: layout.frames,
    })
}

/// The minor version and the version to show: `Py_Version` (3.11+), else
/// the file's name.
fn version(found: &Found) -> Option<(u32, String)> {
    match found.facts.version_hex {
        Some(hex) if hex >> 24 == 3 => {
            let (minor, micro) = ((hex >> 16) & 0xff, (hex >> 8) & 0xff);
            Some((minor, format!("3.{minor}.{micro}")))
        }
        _ => found.name_minor.map(|minor| (minor, format!("3.{minor}"))),
    }
}

/// Why the thread-state key was not read: not created yet, or a reason.
enum KeyError {
    NotReady,
    Reason(String),
}

impl KeyError {
    fn map_reason(self, f: impl FnOnce(String) -> Interpreter) -> Interpreter {
        match self {
            KeyError::NotReady => Interpreter::NotReady,
            KeyError::Reason(reason) => f(reason),
        }
    }
}

/// The pthread key of the thread states (`autoTSSkey`) and the address of
/// the interpreter list's head, after checking `_PyRuntime`'s layout.
fn thread_key(
    memory: &ProcessMemory,
    facts: &ElfFacts,
    bias: u64,
    minor: u32,
    layout: &mut VersionLayout,
) -> Result<(u32, u64), KeyError> {
    let reason = |r: String| KeyError::Reason(r);
    let Some(expected) = layout.runtime else {
        // 3.6: `static int autoTLSkey = -1` until created.
        let (Some(key), Some(head)) = (facts.tls_key_36, facts.interp_head_36) else {
            return Err(reason("CPython 3.6 without autoTLSkey, interp_head".into()));
        };
        let key = memory.i32(key.wrapping_add(bias));
        let key = key.ok_or_else(|| reason("cannot read autoTLSkey".into()))?;
        let key = u32::try_from(key).map_err(|_| KeyError::NotReady)?;
        return Ok((key, head.wrapping_add(bias)));
    };
    let (runtime, size) = facts
        .runtime
        .ok_or_else(|| reason("no _PyRuntime symbol".into()))?;
    if size != expected.size {
        let want = expected.size;
        return Err(reason(format!(
            "layout differs from CPython 3.{minor}'s (_PyRuntime is {size} bytes, expected {want})"
        )));
    }
    let runtime = runtime.wrapping_add(bias);
    if minor == 13 {
        let raw = memory.bytes(runtime, DEBUG_OFFSETS_BYTES);
        let raw = raw.ok_or_else(|| reason("cannot read _Py_DebugOffsets".into()))?;
        offsets::apply_debug_offsets(&raw, minor, layout).map_err(reason)?;
    }
    let Some(rt) = layout.runtime else {
        return Err(reason("no _PyRuntime layout".into()));
    };
    let tss = runtime.wrapping_add(rt.auto_tss_key);
    let (initialized, key) = memory
        .i32(tss)
        .zip(memory.i32(tss.wrapping_add(TSS_KEY)))
        .ok_or_else(|| reason(format!("cannot read the Py_tss_t at {tss:#x}")))?;
    if initialized == 0 {
        return Err(KeyError::NotReady);
    }
    let key = u32::try_from(key).map_err(|_| reason(format!("pthread key {key}")))?;
    Ok((key, runtime.wrapping_add(rt.interpreters_head)))
}

/// The first interpreter's thread states and their `thread_id`s.
fn thread_states(
    memory: &ProcessMemory,
    interpreters_head: u64,
    layout: &VersionLayout,
) -> Vec<(u64, u64)> {
    let mut threads = Vec::new();
    let interp = memory.u64(interpreters_head).unwrap_or(0);
    if interp == 0 {
        return threads;
    }
    let mut tstate = memory
        .u64(interp.wrapping_add(layout.threads_head))
        .unwrap_or(0);
    while tstate != 0 && threads.len() < MAX_THREADS {
        let Some(id) = memory.u64(tstate.wrapping_add(layout.thread_id)) else {
            break;
        };
        threads.push((tstate, id));
        tstate = memory
            .u64(tstate.wrapping_add(layout.thread_next))
            .unwrap_or(0);
    }
    threads
}

/// Where a thread's value of pthread key `key` is from its thread pointer:
/// a thread state's `thread_id` is its `pthread_t`, on glibc its thread
/// pointer, so the slot is where its own thread state is found. glibc
/// 2.36's place first; then, for another build, `16 * key + 8` past any
/// base in the first 4 KiB of a few threads' `struct pthread`.
fn tss_slot(memory: &ProcessMemory, threads: &[(u64, u64)], key: u32) -> Option<u64> {
    let slot = 16 * u64::from(key) + 8;
    let glibc = GLIBC_SPECIFIC_1STBLOCK + slot;
    let holds =
        |&(tstate, id): &(u64, u64)| id != 0 && memory.u64(id.wrapping_add(glibc)) == Some(tstate);
    if threads.iter().any(holds) {
        return Some(glibc);
    }
    for &(tstate, id) in threads.iter().filter(|t| t.1 != 0).take(SEARCH_THREADS) {
        for offset in (slot..SEARCH_BYTES).step_by(8) {
            match memory.u64(id.wrapping_add(offset)) {
                Some(word) if word == tstate => return Some(offset),
                Some(_) => {}
                None => break,
            }
        }
    }
    None
}

/// A process running CPython 2 (its `libpython2.X` mapped): its frames
/// are not walked, and the Quality block says so.
fn python_2(mappings: &[Mapping]) -> Option<Interpreter> {
    let library = mappings.iter().find(|m| {
        let name = m.path.rsplit('/').next().unwrap_or_default();
        m.executable && name.starts_with("libpython2.")
    })?;
    let name = library.path.rsplit('/').next().unwrap_or_default();
    let version = name
        .trim_start_matches("libpython")
        .split(".so")
        .next()
        .unwrap_or("2");
    Some(Interpreter::Unsupported {
        version: format!("CPython {version}"),
        reason: "Python 2 is not supported (3.6 to 3.13 are)".into(),
    })
}

/// A mapped `libpython3.X*.so*`, else the main executable when its
/// `.dynsym` defines `_PyRuntime` (a static build such as Debian's).
fn find_interpreter(tgid: u32, mappings: &[Mapping]) -> Option<Found> {
    let minor_after = |path: &str, prefix: &str| -> Option<u32> {
        let name = path.rsplit('/').next()?.strip_prefix(prefix)?;
        let digits = name
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(name.len());
        name[..digits].parse().ok()
    };
    let library = mappings.iter().find(|m| {
        m.executable && m.path.contains(".so") && minor_after(&m.path, "libpython3.").is_some()
    });
    let (mapping, need_runtime, prefix) = match library {
        Some(m) => (m, false, "libpython3."),
        None => {
            let exe = std::fs::read_link(format!("/proc/{tgid}/exe")).ok()?;
            let exe = exe.to_str()?;
            let m = mappings.iter().find(|m| m.executable && m.path == exe)?;
            (m, true, "python3.")
        }
    };
    let file = untrusted_file::open(&mapping.map_files_path(tgid), true).ok()?;
    Some(Found {
        mapping: mapping.clone(),
        facts: ElfFacts::read(file, need_runtime)?,
        name_minor: minor_after(&mapping.path, prefix),
    })
}
