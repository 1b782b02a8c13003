//! Names of the Python frames BPF recorded: each code object read once
//! per process from its memory (`code`), kept while the process lives,
//! and trusted only while it reads as the object BPF saw (its identity):
//! a code object freed and another made at its address is read anew, and
//! one that does not match is left unnamed rather than misnamed.

use std::collections::HashMap;

use super::{
    code::{CodeLayout, CodeObject, code_layout, read_code},
    memory::ProcessMemory,
};

/// A Python frame, named: `name (file:line)` as py-spy shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PythonFrame {
    pub(crate) function: String,
    /// The file's path, as the code object has it.
    pub(crate) file: String,
    pub(crate) line: Option<u32>,
}

#[derive(Default)]
pub(crate) struct PythonNames {
    processes: HashMap<u32, ProcessCode>,
}

struct ProcessCode {
    layout: CodeLayout,
    memory: Option<ProcessMemory>,
    /// Code objects by address, as last read (None: it did not read).
    code: HashMap<u64, Option<CodeObject>>,
}

impl ProcessCode {
    /// The code object at `code` as BPF saw it (`identity`): as read
    /// before, else read now; None when it does not read as that object.
    fn object(&mut self, code: u64, identity: u32) -> Option<&CodeObject> {
        let known = matches!(self.code.get(&code), Some(Some(o)) if o.identity() == identity);
        if !known {
            let read = read_code(self.memory.as_ref()?, &self.layout, code);
            if self.code.len() >= MAX_CODE_OBJECTS {
                self.code.clear();
            }
            self.code.insert(code, read);
        }
        self.code
            .get(&code)?
            .as_ref()
            .filter(|o| o.identity() == identity)
    }
}

/// Code objects kept per process: a process that makes code without end
/// (`exec` in a loop) keeps no more than this.
const MAX_CODE_OBJECTS: usize = 65536;

impl PythonNames {
    /// Process `tgid` runs CPython 3.`minor`.
    pub(crate) fn note_process(&mut self, tgid: u32, minor: u32) {
        let Some(layout) = code_layout(minor) else {
            return;
        };
        self.processes.insert(
            tgid,
            ProcessCode {
                layout,
                memory: ProcessMemory::open(tgid),
                code: HashMap::new(),
            },
        );
    }

    /// Reads the code object BPF just met in process `tgid`, unless it is
    /// read already as the same object: named later even if the process
    /// has exited by then.
    pub(crate) fn prefetch(&mut self, tgid: u32, code: u64, identity: u32) {
        if let Some(process) = self.processes.get_mut(&tgid) {
            process.object(code, identity);
        }
    }

    /// The frame BPF recorded as `code` and `meta` (identity and
    /// position) in process `tgid`; None when it cannot be named.
    pub(crate) fn frame(&mut self, tgid: u32, code: u64, meta: u64) -> Option<PythonFrame> {
        let process = self.processes.get_mut(&tgid)?;
        let object = process.object(code, (meta >> 32) as u32)?;
        Some(PythonFrame {
            function: object.name.clone(),
            line: object.line(meta as u32 as i32),
            file: object.filename.clone(),
        })
    }

    /// Drops what is kept for a process that is gone.
    pub(crate) fn forget(&mut self, tgid: u32) {
        self.processes.remove(&tgid);
    }
}
