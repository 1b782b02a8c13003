//! Python frames of a batch, named: `function (file.py:line)`, the file
//! as the frame's module. A frame whose code object cannot be read as the
//! one BPF saw is one unnamed `[python code]` frame.

use std::collections::HashSet;

use profiler_common::python::PythonCodeEvent;

use super::{PythonIds, Symbolizer, Word, clean, file_name, words};
use crate::{
    drain::RawStacks,
    profile::{Frame, FrameKind, FrameTable},
};

impl Symbolizer {
    /// Process `tgid` runs CPython 3.`minor`: its Python frames are named.
    pub(crate) fn note_python(&mut self, tgid: u32, minor: u32) {
        self.python.note_process(tgid, minor);
    }

    /// BPF met these code objects: read them now, while their processes
    /// surely live.
    pub(crate) fn prefetch_python(&mut self, events: &[PythonCodeEvent]) {
        for event in events {
            self.python.prefetch(event.tgid, event.code, event.identity);
        }
    }

    pub(super) fn name_python(
        &mut self,
        tgid: u32,
        stacks: &[&RawStacks],
        table: &mut FrameTable,
    ) -> PythonIds {
        let mut seen = HashSet::new();
        let mut ids = PythonIds::new();
        for stack in stacks {
            for word in words(stack.user.frames(), true) {
                let Word::Python { code, meta } = word else {
                    continue;
                };
                if !seen.insert((code, meta)) {
                    continue;
                }
                let frame = match self.python.frame(tgid, code, meta) {
                    Some(named) => {
                        let file = file_name(&named.file);
                        let name = match named.line {
                            Some(line) => format!("{} ({file}:{line})", named.function),
                            None => format!("{} ({file})", named.function),
                        };
                        if !table.knows_module(&file) {
                            table.note_module_path(&file, &named.file);
                        }
                        Frame {
                            name: clean(&name),
                            module: Some(file),
                            kind: FrameKind::Python,
                        }
                    }
                    None => Frame {
                        name: "[python code]".into(),
                        module: None,
                        kind: FrameKind::Unknown,
                    },
                };
                ids.insert((code, meta), table.intern(frame));
            }
        }
        ids
    }
}
