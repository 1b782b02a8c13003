//! Frames, interned once each, and what was learned naming them: each
//! module's path and build id, each function's source file and symbol as
//! the binary spells it, and the file mappings of each process that its
//! addresses were named in (pprof's mappings).

use std::collections::{BTreeMap, HashMap};

use super::printable::{make_printable, printable};

/// Index into [`FrameTable`].
pub type FrameId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrameKind {
    User,
    /// A function inlined into the user frame below it (from DWARF).
    Inlined,
    Kernel,
    /// A user address no symbol covers: named `[module+0xoffset]`, or
    /// `[unknown]` when it is in no file.
    Unknown,
    /// Not a function: a marker such as `[truncated]` or `[lost stack]`.
    Pseudo,
    /// A Python function, named `function (file.py:line)`; its module is
    /// the file's name (the whole path in `FrameTable::module_paths`).
    Python,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    pub name: String,
    /// File name of the binary or library (not the whole path).
    pub module: Option<String>,
    pub kind: FrameKind,
}

impl Frame {
    pub(crate) fn pseudo(name: &str) -> Frame {
        Frame {
            name: name.to_string(),
            module: None,
            kind: FrameKind::Pseudo,
        }
    }

    /// A Python frame's function and line, from its name `function
    /// (file.py:line)`.
    pub(crate) fn python_source(&self) -> Option<(&str, u32)> {
        if self.kind != FrameKind::Python {
            return None;
        }
        let (function, place) = self.name.rsplit_once(" (")?;
        let line = place.strip_suffix(')')?.rsplit_once(':')?.1.parse().ok()?;
        Some((function, line))
    }
}

/// Every distinct frame once, so stacks are short vectors of ids. Names
/// and modules are stored printable (see `printable`).
#[derive(Debug, Default, Clone)]
pub struct FrameTable {
    frames: Vec<Frame>,
    ids: HashMap<Frame, FrameId>,
    /// The full path of each module (frames keep only its file name).
    module_paths: BTreeMap<String, String>,
    /// The GNU build id of each module that has one, in hex, read while
    /// the run could still reach the file its frames were named from.
    build_ids: BTreeMap<String, String>,
    /// Each function's source file, where debug info names one.
    source_files: HashMap<FrameId, String>,
    /// Symbols as the binary spells them, where the frame's name is not
    /// that (demangled).
    symbols: HashMap<FrameId, String>,
    /// The file mappings addresses were named in, per process.
    mappings: HashMap<u32, Vec<MappedFile>>,
}

impl FrameTable {
    pub fn intern(&mut self, mut frame: Frame) -> FrameId {
        make_printable(&mut frame.name);
        if let Some(module) = &mut frame.module {
            make_printable(module);
        }
        if let Some(&id) = self.ids.get(&frame) {
            return id;
        }
        let id = self.frames.len() as FrameId;
        self.frames.push(frame.clone());
        self.ids.insert(frame, id);
        id
    }

    pub(crate) fn get(&self, id: FrameId) -> &Frame {
        &self.frames[id as usize]
    }

    pub(crate) fn all(&self) -> &[Frame] {
        &self.frames
    }

    pub(crate) fn note_module_path(&mut self, name: &str, path: &str) {
        let name = printable(name);
        if !self.module_paths.contains_key(name.as_ref()) {
            let path = printable(path).into_owned();
            self.module_paths.insert(name.into_owned(), path);
        }
    }

    /// Whether a module's path is noted already (its frames are stored by
    /// its printable name).
    pub(crate) fn knows_module(&self, name: &str) -> bool {
        self.module_paths.contains_key(printable(name).as_ref())
    }

    /// Notes a module's build id (hex), the first one given.
    pub(crate) fn note_build_id(&mut self, name: &str, build_id: &str) {
        let name = printable(name).into_owned();
        let build_id = printable(build_id).into_owned();
        self.build_ids.entry(name).or_insert(build_id);
    }

    /// The build id of a module, by its (printable) file name.
    pub(crate) fn build_id(&self, name: &str) -> Option<&str> {
        self.build_ids.get(name).map(String::as_str)
    }

    /// Modules seen, by file name, with their full paths.
    pub(crate) fn module_paths(&self) -> &BTreeMap<String, String> {
        &self.module_paths
    }

    /// Notes the source file of a function's frame, the first one given.
    pub(crate) fn note_source_file(&mut self, id: FrameId, path: &str) {
        self.source_files
            .entry(id)
            .or_insert_with(|| printable(path).into_owned());
    }

    /// The source file a frame's function is defined in, from debug info.
    pub(crate) fn source_file(&self, id: FrameId) -> Option<&str> {
        self.source_files.get(&id).map(String::as_str)
    }

    /// Notes the symbol a frame was named from, as the binary spells it
    /// (mangled), where its name is not that.
    pub(crate) fn note_symbol(&mut self, id: FrameId, symbol: &str) {
        if self.get(id).name != symbol {
            self.symbols
                .entry(id)
                .or_insert_with(|| printable(symbol).into_owned());
        }
    }

    /// The symbol of a frame as the binary spells it.
    pub(crate) fn symbol(&self, id: FrameId) -> &str {
        self.symbols
            .get(&id)
            .map_or(&self.get(id).name, String::as_str)
    }

    /// Notes a file mapping of process `tgid` that frames were named in.
    pub(crate) fn note_mapping(&mut self, tgid: u32, mapping: MappedFile) {
        let mappings = self.mappings.entry(tgid).or_default();
        if !mappings.contains(&mapping) {
            mappings.push(mapping);
        }
    }

    /// The noted mapping of process `tgid` that holds `address`.
    pub(crate) fn mapping_at(&self, tgid: u32, address: u64) -> Option<&MappedFile> {
        self.mappings
            .get(&tgid)?
            .iter()
            .find(|m| m.start <= address && address < m.limit)
    }

    /// Takes in what `other` learned: frames were interned already, their
    /// ids in `other` map to `ids`. Process mappings are left out: the
    /// addresses they place are not kept across windows.
    pub(crate) fn merge_knowledge(&mut self, other: &FrameTable, ids: &[FrameId]) {
        for (name, path) in &other.module_paths {
            self.note_module_path(name, path);
        }
        for (name, build_id) in &other.build_ids {
            self.note_build_id(name, build_id);
        }
        for (&id, path) in &other.source_files {
            self.note_source_file(ids[id as usize], path);
        }
        for (&id, symbol) in &other.symbols {
            self.note_symbol(ids[id as usize], symbol);
        }
    }
}

/// A file mapped into a process, where frames of its were named: the
/// address range, and the offset in the file the range starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MappedFile {
    pub(crate) start: u64,
    pub(crate) limit: u64,
    pub(crate) file_offset: u64,
    pub(crate) path: String,
}
