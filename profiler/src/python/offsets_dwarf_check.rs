//! Test-only (issue #16): every offset and size the per-version layout
//! tables hold (`offsets::layout`, `code::code_layout`, and where 3.13's
//! `_Py_DebugOffsets` keeps what `apply_debug_offsets` reads) checked
//! against the DWARF of the pyenv interpreters that have some (their
//! `libpython3.X.so.1.0`). The tables were measured with `offsetof` against
//! each version's headers; DWARF is what the compiler made of them.

use std::collections::HashMap;

use gimli::{AttributeValue, DebuggingInformationEntry, EndianSlice, LittleEndian, UnitOffset};
use object::{Object, ObjectSection};
use profiler_common::python::{NO_OFFSET, PythonOffsets};

use super::{DEBUG_OFFSETS_BYTES, RuntimeLayout, TSS_KEY, VersionLayout, layout};
use crate::python::code::code_layout;

type Slice<'a> = EndianSlice<'a, LittleEndian>;
type Die<'a> = DebuggingInformationEntry<Slice<'a>>;
/// A DIE: its unit's index, its offset in that unit.
type At = (usize, UnitOffset);

/// The types of one file's `.debug_info`.
struct Types<'a> {
    dwarf: gimli::Dwarf<Slice<'a>>,
    units: Vec<gimli::Unit<Slice<'a>>>,
    /// Complete struct and union definitions at a unit's top level, by tag
    /// (`_ts`, `pyruntimestate`), the first met.
    structs: HashMap<Vec<u8>, At>,
    /// Typedefs at a unit's top level, by name, the first met.
    typedefs: HashMap<Vec<u8>, At>,
}

impl<'a> Types<'a> {
    fn load(data: &'a [u8]) -> Result<Self, String> {
        let file = object::File::parse(data).map_err(|e| e.to_string())?;
        if file
            .section_by_name(".debug_info")
            .is_none_or(|s| s.size() == 0)
        {
            return Err("no DWARF (.debug_info)".into());
        }
        let dwarf = gimli::Dwarf::load(|id| -> Result<Slice<'a>, String> {
            let bytes = match file.section_by_name(id.name()) {
                Some(section) => section.data().map_err(|e| e.to_string())?,
                None => &[],
            };
            Ok(EndianSlice::new(bytes, LittleEndian))
        })?;
        let mut types = Types {
            dwarf,
            units: Vec::new(),
            structs: HashMap::new(),
            typedefs: HashMap::new(),
        };
        types.index().map_err(|e| format!("reading DWARF: {e}"))?;
        Ok(types)
    }

    /// Reads every unit and names its top-level types; the children of
    /// functions are skipped (by `DW_AT_sibling`), not read.
    fn index(&mut self) -> gimli::Result<()> {
        let mut headers = self.dwarf.units();
        while let Some(header) = headers.next()? {
            self.units.push(self.dwarf.unit(header)?);
        }
        for (index, unit) in self.units.iter().enumerate() {
            let mut tree = unit.entries_tree(None)?;
            let mut top = tree.root()?.children();
            while let Some(node) = top.next()? {
                let e = node.entry();
                let map = match e.tag() {
                    gimli::DW_TAG_typedef => &mut self.typedefs,
                    gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type
                        if e.attr(gimli::DW_AT_declaration).is_none() =>
                    {
                        &mut self.structs
                    }
                    _ => continue,
                };
                let name = e.attr_value(gimli::DW_AT_name);
                let Some(name) = name.and_then(|n| self.dwarf.attr_string(unit, n).ok()) else {
                    continue;
                };
                let at = (index, e.offset());
                map.entry(name.slice().to_vec()).or_insert(at);
            }
        }
        Ok(())
    }

    fn entry(&self, at: At) -> Option<Die<'a>> {
        self.units[at.0].entry(at.1).ok()
    }

    fn name(&self, unit: usize, e: &Die<'a>) -> Option<&'a [u8]> {
        let value = e.attr_value(gimli::DW_AT_name)?;
        let name = self.dwarf.attr_string(&self.units[unit], value).ok()?;
        Some(name.slice())
    }

    /// What `e`'s `DW_AT_type` refers to: in its unit (these files have
    /// no `DW_FORM_ref_addr`, no reference to another unit).
    fn type_of(&self, unit: usize, e: &Die<'a>) -> Option<At> {
        match e.attr_value(gimli::DW_AT_type)? {
            AttributeValue::UnitRef(offset) => Some((unit, offset)),
            _ => None,
        }
    }

    /// The complete struct or union `at` names, through typedefs and
    /// qualifiers; a declaration (`struct _ts;`) leads to its definition.
    fn complete(&self, mut at: At) -> Option<At> {
        for _ in 0..16 {
            let e = self.entry(at)?;
            match e.tag() {
                gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
                    if e.attr(gimli::DW_AT_declaration).is_none() {
                        return Some(at);
                    }
                    return self.structs.get(self.name(at.0, &e)?).copied();
                }
                gimli::DW_TAG_typedef | gimli::DW_TAG_const_type | gimli::DW_TAG_volatile_type => {
                    at = self.type_of(at.0, &e)?;
                }
                _ => return None,
            }
        }
        None
    }

    /// The struct a C name means: a typedef (`PyThreadState`) or a tag.
    fn named(&self, name: &str) -> Option<At> {
        let at = self.typedefs.get(name.as_bytes());
        self.complete(*at.or_else(|| self.structs.get(name.as_bytes()))?)
    }

    /// Member `name` of the struct or union `at` names: its offset and
    /// type. Anonymous struct and union members are looked into.
    fn member(&self, at: At, name: &str) -> Option<(u64, At)> {
        let at = self.complete(at)?;
        let unit = &self.units[at.0];
        let mut tree = unit.entries_tree(Some(at.1)).ok()?;
        let root = tree.root().ok()?;
        let in_union = root.entry().tag() == gimli::DW_TAG_union_type;
        let mut children = root.children();
        while let Some(child) = children.next().ok()? {
            let e = child.entry();
            if e.tag() != gimli::DW_TAG_member {
                continue;
            }
            // Union members have no location; a bit-field has another
            // attribute (none of those is looked up).
            let location = match e.attr_value(gimli::DW_AT_data_member_location) {
                Some(value) => value.udata_value(),
                None if in_union => Some(0),
                None => None,
            };
            let ty = self.type_of(at.0, e);
            match self.name(at.0, e) {
                Some(member) if member == name.as_bytes() => return Some((location?, ty?)),
                None => {
                    if let Some((offset, ty)) = ty.and_then(|ty| self.member(ty, name)) {
                        return Some((location? + offset, ty));
                    }
                }
                Some(_) => {}
            }
        }
        None
    }

    /// `offsetof(ty, path)`, `path` dotted through nested members
    /// (`gilstate.autoTSSkey`).
    fn offset(&self, ty: &str, path: &str) -> Option<u64> {
        let at = self.named(ty)?;
        let (total, _) = path.split('.').try_fold((0, at), |(total, at), part| {
            let (offset, member_type) = self.member(at, part)?;
            Some((total + offset, member_type))
        })?;
        Some(total)
    }

    fn size(&self, ty: &str) -> Option<u64> {
        let e = self.entry(self.named(ty)?)?;
        e.attr_value(gimli::DW_AT_byte_size)?.udata_value()
    }
}

/// One number a table holds: (type, `offsetof(type, path)` or, with no
/// path, `sizeof(type)`, the table's name (`PythonOffsets`, …), its value).
struct Check(&'static str, Option<&'static str>, &'static str, u64);

/// `(path, value)` of members of `ty`, as `table` has them.
fn offsets<const N: usize>(
    ty: &'static str,
    table: &'static str,
    members: [(&'static str, u64); N],
) -> Vec<Check> {
    let check = |(path, value)| Check(ty, Some(path), table, value);
    members.into_iter().map(check).collect()
}

fn size(ty: &'static str, table: &'static str, value: u64) -> Check {
    Check(ty, None, table, value)
}

/// The thread state, its list and its top frame; `_PyCFrame` (3.11, 3.12).
fn thread_checks(minor: u32, l: &VersionLayout) -> Vec<Check> {
    let f = &l.frames;
    let (top, head) = match minor {
        6..=10 => ("frame", "tstate_head"),
        11 | 12 => ("cframe", "threads.head"),
        _ => ("current_frame", "threads.head"),
    };
    let frame = [(top, f.tstate_frame.into())];
    let mut checks = offsets("PyThreadState", "PythonOffsets", frame);
    let thread = [("next", l.thread_next), ("thread_id", l.thread_id)];
    checks.extend(offsets("PyThreadState", "VersionLayout", thread));
    let threads = [(head, l.threads_head)];
    checks.extend(offsets("PyInterpreterState", "VersionLayout", threads));
    let current = f.cframe_current_frame;
    if minor == 11 || minor == 12 {
        let cframe = [("current_frame", current.into())];
        checks.extend(offsets("_PyCFrame", "PythonOffsets", cframe));
    } else {
        assert_eq!(current, NO_OFFSET, "3.{minor} has no _PyCFrame");
    }
    checks
}

/// `PyFrameObject` (3.6–3.10) or `_PyInterpreterFrame`.
fn frame_checks(minor: u32, f: &PythonOffsets) -> Vec<Check> {
    let (ty, back, entry) = match minor {
        6..=10 => ("PyFrameObject", "f_back", None),
        11 => ("_PyInterpreterFrame", "previous", Some("is_entry")),
        _ => ("_PyInterpreterFrame", "previous", Some("owner")),
    };
    let (code, instr) = match minor {
        6..=10 => ("f_code", "f_lasti"),
        11 | 12 => ("f_code", "prev_instr"),
        _ => ("f_executable", "instr_ptr"),
    };
    let members = [
        (back, f.frame_back.into()),
        (code, f.frame_code.into()),
        (instr, f.frame_lasti.into()),
    ];
    let mut checks = offsets(ty, "PythonOffsets", members);
    if let Some(entry) = entry {
        checks.extend(offsets(
            ty,
            "PythonOffsets",
            [(entry, f.frame_entry.into())],
        ));
    } else {
        assert_eq!(f.frame_entry, NO_OFFSET, "3.{minor} marks no entry frame");
    }
    checks
}

/// `PyCodeObject` as BPF reads it (`PythonOffsets`) and as naming does
/// (`CodeLayout`), and the string headers naming reads past.
fn code_checks(minor: u32, f: &PythonOffsets) -> Vec<Check> {
    let c = code_layout(minor).unwrap_or_else(|| panic!("3.{minor} has no code layout"));
    let ty = "PyCodeObject";
    let read_by_bpf = [
        ("co_argcount", f.code_argcount.into()),
        ("co_flags", f.code_flags.into()),
        ("co_firstlineno", f.code_firstlineno.into()),
        ("co_filename", f.code_filename.into()),
        ("co_name", f.code_name.into()),
    ];
    let mut checks = offsets(ty, "PythonOffsets", read_by_bpf);
    let line_table = match minor {
        6..=9 => "co_lnotab",
        _ => "co_linetable",
    };
    let read_in_naming = [
        ("co_argcount", c.argcount as u64),
        ("co_flags", c.flags as u64),
        ("co_firstlineno", c.firstlineno as u64),
        ("co_filename", c.filename as u64),
        ("co_name", c.name as u64),
        (line_table, c.line_table as u64),
    ];
    checks.extend(offsets(ty, "CodeLayout", read_in_naming));
    checks.push(size("PyASCIIObject", "CodeLayout", c.ascii_data));
    checks.push(size("PyCompactUnicodeObject", "CodeLayout", c.compact_data));
    if minor >= 11 {
        let adaptive = [("co_code_adaptive", f.code_adaptive.into())];
        checks.extend(offsets(ty, "PythonOffsets", adaptive));
        let qualname = c.qualname.expect("co_qualname since 3.11") as u64;
        checks.extend(offsets(ty, "CodeLayout", [("co_qualname", qualname)]));
    } else {
        assert_eq!(f.code_adaptive, NO_OFFSET, "3.{minor}: no co_code_adaptive");
        assert_eq!(c.qualname, None, "3.{minor} has no co_qualname");
    }
    checks
}

/// `_PyRuntimeState` (3.7+) and the `Py_tss_t` in it.
fn runtime_checks(minor: u32, runtime: Option<RuntimeLayout>) -> Vec<Check> {
    let Some(rt) = runtime else {
        assert_eq!(minor, 6, "3.{minor} has a _PyRuntime");
        return Vec::new();
    };
    let ty = "_PyRuntimeState";
    let key = match minor {
        7..=11 => "gilstate.autoTSSkey",
        _ => "autoTSSkey",
    };
    let members = [
        (key, rt.auto_tss_key),
        ("interpreters.head", rt.interpreters_head),
    ];
    let mut checks = offsets(ty, "RuntimeLayout", members);
    checks.push(size(ty, "RuntimeLayout", rt.size));
    checks.extend(offsets("Py_tss_t", "TSS_KEY", [("_key", TSS_KEY)]));
    if minor >= 13 {
        let at_start = [("debug_offsets", 0)];
        checks.extend(offsets(ty, "apply_debug_offsets", at_start));
        checks.extend(debug_offsets_checks());
    }
    checks
}

/// Where in 3.13's `_Py_DebugOffsets` `apply_debug_offsets` reads each
/// word it takes (the numbers written there, repeated here).
fn debug_offsets_checks() -> Vec<Check> {
    let last = DEBUG_OFFSETS_BYTES as u64 - 8;
    let read = [
        ("cookie", 0),
        ("version", 8),
        ("free_threaded", 16),
        ("runtime_state.size", 24),
        ("runtime_state.interpreters_head", 40),
        ("interpreter_state.threads_head", 72),
        ("thread_state.next", 168),
        ("thread_state.current_frame", 184),
        ("thread_state.thread_id", 192),
        ("interpreter_frame.previous", 232),
        ("interpreter_frame.executable", 240),
        ("interpreter_frame.instr_ptr", 248),
        ("interpreter_frame.owner", 264),
        ("code_object.filename", 280),
        ("code_object.name", 288),
        ("code_object.firstlineno", 312),
        ("code_object.argcount", 320),
        ("code_object.co_code_adaptive", last),
    ];
    offsets("_Py_DebugOffsets", "apply_debug_offsets", read)
}

/// Every check of 3.`minor`'s tables against `path`'s DWARF; a failure
/// names each number that differs or that DWARF lacks.
fn check_against_dwarf(path: &str, minor: u32) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("CPython 3.{minor}: {path}: {e}"));
    let types = Types::load(&data).unwrap_or_else(|e| panic!("CPython 3.{minor}: {path}: {e}"));
    let l = layout(minor).unwrap_or_else(|| panic!("CPython 3.{minor} has no layout table"));
    let mut checks = thread_checks(minor, &l);
    checks.extend(frame_checks(minor, &l.frames));
    checks.extend(code_checks(minor, &l.frames));
    checks.extend(runtime_checks(minor, l.runtime));
    let mut problems = Vec::new();
    for Check(ty, member, table, value) in &checks {
        let (what, found) = match member {
            Some(member) => (format!("{ty}.{member}"), types.offset(ty, member)),
            None => (format!("sizeof({ty})"), types.size(ty)),
        };
        if found != Some(*value) {
            let dwarf = found.map_or_else(|| "none found".into(), |d| d.to_string());
            problems.push(format!("{what} ({table}): table {value}, DWARF {dwarf}"));
        }
    }
    if minor == 6 && types.named("_PyRuntimeState").is_some() {
        problems.push("_PyRuntimeState: the table has none, DWARF has one".into());
    }
    assert!(
        problems.is_empty(),
        "CPython 3.{minor} ({path}): the layout tables differ from its DWARF:\n  {}",
        problems.join("\n  ")
    );
    let count = checks.len();
    eprintln!("CPython 3.{minor}: {count} numbers agree with DWARF");
}

macro_rules! interpreters {
    ($($test:ident: $path:literal, $minor:literal;)*) => {$(
        #[test]
        #[ignore = "needs root"]
        fn $test() {
            check_against_dwarf($path, $minor);
        }
    )*};
}

// Debian's /usr/bin/python3.11 has no DWARF; its layout is pyenv 3.11's.
interpreters! {
    dwarf_agrees_python_3_6: "/root/.pyenv/versions/3.6.15/lib/libpython3.6m.so.1.0", 6;
    dwarf_agrees_python_3_7: "/root/.pyenv/versions/3.7.16/lib/libpython3.7m.so.1.0", 7;
    dwarf_agrees_python_3_8: "/root/.pyenv/versions/3.8.18/lib/libpython3.8.so.1.0", 8;
    dwarf_agrees_python_3_9: "/root/.pyenv/versions/3.9.18/lib/libpython3.9.so.1.0", 9;
    dwarf_agrees_python_3_10: "/root/.pyenv/versions/3.10.13/lib/libpython3.10.so.1.0", 10;
    dwarf_agrees_python_3_11: "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0", 11;
    dwarf_agrees_python_3_12: "/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0", 12;
    dwarf_agrees_python_3_13: "/root/.pyenv/versions/3.13.0/lib/libpython3.13.so.1.0", 13;
}
