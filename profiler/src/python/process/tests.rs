//! `inspect` on live interpreters: what it finds must lead, read as BPF
//! reads it, from each thread's thread pointer to the function the thread
//! is in. Run as root: map_files and another process's memory need it.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use profiler_common::python::{FRAME_OWNED_BY_CSTACK, NO_OFFSET, PythonProcess, walk_kind};

use super::*;

/// Every interpreter on the test machine, with its minor version.
const PYTHONS: [(&str, u32); 9] = [
    ("/root/.pyenv/versions/3.6.15/bin/python3.6", 6),
    ("/root/.pyenv/versions/3.7.16/bin/python3.7", 7),
    ("/root/.pyenv/versions/3.8.18/bin/python3.8", 8),
    ("/root/.pyenv/versions/3.9.18/bin/python3.9", 9),
    ("/root/.pyenv/versions/3.10.13/bin/python3.10", 10),
    ("/root/.pyenv/versions/3.11.7/bin/python3.11", 11),
    ("/usr/bin/python3.11", 11),
    ("/root/.pyenv/versions/3.12.1/bin/python3.12", 12),
    ("/root/.pyenv/versions/3.13.0/bin/python3.13", 13),
];

/// Prints the eval loop's address, then each thread its function's name
/// and `threading.get_ident()` (its pthread_t: its thread pointer): one
/// thread sleeps with the GIL released, the main one spins.
const SCRIPT: &str = r#"
import ctypes, threading, time
eval = ctypes.cast(ctypes.pythonapi._PyEval_EvalFrameDefault, ctypes.c_void_p)
print(eval.value, flush=True)
def sleeper():
    print("sleeper", threading.get_ident(), flush=True)
    while True:
        time.sleep(100)
def spinner():
    print("spinner", threading.get_ident(), flush=True)
    while True:
        pass
threading.Thread(target=sleeper, daemon=True).start()
time.sleep(0.2)
spinner()
"#;

/// A child killed and reaped however the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The name of the function of `tstate`'s top frame, reached as BPF
/// reaches it; shim frames owned by the C stack skipped.
fn top_function(memory: &ProcessMemory, p: &PythonProcess, tstate: u64) -> Option<String> {
    let o = &p.offsets;
    let at = |base: u64, offset: u16| memory.u64(base + u64::from(offset));
    let mut frame = at(tstate, o.tstate_frame)?;
    if o.cframe_current_frame != NO_OFFSET {
        frame = at(frame, o.cframe_current_frame)?;
    }
    for _ in 0..4 {
        let owner = memory.bytes(frame + u64::from(o.frame_entry), 1);
        if p.walk == walk_kind::CSTACK_SHIM && owner?[0] == FRAME_OWNED_BY_CSTACK {
            frame = at(frame, o.frame_back)?;
            continue;
        }
        let name = at(at(frame, o.frame_code)?, o.code_name)?;
        let len = memory.u64(name + 16)?.min(64) as usize;
        // Compact ASCII: the characters follow the PyASCIIObject.
        let data = if p.minor >= 12 { 40 } else { 48 };
        return String::from_utf8(memory.bytes(name + data, len)?).ok();
    }
    None
}

/// Runs `python` on SCRIPT and checks what `inspect` says of it.
fn check(python: &str, minor: u32) -> Result<String, String> {
    let spawned = Command::new(python)
        .args(["-c", SCRIPT])
        .stdout(Stdio::piped())
        .spawn();
    let mut child = Killed(spawned.map_err(|e| format!("{python}: {e}"))?);
    let stdout = BufReader::new(child.0.stdout.take().ok_or("no stdout")?);
    let lines: Vec<String> = stdout.lines().take(3).map_while(Result::ok).collect();
    let [eval, threads @ ..] = lines.as_slice() else {
        return Err(format!("{python} printed {lines:?}"));
    };
    let eval: u64 = eval.parse().map_err(|e| format!("{eval}: {e}"))?;
    std::thread::sleep(Duration::from_millis(300));
    let tgid = child.0.id();
    let Interpreter::Python(p) = inspect(tgid) else {
        return Err(format!("{python}: {:?}", inspect(tgid)));
    };
    let layout = offsets::layout(minor).ok_or("no layout")?;
    if (p.minor, p.walk, p.offsets) != (minor, layout.walk, layout.frames) {
        return Err(format!("{python}: {p:?}"));
    }
    let [[start, end], [cold_start, cold_end]] = p.eval_ranges;
    if !(start == eval && end > eval && cold_start <= cold_end) {
        return Err(format!("{python}: eval at {eval:#x}, {p:?}"));
    }
    let memory = ProcessMemory::open(tgid).ok_or("no memory")?;
    for thread in threads {
        let (function, ident) = thread.split_once(' ').ok_or("no ident")?;
        let ident: u64 = ident.parse().map_err(|e| format!("{ident}: {e}"))?;
        let tstate = memory.u64(ident + p.tstate_from_fsbase).unwrap_or(0);
        let found = top_function(&memory, &p, tstate);
        if found.as_deref() != Some(function) {
            return Err(format!(
                "{python}: {function} thread's top frame: {found:?}"
            ));
        }
    }
    let cold = cold_end - cold_start;
    Ok(format!(
        "{python}: 3.{minor}, tstate at fsbase+{:#x}, eval [{start:#x}, {end:#x}), cold {cold} bytes at {cold_start:#x}",
        p.tstate_from_fsbase
    ))
}

#[test]
#[ignore = "needs root"]
fn each_interpreter_leads_from_a_thread_pointer_to_its_threads_function() {
    let failures: Vec<String> = PYTHONS
        .iter()
        .filter_map(|&(python, minor)| match check(python, minor) {
            Ok(found) => {
                eprintln!("{found}");
                None
            }
            Err(failure) => Some(failure),
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
#[ignore = "needs root"]
fn other_processes_and_gone_ones_are_no_python() {
    let sleep = Killed(Command::new("sleep").arg("5").spawn().unwrap());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(inspect(sleep.0.id()), Interpreter::NotPython);
    let mut python = Command::new(PYTHONS[7].0)
        .args(["-c", "import time; time.sleep(5)"])
        .spawn()
        .unwrap();
    let tgid = python.id();
    python.kill().unwrap();
    // A zombie first (its maps gone), then no process at all.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(inspect(tgid), Interpreter::NotPython);
    python.wait().unwrap();
    assert_eq!(inspect(tgid), Interpreter::NotPython);
}
