//! A process's addresses to names: its binaries and their debug info
//! through blazesym, then its JIT perf map, then the mapping an address is
//! in; through /proc/PID/map_files while it lives, through the paths of
//! its last snapshot after it exited.

use std::collections::HashSet;

use blazesym::{
    Pid,
    symbolize::{
        CodeInfo, Input, Sym, Symbolized,
        source::{Process, Source},
    },
};

use super::{Names, Symbolizer, build_id, clean, file_name, unique_lookup_addrs};
use crate::{
    drain::RawStacks,
    procfs,
    profile::{Frame, FrameId, FrameKind, FrameTable, MappedFile},
};

impl Symbolizer {
    pub(super) fn symbolize_process(
        &mut self,
        tgid: u32,
        stacks: &[&RawStacks],
        table: &mut FrameTable,
    ) -> Names {
        let addrs = unique_lookup_addrs(stacks.iter().map(|s| &s.user), true);
        self.name_user_addrs(tgid, &addrs, procfs::exists(tgid), table)
    }

    /// Names a process's addresses. `alive` is what was seen just before:
    /// the process may exit while they are named.
    pub(super) fn name_user_addrs(
        &mut self,
        tgid: u32,
        addrs: &[u64],
        alive: bool,
        table: &mut FrameTable,
    ) -> Names {
        if alive {
            // Refresh the snapshot: libraries may have been loaded since.
            self.remember(tgid);
        }
        // map_files needs a live process, or binaries opened while it ran;
        // otherwise, after exit, the mapped paths serve.
        let opened = self.cached.get(&tgid).is_some_and(|c| c.binaries_opened);
        if !alive {
            // A map written since the last refresh is still in /tmp.
            self.perf_maps.refresh_exited(tgid);
        }
        let mut results = self.symbolize_user(tgid, addrs, alive || opened);
        if results.is_none() && alive && !opened {
            // It exited since we looked (its map_files went with it): the
            // snapshot's paths still name it.
            self.perf_maps.refresh_exited(tgid);
            results = self.symbolize_user(tgid, addrs, false);
        }
        let results = results.unwrap_or_default();
        // The last snapshot's mappings name unknown addresses by file, after
        // exit too: an exec empties them before the new image is read, so
        // they never belong to an image older than the stacks named here.
        let no_mappings = Vec::new();
        let mappings = self.cached.get(&tgid).map_or(&no_mappings, |c| &c.mappings);
        let mut names = Names::new();
        // The file mappings frames were named in, by start: noted once each.
        let mut named_in = HashSet::new();
        for (i, &addr) in addrs.iter().enumerate() {
            let found = procfs::find_mapping(mappings, addr);
            let file = found.filter(|m| m.path.starts_with('/'));
            let named = match results.get(i) {
                Some(Symbolized::Sym(sym)) => self.sym_frames(tgid, sym, file, table),
                _ => vec![(self.unnamed_frame(tgid, addr, found, table), 0)],
            };
            if let Some(m) = file {
                named_in.insert(m.start);
            }
            names.insert(addr, named);
        }
        for m in mappings.iter().filter(|m| named_in.contains(&m.start)) {
            let mapped = MappedFile {
                start: m.start,
                limit: m.end,
                file_offset: m.file_offset,
                path: m.path.clone(),
            };
            table.note_mapping(tgid, mapped);
        }
        names
    }

    /// The frame of an address no symbol covers: its JIT perf map's name,
    /// else the mapping it is in and the offset there, else `[unknown]`.
    fn unnamed_frame(
        &self,
        tgid: u32,
        addr: u64,
        mapping: Option<&procfs::Mapping>,
        table: &mut FrameTable,
    ) -> FrameId {
        let frame = match self.perf_maps.lookup(tgid, addr) {
            Some(name) => Frame {
                name: clean(name),
                module: Some("[jit]".into()),
                kind: FrameKind::User,
            },
            None => Frame {
                name: mapping.map_or_else(|| "[unknown]".into(), |m| m.describe(addr)),
                module: mapping.map(|m| file_name(&m.path)),
                kind: FrameKind::Unknown,
            },
        };
        table.intern(frame)
    }

    /// The frames of a symbol blazesym found, outermost first (inlined
    /// last), each with its source line; the module is the file mapped
    /// there (blazesym may name the separate debug file it read instead).
    fn sym_frames(
        &self,
        tgid: u32,
        sym: &Sym<'_>,
        mapping: Option<&procfs::Mapping>,
        table: &mut FrameTable,
    ) -> Vec<(FrameId, u32)> {
        let path = match mapping {
            Some(m) => Some(m.path.clone()),
            None => sym
                .module
                .as_deref()
                .map(|m| m.to_string_lossy().into_owned()),
        };
        let module = path.as_deref().map(file_name);
        if let (Some(name), Some(path)) = (&module, &path)
            && !table.knows_module(name)
        {
            table.note_module_path(name, path);
            if let Some(id) = module_build_id(tgid, mapping, path) {
                table.note_build_id(name, &id);
            }
        }
        let mut frame = |symbol: &str, code: Option<&CodeInfo<'_>>, kind| {
            let id = table.intern(Frame {
                name: clean(&self.demangled(symbol)),
                module: module.clone(),
                kind,
            });
            table.note_symbol(id, symbol);
            // The first file given is kept: the path is made only for that.
            if let Some(code) = code
                && table.source_file(id).is_none()
            {
                table.note_source_file(id, &code.to_path().to_string_lossy());
            }
            (id, code.and_then(|c| c.line).unwrap_or(0))
        };
        let mut frames = vec![frame(&sym.name, sym.code_info.as_deref(), FrameKind::User)];
        for inlined in &sym.inlined {
            frames.push(frame(
                &inlined.name,
                inlined.code_info.as_ref(),
                FrameKind::Inlined,
            ));
        }
        frames
    }

    /// One batched call for a process's addresses; None if blazesym failed
    /// the whole batch (a binary it could not open).
    fn symbolize_user(
        &self,
        tgid: u32,
        addrs: &[u64],
        map_files: bool,
    ) -> Option<Vec<Symbolized<'_>>> {
        let mut source = Process::new(Pid::from(tgid));
        // Perf maps are ours to read (see `perf_map`).
        source.perf_map = false;
        source.map_files = map_files;
        self.blazesym
            .symbolize(&Source::Process(source), Input::AbsAddr(addrs))
            .ok()
    }
}

/// The build id of the binary an address was named from: through the
/// mapping itself while the process lives (the very file, whatever its
/// path holds now), else through its path.
fn module_build_id(tgid: u32, mapping: Option<&procfs::Mapping>, path: &str) -> Option<String> {
    let mapped = mapping
        .filter(|m| m.path == path)
        .and_then(|m| build_id::read(&m.map_files_path(tgid), true));
    // A process gone before its first drain: its path names the file.
    mapped.or_else(|| build_id::read(std::path::Path::new(path), false))
}
