//! What the tests read of the workloads' ELF files.

use std::path::Path;

/// Each function of an ELF file: its name and its address range, which in
/// the workloads is also its range of file offsets (their text is mapped
/// at its offset).
pub fn function_ranges(path: &Path) -> Vec<(String, std::ops::Range<u64>)> {
    use object::{Object, ObjectSymbol, SymbolKind};
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .map(|s| {
            let name = s.name().unwrap().to_string();
            (name, s.address()..s.address() + s.size())
        })
        .collect()
}
