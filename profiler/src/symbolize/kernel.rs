//! Kernel addresses to names: the core kernel from this boot's copy of
//! its symbols (`kallsyms`), modules and BPF programs from /proc/kallsyms.

use blazesym::symbolize::{
    Input, Symbolized,
    source::{Kernel, Source},
};

use super::{Names, Symbolizer, clean, kallsyms, unique_lookup_addrs};
use crate::{
    drain::RawStacks,
    profile::{Frame, FrameKind, FrameTable},
};

impl Symbolizer {
    pub(super) fn symbolize_kernel(&self, stacks: &[&RawStacks], table: &mut FrameTable) -> Names {
        let addrs = unique_lookup_addrs(stacks.iter().map(|s| &s.kernel), false);
        if addrs.is_empty() {
            return Names::new();
        }
        // Core kernel text from this boot's copy of its symbols, the rest
        // (modules, BPF programs) from /proc/kallsyms.
        let core_text = self.core_text.get_or_init(kallsyms::core_text).as_ref();
        let (core, rest): (Vec<u64>, Vec<u64>) = match core_text {
            Some(text) => addrs.into_iter().partition(|&a| text.contains(a)),
            None => (Vec::new(), addrs),
        };
        let mut results = match core_text {
            Some(text) => self.symbolize_kernel_from(&text.source(), &core),
            None => Vec::new(),
        };
        results.extend(self.symbolize_kernel_from(&Source::Kernel(Kernel::default()), &rest));
        let mut names = Names::new();
        for (addr, result) in core.iter().chain(&rest).zip(results) {
            let ids = match result {
                Symbolized::Sym(sym) => vec![table.intern(Frame {
                    name: clean(&self.demangled(&sym.name)),
                    module: None,
                    kind: FrameKind::Kernel,
                })],
                // No address in the name: outputs are shared, and a kernel
                // address gives away where KASLR put the kernel.
                Symbolized::Unknown(_) => vec![table.intern(Frame {
                    name: "[unknown]".into(),
                    module: None,
                    kind: FrameKind::Kernel,
                })],
            };
            names.insert(*addr, ids.into_iter().map(|id| (id, 0)).collect());
        }
        names
    }

    /// Names for `addrs`, one each (unknown when the source fails).
    fn symbolize_kernel_from(&self, source: &Source, addrs: &[u64]) -> Vec<Symbolized<'_>> {
        if addrs.is_empty() {
            return Vec::new();
        }
        let mut results = self
            .blazesym
            .symbolize(source, Input::AbsAddr(addrs))
            .unwrap_or_default();
        results.resize_with(addrs.len(), || {
            Symbolized::Unknown(blazesym::symbolize::Reason::Unsupported)
        });
        results
    }
}
