//! Unwind tables: a binary's `.eh_frame` (and `.debug_frame`, when it has
//! one) turned into the compact rows the BPF walk follows. Each row says,
//! from its address up to the next row's, where the caller's frame is: CFA =
//! rsp or rbp + offset, the return address at CFA - 8, rbp either untouched
//! or saved at CFA + offset. The few shapes DWARF allows beyond that are
//! recognised where they matter (PLT stubs, signal trampolines, the
//! outermost frame); anything else becomes a `NONE` row, and the walk stops
//! there and says so.

use anyhow::{Context, Result};
use gimli::{
    BaseAddresses, CfaRule, CieOrFde, DebugFrame, EhFrame, EndianSlice, LittleEndian, RegisterRule,
    UnwindContext, UnwindSection, UnwindTableRow, X86_64,
};
use object::{Object, ObjectSection};
use profiler_common::{UnwindRow, unwind_kind};

type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// A rule over [start, end) as DWARF states it, before gaps are filled.
struct Span {
    start: u64,
    end: u64,
    row: UnwindRow,
}

/// The unwind rows of an ELF file, sorted by address, gaps between
/// functions marked `NONE`, runs of identical rules merged.
pub(crate) fn rows_from_elf(data: &[u8]) -> Result<Vec<UnwindRow>> {
    let file = object::File::parse(data).context("not an ELF file")?;
    let mut spans = Vec::new();
    if let Some(section) = file.section_by_name(".eh_frame") {
        let mut eh_frame = EhFrame::new(section.data()?, LittleEndian);
        eh_frame.set_address_size(8);
        let mut bases = BaseAddresses::default().set_eh_frame(section.address());
        if let Some(text) = file.section_by_name(".text") {
            bases = bases.set_text(text.address());
        }
        if let Some(got) = file.section_by_name(".got") {
            bases = bases.set_got(got.address());
        }
        collect(&eh_frame, &bases, &mut spans);
    }
    if let Some(section) = file.section_by_name(".debug_frame") {
        let mut debug_frame = DebugFrame::new(section.data()?, LittleEndian);
        debug_frame.set_address_size(8);
        collect(&debug_frame, &BaseAddresses::default(), &mut spans);
    }
    Ok(finish(spans))
}

/// The row that applies at `pc`, as the BPF walk finds it.
#[cfg(test)]
pub(crate) fn row_for(rows: &[UnwindRow], pc: u64) -> Option<&UnwindRow> {
    let after = rows.partition_point(|row| row.pc <= pc);
    after.checked_sub(1).map(|i| &rows[i])
}

fn collect<'a, S: UnwindSection<Slice<'a>>>(
    section: &S,
    bases: &BaseAddresses,
    spans: &mut Vec<Span>,
) {
    let mut context = Box::new(UnwindContext::new());
    let mut entries = section.entries(bases);
    // A malformed entry ends the section's walk, not the whole table.
    while let Ok(Some(entry)) = entries.next() {
        let CieOrFde::Fde(partial) = entry else {
            continue;
        };
        let Ok(fde) =
            partial.parse(|section, bases, offset| section.cie_from_offset(bases, offset))
        else {
            continue;
        };
        let signal = fde.is_signal_trampoline();
        let Ok(mut table) = fde.rows(section, bases, &mut context) else {
            continue;
        };
        while let Ok(Some(row)) = table.next_row() {
            let rule = if signal {
                rule(unwind_kind::SIGNAL, 0)
            } else {
                convert(section, row)
            };
            spans.push(Span {
                start: row.start_address(),
                end: row.end_address(),
                row: rule,
            });
        }
    }
}

fn rule(kind: u8, cfa_offset: i32) -> UnwindRow {
    UnwindRow {
        kind,
        cfa_offset,
        ..UnwindRow::default()
    }
}

fn convert<'a, S: UnwindSection<Slice<'a>>>(section: &S, row: &UnwindTableRow<usize>) -> UnwindRow {
    match row.register(X86_64::RA) {
        Some(RegisterRule::Undefined) => return rule(unwind_kind::END, 0),
        None | Some(RegisterRule::Offset(-8)) => {}
        Some(_) => return rule(unwind_kind::NONE, 0),
    }
    let mut converted = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            let kind = match *register {
                X86_64::RSP => unwind_kind::RSP,
                X86_64::RBP => unwind_kind::RBP,
                _ => return rule(unwind_kind::NONE, 0),
            };
            match i32::try_from(*offset) {
                Ok(offset) => rule(kind, offset),
                Err(_) => return rule(unwind_kind::NONE, 0),
            }
        }
        CfaRule::Expression(expression) => {
            let bytes = expression.get(section).map(|e| e.0.slice()).unwrap_or(&[]);
            match plt_threshold(bytes) {
                Some(threshold) => rule(unwind_kind::PLT, threshold),
                None => return rule(unwind_kind::NONE, 0),
            }
        }
    };
    if let Some(RegisterRule::Offset(offset)) = row.register(X86_64::RBP)
        && let Ok(offset) = i16::try_from(offset)
    {
        converted.rbp_saved = 1;
        converted.rbp_offset = offset;
    }
    converted
}

/// The CFA expression binutils gives PLT stubs: rsp + 8, plus 8 once the
/// stub's push has run, i.e. `rsp + 8 + ((rip & 15) >= N) << 3`. Returns N.
fn plt_threshold(expression: &[u8]) -> Option<i32> {
    const BREG7_8: [u8; 2] = [0x77, 0x08];
    const BREG16_0_LIT15_AND: [u8; 4] = [0x80, 0x00, 0x3f, 0x1a];
    const GE_LIT3_SHL_PLUS: [u8; 4] = [0x2a, 0x33, 0x24, 0x22];
    let [a, b, c, d, e, f, lit, rest @ ..] = expression else {
        return None;
    };
    let lit_range = 0x30..=0x4f; // DW_OP_lit0..lit31
    ([*a, *b] == BREG7_8
        && [*c, *d, *e, *f] == BREG16_0_LIT15_AND
        && lit_range.contains(lit)
        && rest == GE_LIT3_SHL_PLUS)
        .then(|| i32::from(*lit - 0x30))
}

/// Sorts the spans into rows: a `NONE` row wherever one span ends before
/// the next begins, and no row that repeats the rule before it.
fn finish(mut spans: Vec<Span>) -> Vec<UnwindRow> {
    spans.sort_by_key(|span| (span.start, span.end));
    let mut rows: Vec<UnwindRow> = Vec::with_capacity(spans.len() + spans.len() / 4);
    let mut covered_to = 0;
    for span in &spans {
        if span.start < covered_to {
            // Overlapping FDEs (.debug_frame repeating .eh_frame): first wins.
            continue;
        }
        if !rows.is_empty() && span.start > covered_to {
            push(
                &mut rows,
                UnwindRow {
                    pc: covered_to,
                    ..rule(unwind_kind::NONE, 0)
                },
            );
        }
        push(
            &mut rows,
            UnwindRow {
                pc: span.start,
                ..span.row
            },
        );
        covered_to = span.end;
    }
    if !rows.is_empty() {
        push(
            &mut rows,
            UnwindRow {
                pc: covered_to,
                ..rule(unwind_kind::NONE, 0)
            },
        );
    }
    rows
}

fn push(rows: &mut Vec<UnwindRow>, row: UnwindRow) {
    let same_rule = |last: &UnwindRow| UnwindRow { pc: 0, ..*last } == UnwindRow { pc: 0, ..row };
    match rows.last_mut() {
        Some(last) if last.pc == row.pc => *last = row,
        Some(last) if same_rule(last) => {}
        _ => rows.push(row),
    }
}

#[cfg(test)]
mod tests {
    use object::ObjectSymbol;

    use super::*;

    fn symbol_address(data: &[u8], name: &str) -> u64 {
        let file = object::File::parse(data).unwrap();
        file.symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("no symbol {name}"))
            .address()
    }

    #[test]
    fn a_function_entry_has_its_return_address_at_rsp_and_start_ends_the_stack() {
        let data = std::fs::read("/proc/self/exe").unwrap();
        let rows = rows_from_elf(&data).unwrap();
        assert!(rows.windows(2).all(|w| w[0].pc < w[1].pc), "rows sorted");
        let main = row_for(&rows, symbol_address(&data, "main")).unwrap();
        assert_eq!((main.kind, main.cfa_offset), (unwind_kind::RSP, 8));
        let start = row_for(&rows, symbol_address(&data, "_start")).unwrap();
        assert_eq!(start.kind, unwind_kind::END);
        assert_eq!(
            row_for(&rows, 0).map(|r| r.kind),
            None,
            "nothing below the first row"
        );
    }

    #[test]
    fn libc_has_its_plt_stub_and_signal_trampoline_rules() {
        let data = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        let rows = rows_from_elf(&data).unwrap();
        assert!(rows.len() > 1000, "{} rows", rows.len());
        let kinds = |kind| rows.iter().filter(|r| r.kind == kind).count();
        assert!(kinds(unwind_kind::SIGNAL) >= 1, "no signal trampoline");
        assert!(
            rows.iter()
                .any(|r| r.kind == unwind_kind::PLT && r.cfa_offset == 11),
            "no PLT stub rule"
        );
        assert!(kinds(unwind_kind::RSP) > kinds(unwind_kind::NONE));
    }

    #[test]
    fn plt_expressions_are_recognised_and_others_are_not() {
        let plt = [
            0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22,
        ];
        assert_eq!(plt_threshold(&plt), Some(11));
        assert_eq!(plt_threshold(&plt[..10]), None);
        assert_eq!(plt_threshold(&[0x77, 0xa0, 0x01, 0x06]), None);
    }

    #[test]
    fn gaps_between_functions_become_none_rows_and_repeats_merge() {
        let span = |start, end, kind, offset| Span {
            start,
            end,
            row: rule(kind, offset),
        };
        let rows = finish(vec![
            span(0x30, 0x40, unwind_kind::RSP, 8),
            span(0x10, 0x20, unwind_kind::RSP, 8),
            span(0x20, 0x30, unwind_kind::RSP, 8),
        ]);
        let shape: Vec<_> = rows.iter().map(|r| (r.pc, r.kind)).collect();
        assert_eq!(shape, [(0x10, unwind_kind::RSP), (0x40, unwind_kind::NONE)]);
        let rows = finish(vec![
            span(0x10, 0x20, unwind_kind::RSP, 8),
            span(0x28, 0x30, unwind_kind::RBP, 16),
        ]);
        let shape: Vec<_> = rows.iter().map(|r| (r.pc, r.kind)).collect();
        assert_eq!(
            shape,
            [
                (0x10, unwind_kind::RSP),
                (0x20, unwind_kind::NONE),
                (0x28, unwind_kind::RBP),
                (0x30, unwind_kind::NONE)
            ]
        );
    }
}
