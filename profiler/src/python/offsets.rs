//! The layout of each CPython minor version this profiler walks: where a
//! thread's top frame is, how frames link, which code-object fields BPF
//! reads, and where the runtime keeps its thread-state TSS key and its
//! lists of interpreters and threads. One table per minor version, every
//! number taken from that version's own headers (`offsetof` / `sizeof`
//! compiled against the pyenv installs of 3.6.15 … 3.13.0 with
//! `Py_BUILD_CORE`; Debian's 3.11.2 headers give 3.11.7's numbers). A
//! version without a table is not walked: a wrong offset would misname
//! frames rather than fail.

use profiler_common::python::{NO_OFFSET, PythonOffsets, walk_kind};

/// What one minor version's structures look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VersionLayout {
    /// What BPF reads (see `PythonOffsets`).
    pub(crate) frames: PythonOffsets,
    /// One of `walk_kind::*`.
    pub(crate) walk: u32,
    /// `_PyRuntime` (3.7+); None for 3.6, whose runtime state is static
    /// variables (`autoTLSkey`, `interp_head`) found by symbol.
    pub(crate) runtime: Option<RuntimeLayout>,
    /// `PyInterpreterState.tstate_head` (≤3.10) / `threads.head`.
    pub(crate) threads_head: u64,
    /// `PyThreadState.next`.
    pub(crate) thread_next: u64,
    /// `PyThreadState.thread_id`: the thread's `pthread_t`.
    pub(crate) thread_id: u64,
}

/// Where things are in `_PyRuntimeState` (3.7+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RuntimeLayout {
    /// `sizeof(_PyRuntimeState)`: `_PyRuntime`'s symbol size must match
    /// it, the cheapest check that a build has the layout of this table.
    pub(crate) size: u64,
    /// The `Py_tss_t` (`int _is_initialized; pthread_key_t _key;`) of the
    /// thread states: `gilstate.autoTSSkey` (≤3.11) or `autoTSSkey`.
    pub(crate) auto_tss_key: u64,
    /// `interpreters.head`.
    pub(crate) interpreters_head: u64,
}

/// `Py_tss_t._key`, after the `int _is_initialized` (3.7+).
pub(crate) const TSS_KEY: u64 = 4;

/// The layout of CPython 3.`minor`, if this profiler knows it.
pub(crate) fn layout(minor: u32) -> Option<VersionLayout> {
    match minor {
        6..=10 => Some(before_3_11(minor)),
        11..=13 => Some(since_3_11(minor)),
        _ => None,
    }
}

/// 3.6–3.10: `PyThreadState.frame` is the top `PyFrameObject`, each
/// evaluated by its own `_PyEval_EvalFrameDefault` call.
/// Headers: `PyThreadState` (`struct _ts`) in Include/pystate.h (3.6,
/// 3.7) or Include/cpython/pystate.h; `PyFrameObject` (`struct _frame`)
/// in Include/frameobject.h (≤3.8) or Include/cpython/frameobject.h;
/// `PyCodeObject` in Include/code.h (≤3.8) or Include/cpython/code.h;
/// `_PyRuntimeState` in Include/internal/pystate.h (3.7),
/// internal/pycore_pystate.h (3.8) or internal/pycore_runtime.h (3.9,
/// 3.10), with `struct _gilstate_runtime_state gilstate`;
/// `PyInterpreterState` (`struct _is`) in Include/pystate.h (≤3.7),
/// internal/pycore_pystate.h (3.8) or internal/pycore_interp.h.
fn before_3_11(minor: u32) -> VersionLayout {
    // (f_lasti, thread_id, runtime size, gilstate.autoTSSkey,
    // interpreters.head); 3.6 has no _PyRuntime.
    let (frame_lasti, thread_id, runtime) = match minor {
        6 => (120, 152, None),
        7 => (104, 176, Some((1520, 1504, 24))),
        8 => (104, 176, Some((1464, 1392, 32))),
        9 => (104, 176, Some((656, 584, 32))),
        _ => (96, 176, Some((672, 584, 32))),
    };
    // PyCodeObject grew co_posonlyargcount (before co_flags) in 3.8.
    let (code_flags, code_firstlineno, code_filename, code_name) = match minor {
        6 | 7 => (32, 36, 96, 104),
        _ => (36, 40, 104, 112),
    };
    VersionLayout {
        frames: PythonOffsets {
            tstate_frame: 24,
            cframe_current_frame: NO_OFFSET,
            frame_back: 24,
            frame_code: 32,
            frame_lasti,
            frame_entry: NO_OFFSET,
            code_adaptive: NO_OFFSET,
            code_argcount: 16,
            code_flags,
            code_firstlineno,
            code_filename,
            code_name,
        },
        walk: walk_kind::ONE_PER_ACTIVATION,
        runtime: runtime.map(|(size, auto_tss_key, interpreters_head)| RuntimeLayout {
            size,
            auto_tss_key,
            interpreters_head,
        }),
        threads_head: 8,
        thread_next: 8,
        thread_id,
    }
}

/// 3.11–3.13: frames are `_PyInterpreterFrame`s (Include/internal/
/// pycore_frame.h), reached through `PyThreadState.cframe` →
/// `_PyCFrame.current_frame` (3.11, 3.12; Include/cpython/pystate.h) or
/// `PyThreadState.current_frame` (3.13); `prev_instr` / `instr_ptr`
/// point into the code object's `co_code_adaptive`. `PyCodeObject` is
/// `_PyCode_DEF` in Include/cpython/code.h, `_PyRuntimeState` in
/// Include/internal/pycore_runtime.h, `PyInterpreterState` in
/// Include/internal/pycore_interp.h.
fn since_3_11(minor: u32) -> VersionLayout {
    let v11 = minor == 11;
    let (tstate_frame, cframe_current_frame) = match minor {
        11 => (56, 8),
        12 => (56, 0),
        _ => (72, NO_OFFSET),
    };
    // (sizeof, autoTSSkey, interpreters.head): 3.13 puts the
    // _Py_DebugOffsets first; 3.12 moved autoTSSkey out of gilstate.
    let (size, auto_tss_key, interpreters_head) = match minor {
        11 => (166_688, 592, 40),
        12 => (459_944, 1544, 40),
        _ => (283_320, 2160, 632),
    };
    VersionLayout {
        frames: PythonOffsets {
            tstate_frame,
            cframe_current_frame,
            frame_back: if v11 { 48 } else { 8 },
            // f_code (3.11: after f_func, f_globals, f_builtins, f_locals;
            // 3.12: first), f_executable (3.13).
            frame_code: if v11 { 32 } else { 0 },
            frame_lasti: 56,
            // is_entry (3.11), owner (3.12, 3.13).
            frame_entry: if v11 { 68 } else { 70 },
            code_adaptive: match minor {
                11 => 184,
                12 => 192,
                _ => 200,
            },
            code_argcount: if v11 { 56 } else { 52 },
            code_flags: 48,
            code_firstlineno: if v11 { 72 } else { 68 },
            code_filename: 112,
            code_name: 120,
        },
        walk: if v11 {
            walk_kind::ENTRY_FLAG
        } else {
            walk_kind::CSTACK_SHIM
        },
        runtime: Some(RuntimeLayout {
            size,
            auto_tss_key,
            interpreters_head,
        }),
        threads_head: match minor {
            11 => 16,
            12 => 72,
            _ => 7344,
        },
        thread_next: 8,
        thread_id: match minor {
            12 => 136,
            _ => 152,
        },
    }
}

/// How much of 3.13's `_Py_DebugOffsets` is read: up to
/// `code_object.co_code_adaptive`, the last field used.
pub(crate) const DEBUG_OFFSETS_BYTES: usize = 352;

/// Takes the offsets 3.13's `_Py_DebugOffsets` gives (`raw`, read from the
/// start of `_PyRuntime`, whose first field it is: CPython's own account of
/// the offsets a debugger needs), each checked against the table: a
/// difference is a build the table does not describe. Its layout is
/// 3.13's (Include/internal/pycore_runtime.h): `char cookie[8]`, then
/// `uint64_t`s: version, free_threaded, runtime_state {size, finalizing,
/// interpreters_head} at 24, interpreter_state {size, id, next,
/// threads_head, …} at 48, thread_state {size, prev, next, interp,
/// current_frame, thread_id, …} at 152, interpreter_frame {size, previous,
/// executable, instr_ptr, localsplus, owner} at 224, code_object {size,
/// filename, name, qualname, linetable, firstlineno, argcount,
/// localsplusnames, localspluskinds, co_code_adaptive} at 272.
pub(crate) fn apply_debug_offsets(
    raw: &[u8],
    minor: u32,
    layout: &mut VersionLayout,
) -> Result<(), String> {
    let word = |at: usize| {
        raw.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(u64::MAX, u64::from_le_bytes)
    };
    if raw.get(..8) != Some(b"xdebugpy") {
        return Err("no _Py_DebugOffsets cookie at _PyRuntime".into());
    }
    let (version, free_threaded) = (word(8), word(16));
    if version >> 16 != 0x300 + u64::from(minor) || free_threaded != 0 {
        return Err(format!(
            "_Py_DebugOffsets: version {version:#x}, free-threaded {free_threaded}"
        ));
    }
    let take = |name: &str, at: usize, table: u64| {
        let given = word(at);
        if given == table {
            Ok(given)
        } else {
            Err(format!(
                "layout differs from CPython 3.{minor}'s: _Py_DebugOffsets gives {name} {given}, its headers {table}"
            ))
        }
    };
    let rt = layout.runtime.as_mut().ok_or("no _PyRuntime layout")?;
    rt.size = take("runtime_state.size", 24, rt.size)?;
    rt.interpreters_head = take("interpreters_head", 40, rt.interpreters_head)?;
    layout.threads_head = take("threads_head", 72, layout.threads_head)?;
    layout.thread_next = take("thread_state.next", 168, layout.thread_next)?;
    layout.thread_id = take("thread_id", 192, layout.thread_id)?;
    let f = &mut layout.frames;
    let field = |name: &str, at: usize, value: &mut u16| -> Result<(), String> {
        // Equal to the table's u16, so it fits.
        *value = take(name, at, u64::from(*value))? as u16;
        Ok(())
    };
    field("current_frame", 184, &mut f.tstate_frame)?;
    field("interpreter_frame.previous", 232, &mut f.frame_back)?;
    field("executable", 240, &mut f.frame_code)?;
    field("instr_ptr", 248, &mut f.frame_lasti)?;
    field("owner", 264, &mut f.frame_entry)?;
    field("co_filename", 280, &mut f.code_filename)?;
    field("co_name", 288, &mut f.code_name)?;
    field("co_firstlineno", 312, &mut f.code_firstlineno)?;
    field("co_argcount", 320, &mut f.code_argcount)?;
    field("co_code_adaptive", 344, &mut f.code_adaptive)
}

#[cfg(test)]
#[path = "offsets_dwarf_check.rs"]
mod dwarf_check;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_version_has_a_layout_that_fits_its_walk() {
        assert_eq!(layout(5), None);
        assert_eq!(layout(14), None, "3.14 changed _PyInterpreterFrame");
        for minor in 6..=13 {
            let l = layout(minor).unwrap();
            let f = l.frames;
            let inline = l.walk != walk_kind::ONE_PER_ACTIVATION;
            // Only the inlined-call versions mark entry frames and point
            // into the bytecode; only 3.11/3.12 go through a _PyCFrame.
            assert_eq!(f.frame_entry != NO_OFFSET, inline, "3.{minor}");
            assert_eq!(f.code_adaptive != NO_OFFSET, inline, "3.{minor}");
            assert_eq!(
                f.cframe_current_frame != NO_OFFSET,
                minor == 11 || minor == 12
            );
            assert_eq!(l.runtime.is_none(), minor == 6);
        }
    }

    /// `_Py_DebugOffsets` as 3.13.0 has it, up to co_code_adaptive (its
    /// libpython3.13.so.1.0's `.PyRuntime` data).
    fn debug_offsets_3_13() -> Vec<u8> {
        let mut raw = b"xdebugpy".to_vec();
        let words: [u64; 43] = [
            0x30d_00f0, 0, // version, free_threaded
            283_320, 608, 632, // runtime_state
            194_968, 7272, 7264, 7344, 7400, 7656, 7640, 7648, 16, 7752, 0, 7768,
            7760, // interpreter_state
            304, 0, 8, 16, 72, 152, 160, 232, 32, // thread_state
            80, 8, 0, 56, 72, 70, // interpreter_frame
            208, 112, 120, 128, 136, 68, 52, 96, 104, 200, // code_object
        ];
        for word in words {
            raw.extend_from_slice(&word.to_le_bytes());
        }
        raw
    }

    #[test]
    fn debug_offsets_that_agree_with_the_table_are_taken() {
        let raw = debug_offsets_3_13();
        assert_eq!(raw.len(), DEBUG_OFFSETS_BYTES);
        let table = layout(13).unwrap();
        let mut taken = table;
        apply_debug_offsets(&raw, 13, &mut taken).unwrap();
        assert_eq!(taken, table);
        // Another owner offset: another layout, refused.
        let mut other = raw.clone();
        other[264] = 74;
        let err = apply_debug_offsets(&other, 13, &mut taken).unwrap_err();
        assert!(err.contains("owner 74, its headers 70"), "{err}");
        assert!(apply_debug_offsets(&raw, 14, &mut taken).is_err());
        assert!(apply_debug_offsets(&raw[..100], 13, &mut taken).is_err());
        let mut free_threaded = raw;
        free_threaded[16] = 1;
        assert!(apply_debug_offsets(&free_threaded, 13, &mut taken).is_err());
    }
}
