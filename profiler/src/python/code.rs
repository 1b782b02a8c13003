//! Naming the Python frames BPF recorded: a code object read from the
//! process's memory (its name, file, first line and line table), the
//! identity BPF computed from it (to tell a freed and reused address from
//! the code object sampled), and the line of a recorded position.

use super::{lines, memory::ProcessMemory};
use profiler_common::python::python_code_identity;

/// Where a version keeps what naming needs, in `PyCodeObject` and in its
/// strings (measured from each version's own headers: see
/// /work/shared-helpers/python/offsets.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CodeLayout {
    minor: u32,
    pub(crate) argcount: usize,
    pub(crate) flags: usize,
    pub(crate) firstlineno: usize,
    pub(crate) filename: usize,
    pub(crate) name: usize,
    /// `co_qualname` (3.11+): `Class.method` where `co_name` says `method`.
    pub(crate) qualname: Option<usize>,
    /// `co_lnotab` (3.6–3.9) or `co_linetable`.
    pub(crate) line_table: usize,
    /// `sizeof(PyASCIIObject)`: where a compact ASCII string's bytes are.
    pub(crate) ascii_data: u64,
    /// `sizeof(PyCompactUnicodeObject)`: where other compact strings' are.
    pub(crate) compact_data: u64,
}

pub(crate) fn code_layout(minor: u32) -> Option<CodeLayout> {
    #[rustfmt::skip]
    let (argcount, flags, firstlineno, filename, name, qualname, line_table) = match minor {
        6 | 7 => (16, 32, 36, 96, 104, None, 112),
        8..=10 => (16, 36, 40, 104, 112, None, 120),
        11 => (56, 48, 72, 112, 120, Some(128), 136),
        12 | 13 => (52, 48, 68, 112, 120, Some(128), 136),
        _ => return None,
    };
    // 3.12 dropped `wstr` (and with it 8 and 16 bytes of the two headers).
    let (ascii_data, compact_data) = if minor >= 12 { (40, 56) } else { (48, 72) };
    Some(CodeLayout {
        minor,
        argcount,
        flags,
        firstlineno,
        filename,
        name,
        qualname,
        line_table,
        ascii_data,
        compact_data,
    })
}

impl CodeLayout {
    /// Every field naming reads lies in the object's first bytes: one read.
    fn header_len(&self) -> usize {
        self.line_table.max(self.qualname.unwrap_or(0)) + 8
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CodeObject {
    /// `co_qualname` on 3.11+, else `co_name`.
    pub(crate) name: String,
    pub(crate) filename: String,
    pub(crate) first_line: u32,
    identity: u32,
    /// Empty when the table was too long to read: the frame keeps its name.
    line_table: Vec<u8>,
    minor: u32,
}

/// Longest name or file name read, in characters (PATH_MAX is 4096).
const MAX_STRING: u64 = 4096;

/// The code object at `address`, or None when it does not read as one.
pub(crate) fn read_code(
    mem: &ProcessMemory,
    layout: &CodeLayout,
    address: u64,
) -> Option<CodeObject> {
    let header = mem.bytes(address, layout.header_len())?;
    let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap());
    let name_object = u64_at(layout.name);
    let filename_object = u64_at(layout.filename);
    let first_line = u32_at(layout.firstlineno);
    let identity = python_code_identity(
        u32_at(layout.argcount),
        u32_at(layout.flags),
        first_line,
        name_object,
        filename_object,
    );
    let shown_name = layout.qualname.map_or(name_object, u64_at);
    let (name_type, name) = read_string(mem, layout, shown_name)?;
    let (filename_type, filename) = read_string(mem, layout, filename_object)?;
    // Both are `str`: at an address that held no code object, two words
    // rarely lead to two objects of one type.
    if name_type != filename_type {
        return None;
    }
    Some(CodeObject {
        name,
        filename,
        first_line,
        identity,
        line_table: read_bytes(mem, u64_at(layout.line_table)).unwrap_or_default(),
        minor: layout.minor,
    })
}

/// A compact `str` (the compiler makes only those for names and files)
/// and its type object; None for a legacy (3.6–3.11 non-compact) string
/// or anything else.
fn read_string(mem: &ProcessMemory, layout: &CodeLayout, object: u64) -> Option<(u64, String)> {
    let header = mem.bytes(object, 36)?;
    let string_type = u64::from_le_bytes(header[8..16].try_into().unwrap());
    let length = u64::from_le_bytes(header[16..24].try_into().unwrap());
    let state = u32::from_le_bytes(header[32..36].try_into().unwrap());
    let kind = (state >> 2) & 7;
    let compact = state & (1 << 5) != 0;
    let ascii = state & (1 << 6) != 0;
    if !compact || length > MAX_STRING {
        return None;
    }
    if ascii {
        let bytes = mem.bytes(object + layout.ascii_data, length as usize)?;
        let text = String::from_utf8(bytes)
            .ok()
            .filter(|text| text.is_ascii())?;
        return Some((string_type, text));
    }
    if !matches!(kind, 1 | 2 | 4) {
        return None;
    }
    let bytes = mem.bytes(
        object + layout.compact_data,
        length as usize * kind as usize,
    )?;
    let text = bytes
        .chunks_exact(kind as usize)
        .map(|unit| {
            let mut word = [0; 4];
            word[..unit.len()].copy_from_slice(unit);
            // A lone surrogate is a valid Python string (surrogateescape'd
            // file names) but no Rust char.
            match u32::from_le_bytes(word) {
                0xd800..=0xdfff => Some(char::REPLACEMENT_CHARACTER),
                code => char::from_u32(code),
            }
        })
        .collect::<Option<String>>()?;
    Some((string_type, text))
}

/// A `bytes` object's contents, None when longer than one read.
fn read_bytes(mem: &ProcessMemory, object: u64) -> Option<Vec<u8>> {
    let size = mem.u64(object.checked_add(16)?)?;
    mem.bytes(object + 32, usize::try_from(size).ok()?)
}

impl CodeObject {
    /// `python_code_identity` of the fields BPF reads at sample time: a
    /// frame whose identity differs was another code object.
    pub(crate) fn identity(&self) -> u32 {
        self.identity
    }

    /// The line of the instruction at `position` as BPF records it: the
    /// byte offset of `f_lasti` (3.6–3.9), `f_lasti` in code units (3.10),
    /// or the byte offset of `prev_instr` (3.11, 3.12) / `instr_ptr`
    /// (3.13) in `co_code_adaptive`. Those point at the instruction being
    /// executed (in a caller, its call; 3.11 and 3.12 leave `prev_instr`
    /// on the call's last inline cache entry, which the tables give the
    /// call's line), so no adjustment is made. Before the first
    /// instruction (-1 or -2) a frame is on its `def` line, as in CPython.
    pub(crate) fn line(&self, position: i32) -> Option<u32> {
        let table = &self.line_table;
        match self.minor {
            6..=9 => lines::lnotab(table, self.first_line, position),
            _ if position < 0 => Some(self.first_line),
            10 => lines::linetable_310(table, self.first_line, i64::from(position) * 2),
            _ => lines::location_table(table, self.first_line, i64::from(position / 2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        io::{BufRead, BufReader},
        path::{Path, PathBuf},
        process::{Child, Command, Stdio},
    };

    /// Prints, for each frame above `capture` (names of every string kind:
    /// ASCII, UCS1, UCS2, UCS4; a closure, a lambda, a generator), what
    /// naming it must find, and the position as BPF reads it from the C
    /// frame; then waits on stdin so its code objects stay where they are.
    const SCRIPT: &str = r#"import ctypes, sys
V = sys.version_info[:2]

def position(frame):
    at = id(frame)
    if V < (3, 10):
        return ctypes.c_int.from_address(at + (120 if V < (3, 7) else 104)).value
    if V == (3, 10):
        return ctypes.c_int.from_address(at + 96).value
    iframe = ctypes.c_void_p.from_address(at + 24).value
    pointer = ctypes.c_void_p.from_address(iframe + 56).value
    return pointer - id(frame.f_code) - {11: 184, 12: 192, 13: 200}[V[1]]

def ranges(code):
    if V >= (3, 10):
        return list(code.co_lines())
    import dis
    starts = list(dis.findlinestarts(code))
    ends = [start for start, _ in starts[1:]] + [len(code.co_code)]
    return [(s, e, line) for (s, line), e in zip(starts, ends)]

def capture():
    frames = []
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        table = ','.join('%d:%d:%s' % (s, e, '-' if line is None else line)
                         for s, e, line in ranges(code))
        fields = [getattr(code, 'co_qualname', code.co_name), code.co_filename, id(code),
                  frame.f_lineno, position(frame), frame.f_lasti, code.co_argcount,
                  code.co_flags, code.co_firstlineno, id(code.co_name),
                  id(code.co_filename), table]
        frames.append('\t'.join(map(str, fields)))
        frame = frame.f_back
    return frames

def 𠀀():
    return capture()

def δέλτα(x, y=1):
    return 𠀀()

def grüße():
    return δέλτα(1)

class Outer:
    def method(self, a, b):
        def inner():
            return (lambda: grüße())()
        return inner()

    def gen(self):
        yield self.method(1, 2)

def outer():
    return next(Outer().gen())

print('\n'.join(outer()))
print(V[1])
sys.stdout.flush()
sys.stdin.read()
"#;

    /// The interpreter and its script, gone however the test ends.
    struct Interpreter {
        child: Child,
        script: PathBuf,
    }

    impl Drop for Interpreter {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.script);
        }
    }

    /// Starts `python` on the script; returns it with the lines it printed
    /// for its frames, once it printed its minor version (checked).
    fn start(python: &str, label: &str, minor: u32) -> (Interpreter, Vec<String>) {
        assert!(Path::new(python).exists(), "{python} is missing");
        let script =
            std::env::temp_dir().join(format!("bpfprof-code-{label}-{}.py", std::process::id()));
        std::fs::write(&script, SCRIPT).unwrap();
        let child = Command::new(python)
            .arg(&script)
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut interpreter = Interpreter { child, script };
        let stdout = BufReader::new(interpreter.child.stdout.take().unwrap());
        let mut frames = Vec::new();
        for line in stdout.lines() {
            let line = line.unwrap();
            if !line.contains('\t') {
                assert_eq!(line, minor.to_string(), "{python}'s minor version");
                return (interpreter, frames);
            }
            frames.push(line);
        }
        panic!("{python} exited before printing its frames");
    }

    fn names_live_frames(python: &str, label: &str, minor: u32) {
        let (interpreter, printed) = start(python, label, minor);
        let mem = ProcessMemory::open(interpreter.child.id()).unwrap();
        let layout = code_layout(minor).unwrap();
        let qualified = [
            "𠀀",
            "δέλτα",
            "grüße",
            "Outer.method.<locals>.inner.<locals>.<lambda>",
            "Outer.method.<locals>.inner",
            "Outer.method",
            "Outer.gen",
            "outer",
            "<module>",
        ];
        // Before 3.11 a frame is named by co_name: the qualname's last part.
        let expected: Vec<&str> = qualified
            .iter()
            .map(|q| {
                if minor >= 11 {
                    q
                } else {
                    q.rsplit('.').next().unwrap()
                }
            })
            .collect();
        let got: Vec<&str> = printed
            .iter()
            .map(|p| p.split('\t').next().unwrap())
            .collect();
        assert_eq!(got, expected, "{python}'s frames");
        for line in &printed {
            check_frame(&mem, &layout, line);
        }
    }

    /// One printed frame: its code object read from the process says what
    /// the interpreter said, and its line table gives CPython's lines.
    fn check_frame(mem: &ProcessMemory, layout: &CodeLayout, printed: &str) {
        let fields: Vec<&str> = printed.split('\t').collect();
        let int = |i: usize| fields[i].parse::<i64>().unwrap();
        let code = read_code(mem, layout, int(2) as u64).unwrap_or_else(|| panic!("{printed}"));
        assert_eq!(code.name, fields[0]);
        assert_eq!(code.filename, fields[1]);
        assert_eq!(i64::from(code.first_line), int(8), "{printed}");
        let identity = python_code_identity(
            int(6) as u32,
            int(7) as u32,
            int(8) as u32,
            int(9) as u64,
            int(10) as u64,
        );
        assert_eq!(code.identity(), identity, "{printed}");
        let position = int(4) as i32;
        assert_eq!(
            code.line(position).map(i64::from),
            Some(int(3)),
            "{printed}"
        );
        // Python's f_lasti is in bytes on every version; 3.10's C field is not.
        let unit = if layout.minor == 10 { 2 } else { 1 };
        assert_eq!(int(5), i64::from(position) * unit, "{printed}");
        let before_first = if layout.minor >= 11 { -2 } else { -1 };
        assert_eq!(code.line(before_first), Some(code.first_line));
        for range in fields[11].split(',') {
            let [start, end, line]: [&str; 3] =
                range.split(':').collect::<Vec<_>>().try_into().unwrap();
            let (start, end): (i32, i32) = (start.parse().unwrap(), end.parse().unwrap());
            for offset in (start..end).step_by(2) {
                let found = code.line(offset / unit as i32);
                let found = found.map_or("-".to_string(), |l| l.to_string());
                assert_eq!(found, line, "{} at {offset}", code.name);
            }
        }
    }

    macro_rules! interpreters {
        ($($test:ident: $python:literal, $minor:literal;)*) => {$(
            #[test]
            #[ignore = "needs root"]
            fn $test() {
                names_live_frames($python, stringify!($test), $minor);
            }
        )*};
    }

    // 3.6 and 3.7 too: their layout is measured like the others'.
    interpreters! {
        names_python_3_6: "/root/.pyenv/versions/3.6.15/bin/python3.6", 6;
        names_python_3_7: "/root/.pyenv/versions/3.7.16/bin/python3.7", 7;
        names_python_3_8: "/root/.pyenv/versions/3.8.18/bin/python3.8", 8;
        names_python_3_9: "/root/.pyenv/versions/3.9.18/bin/python3.9", 9;
        names_python_3_10: "/root/.pyenv/versions/3.10.13/bin/python3.10", 10;
        names_python_3_11: "/root/.pyenv/versions/3.11.7/bin/python3.11", 11;
        names_debian_python_3_11: "/usr/bin/python3.11", 11;
        names_python_3_12: "/root/.pyenv/versions/3.12.1/bin/python3.12", 12;
        names_python_3_13: "/root/.pyenv/versions/3.13.0/bin/python3.13", 13;
    }
}
