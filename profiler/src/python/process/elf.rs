//! What the interpreter's ELF file says: its symbols (`.dynsym`, then
//! `.symtab`), `Py_Version`, its loadable segments and the eval loop's
//! `.cold` part. Only the headers, the symbol tables, `.eh_frame` and the
//! eval loop's code are read, each within a bound: the file is the
//! profiled process's.

use std::fs::File;

use gimli::{BaseAddresses, CieOrFde, EhFrame, LittleEndian, UnwindSection};
use object::{
    Endianness, ReadCache, ReadRef, elf,
    read::elf::{FileHeader, ProgramHeader, SectionHeader, Sym, SymbolTable},
};

use crate::procfs::Mapping;

/// Far above any libpython (3.12's is 30 MiB with its symbols).
const MAX_ELF_BYTES: u64 = 1 << 30;
/// Far above the eval loop (55 KiB in Debian's 3.11).
const MAX_CODE_BYTES: u64 = 1 << 20;
const MAX_EH_FRAME_BYTES: u64 = 64 << 20;
/// Jumps from the eval loop into one other FDE's code, at least this
/// many, make that FDE the loop's `.cold` part in a stripped file.
const MIN_COLD_JUMPS: usize = 8;

/// The symbols looked up, `.dynsym` first, then `.symtab` (3.6's statics
/// and the `.cold` part's symbol are only there).
const SYMBOLS: [&[u8]; 6] = [
    b"_PyRuntime",
    b"_PyEval_EvalFrameDefault",
    b"Py_Version",
    b"_PyEval_EvalFrameDefault.cold",
    b"autoTLSkey",
    b"interp_head",
];

/// (address, size) of each of `SYMBOLS` a table defines.
type Symbols = [Option<(u64, u64)>; SYMBOLS.len()];

/// What the interpreter's file says, in the file's own addresses.
#[derive(Debug, Default)]
pub(super) struct ElfFacts {
    /// `_PyRuntime` (3.7+): (address, size).
    pub(super) runtime: Option<(u64, u64)>,
    /// `_PyEval_EvalFrameDefault`: (address, size).
    pub(super) eval: Option<(u64, u64)>,
    /// The eval loop's `.cold` part, [start, end), when it has one.
    pub(super) cold: Option<(u64, u64)>,
    /// `Py_Version` (3.11+): `PY_VERSION_HEX`.
    pub(super) version_hex: Option<u32>,
    /// 3.6's `static int autoTLSkey` and `interp_head` (`.symtab` only).
    pub(super) tls_key_36: Option<u64>,
    pub(super) interp_head_36: Option<u64>,
    /// Loadable segments: (file offset, file size, address).
    segments: Vec<(u64, u64, u64)>,
}

impl ElfFacts {
    /// The file read through `file`; None when it is no x86-64 ELF file,
    /// or `need_runtime` and it does not define `_PyRuntime`.
    pub(super) fn read(file: File, need_runtime: bool) -> Option<ElfFacts> {
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() > MAX_ELF_BYTES {
            return None;
        }
        let cache = ReadCache::new(file);
        let data = &cache;
        let header = elf::FileHeader64::<Endianness>::parse(data).ok()?;
        let endian = header.endian().ok()?;
        if header.e_machine(endian) != elf::EM_X86_64 {
            return None;
        }
        let sections = header.sections(endian, data).ok()?;
        let mut symbols = Symbols::default();
        let mut exported = Vec::new();
        let dynsym = sections.symbols(endian, data, elf::SHT_DYNSYM).ok()?;
        find_symbols(&dynsym, endian, &mut symbols, Some(&mut exported));
        // A static build: a `python` executable that defines `_PyRuntime`.
        if need_runtime && symbols[0].is_none() {
            return None;
        }
        if let Ok(symtab) = sections.symbols(endian, data, elf::SHT_SYMTAB) {
            find_symbols(&symtab, endian, &mut symbols, None);
        }
        let segments: Vec<_> = header
            .program_headers(endian, data)
            .ok()?
            .iter()
            .filter(|p| p.p_type(endian) == elf::PT_LOAD)
            .map(|p| (p.p_offset(endian), p.p_filesz(endian), p.p_vaddr(endian)))
            .collect();
        let read_at = |address: u64, len: u64| {
            let &(offset, _, start) = segments.iter().find(|&&(_, size, start)| {
                start <= address && address.saturating_add(len) <= start.saturating_add(size)
            })?;
            data.read_bytes_at(offset.checked_add(address - start)?, len)
                .ok()
        };
        let [runtime, eval, version, cold_symbol, tls_key, interp_head] = symbols;
        let version_hex = version
            .and_then(|(address, _)| read_at(address, 4)?.try_into().ok())
            .map(u32::from_le_bytes);
        let address = |name: &[u8]| Some(sections.section_by_name(endian, name)?.1.sh_addr(endian));
        // Without `.eh_frame` (or with a huge one) no cold part is found.
        let fdes = sections
            .section_by_name(endian, b".eh_frame")
            .filter(|(_, s)| s.sh_size(endian) <= MAX_EH_FRAME_BYTES)
            .and_then(|(_, s)| {
                let bases = (s.sh_addr(endian), address(b".text"), address(b".got"));
                Some(fde_ranges(s.data(endian, data).ok()?, bases))
            })
            .unwrap_or_default();
        let code = eval
            .filter(|&(_, size)| size <= MAX_CODE_BYTES)
            .and_then(|(address, size)| read_at(address, size));
        exported.sort_unstable();
        let cold = eval.zip(code).and_then(|(eval, code)| {
            cold_range(&fdes, eval, code, cold_symbol.map(|s| s.0), &exported)
        });
        Some(ElfFacts {
            runtime,
            eval,
            cold,
            version_hex,
            tls_key_36: tls_key.map(|s| s.0),
            interp_head_36: interp_head.map(|s| s.0),
            segments,
        })
    }

    /// Address in `mapping` (of this file) minus the file's own address.
    pub(super) fn bias(&self, mapping: &Mapping) -> u64 {
        let delta = self
            .segments
            .iter()
            .find(|&&(offset, size, _)| {
                offset & !0xfff <= mapping.file_offset
                    && mapping.file_offset < offset.saturating_add(size)
            })
            .map_or(0, |&(offset, _, address)| address.wrapping_sub(offset));
        mapping
            .start
            .wrapping_sub(mapping.file_offset)
            .wrapping_sub(delta)
    }
}

/// Fills each of `SYMBOLS` not found yet that `table` defines; collects
/// the addresses of the functions it defines into `functions`.
fn find_symbols<'a, R: ReadRef<'a>>(
    table: &SymbolTable<'a, elf::FileHeader64<Endianness>, R>,
    endian: Endianness,
    found: &mut Symbols,
    mut functions: Option<&mut Vec<u64>>,
) {
    for symbol in table.iter().filter(|s| !s.is_undefined(endian)) {
        let value = symbol.st_value(endian);
        if let Some(functions) = functions.as_mut()
            && symbol.st_type() == elf::STT_FUNC
        {
            functions.push(value);
        }
        let Ok(name) = symbol.name(endian, table.strings()) else {
            continue;
        };
        if let Some(i) = SYMBOLS.iter().position(|&s| s == name)
            && found[i].is_none()
        {
            found[i] = Some((value, symbol.st_size(endian)));
        }
    }
}

/// Every FDE's [start, end) in `.eh_frame`, given (its address, `.text`'s,
/// `.got`'s): its pointers may be relative to any of them.
fn fde_ranges(
    eh_frame: &[u8],
    (address, text, got): (u64, Option<u64>, Option<u64>),
) -> Vec<(u64, u64)> {
    let mut section = EhFrame::new(eh_frame, LittleEndian);
    section.set_address_size(8);
    let mut bases = BaseAddresses::default().set_eh_frame(address);
    if let Some(text) = text {
        bases = bases.set_text(text);
    }
    if let Some(got) = got {
        bases = bases.set_got(got);
    }
    let mut ranges = Vec::new();
    let mut entries = section.entries(&bases);
    // A malformed entry ends the walk: the ranges found so far stand.
    while let Ok(Some(entry)) = entries.next() {
        if let CieOrFde::Fde(partial) = entry
            && let Ok(fde) = partial.parse(|s, b, o| s.cie_from_offset(b, o))
        {
            let start = fde.initial_address();
            ranges.push((start, start.wrapping_add(fde.len())));
        }
    }
    ranges
}

/// The eval loop's `.cold` part, where GCC moves its unlikely paths: by
/// its `.symtab` symbol (whose size is bogus), bounded by the FDE holding
/// it; in a stripped file, the one FDE, no exported function's, that most
/// of the loop's jumps out of itself land in.
fn cold_range(
    fdes: &[(u64, u64)],
    (start, size): (u64, u64),
    code: &[u8],
    symbol: Option<u64>,
    exported: &[u64],
) -> Option<(u64, u64)> {
    if let Some(symbol) = symbol {
        return fdes
            .iter()
            .copied()
            .find(|&(s, e)| s <= symbol && symbol < e);
    }
    let eval = start..start.saturating_add(size);
    let mut targets: Vec<u64> = jump_targets(code, start)
        .filter(|t| !eval.contains(t))
        .collect();
    targets.sort_unstable();
    let hits = |(s, e): (u64, u64)| {
        targets.partition_point(|&t| t < e) - targets.partition_point(|&t| t < s)
    };
    fdes.iter()
        .copied()
        .filter(|(s, e)| s < e && exported.binary_search(s).is_err())
        .map(|range| (hits(range), range))
        .filter(|&(hits, _)| hits >= MIN_COLD_JUMPS)
        .max_by_key(|&(hits, _)| hits)
        .map(|(_, range)| range)
}

/// Where a `jmp rel32` or `jcc rel32` at each byte of `code` would go:
/// every byte is tried, not decoded, so some "targets" come from inside
/// other instructions, scattered: they make no one FDE's count.
fn jump_targets(code: &[u8], address: u64) -> impl Iterator<Item = u64> + '_ {
    (0..code.len()).filter_map(move |i| {
        let (len, rel) = match code[i..] {
            [0xe9, a, b, c, d, ..] => (5, [a, b, c, d]),
            [0x0f, 0x80..=0x8f, a, b, c, d, ..] => (6, [a, b, c, d]),
            _ => return None,
        };
        let next = address.wrapping_add(i as u64 + len);
        Some(next.wrapping_add(i64::from(i32::from_le_bytes(rel)) as u64))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cold_part_is_the_fde_the_jumps_out_of_the_loop_land_in() {
        // A loop at 0x1000 jumping 8 times to 0x100..0x110, once elsewhere.
        let mut code = Vec::new();
        for i in 0..8u64 {
            let next = 0x1000 + code.len() as u64 + 6;
            let rel = (0x100 + i) as i64 - next as i64;
            code.extend_from_slice(&[0x0f, 0x85]);
            code.extend_from_slice(&(rel as i32).to_le_bytes());
        }
        let next = 0x1000 + code.len() as u64 + 5;
        code.push(0xe9);
        code.extend_from_slice(&((0x400 - next as i64) as i32).to_le_bytes());
        let eval = (0x1000, code.len() as u64);
        let fdes = [(0x100, 0x120), (0x400, 0x500), (0x1000, 0x1100)];
        assert_eq!(
            cold_range(&fdes, eval, &code, None, &[]),
            Some((0x100, 0x120))
        );
        // An exported function is no cold part, however many jumps.
        assert_eq!(cold_range(&fdes, eval, &code, None, &[0x100]), None);
        // The symbol, where there is one, says which FDE.
        assert_eq!(
            cold_range(&fdes, eval, &code, Some(0x404), &[]),
            Some((0x400, 0x500))
        );
        assert_eq!(cold_range(&fdes, eval, &code[..20], None, &[]), None);
    }
}
