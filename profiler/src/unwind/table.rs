//! Unwind tables: a binary's `.eh_frame` (and `.debug_frame`, when it has
//! one) turned into the compact rows the BPF walk follows. Each row says,
//! from its address up to the next row's, where the caller's frame is: CFA =
//! rsp or rbp + offset, the return address at CFA - 8, rbp either untouched
//! or saved at CFA + offset. The few shapes DWARF allows beyond that are
//! recognised where they matter (PLT stubs, signal trampolines, the
//! outermost frame); anything else becomes a `NONE` row, and the walk stops
//! there and says so.

use gimli::{
    BaseAddresses, CfaRule, CieOrFde, DebugFrame, EhFrame, EndianSlice, LittleEndian, RegisterRule,
    UnwindContext, UnwindSection, UnwindTableRow, X86_64,
};
use profiler_common::{unwind_kind, unwind_rule};

use super::elf::FrameSources;

type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// A rule (see `unwind_rule`) from `pc`, the binary's own address, up to
/// the next row's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) pc: u64,
    pub(crate) rule: u32,
}

/// A rule over [start, end) as DWARF states it, before gaps are filled.
struct Span {
    start: u64,
    end: u64,
    rule: u32,
}

/// Gaps narrower than this between two functions are alignment padding,
/// which no return address points into: the rule before covers them, so
/// it can merge with the next function's first rule.
const PADDING: u64 = 16;

/// The unwind rows of a binary, sorted by address, gaps between functions
/// marked `NONE`, runs of identical rules merged.
pub(crate) fn rows(sources: &FrameSources) -> Vec<Row> {
    let mut spans = Vec::new();
    if let Some((data, address)) = &sources.eh_frame {
        let mut eh_frame = EhFrame::new(data, LittleEndian);
        eh_frame.set_address_size(8);
        let mut bases = BaseAddresses::default().set_eh_frame(*address);
        if let Some(text) = sources.text {
            bases = bases.set_text(text);
        }
        if let Some(got) = sources.got {
            bases = bases.set_got(got);
        }
        collect(&eh_frame, &bases, &mut spans);
    }
    if let Some(data) = &sources.debug_frame {
        let mut debug_frame = DebugFrame::new(data, LittleEndian);
        debug_frame.set_address_size(8);
        collect(&debug_frame, &BaseAddresses::default(), &mut spans);
    }
    finish(spans)
}

/// The row that applies at `pc`, as the BPF walk finds it.
#[cfg(test)]
pub(crate) fn row_for(rows: &[Row], pc: u64) -> Option<&Row> {
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
                rule,
            });
        }
    }
}

/// A rule without a saved rbp (offsets in range by construction).
fn rule(kind: u8, cfa_offset: u64) -> u32 {
    unwind_rule::pack(kind, cfa_offset, 0).unwrap_or(u32::from(unwind_kind::NONE))
}

fn convert<'a, S: UnwindSection<Slice<'a>>>(section: &S, row: &UnwindTableRow<usize>) -> u32 {
    match row.register(X86_64::RA) {
        Some(RegisterRule::Undefined) => return rule(unwind_kind::END, 0),
        None | Some(RegisterRule::Offset(-8)) => {}
        Some(_) => return rule(unwind_kind::NONE, 0),
    }
    let (kind, cfa_offset) = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            let kind = match *register {
                X86_64::RSP => unwind_kind::RSP,
                X86_64::RBP => unwind_kind::RBP,
                _ => return rule(unwind_kind::NONE, 0),
            };
            // A CFA below its base register is no caller's frame.
            match u64::try_from(*offset) {
                Ok(offset) => (kind, offset),
                Err(_) => return rule(unwind_kind::NONE, 0),
            }
        }
        CfaRule::Expression(expression) => {
            let bytes = expression.get(section).map(|e| e.0.slice()).unwrap_or(&[]);
            match plt_threshold(bytes) {
                Some(threshold) => (unwind_kind::PLT, threshold),
                None => return rule(unwind_kind::NONE, 0),
            }
        }
    };
    let rbp_slot = match row.register(X86_64::RBP) {
        Some(RegisterRule::Offset(offset)) if offset % 8 == 0 && offset != 0 => offset / 8,
        Some(RegisterRule::Offset(_)) => return rule(unwind_kind::NONE, 0),
        _ => 0,
    };
    // Beyond what a rule holds (no real frame): the walk cannot follow it.
    unwind_rule::pack(kind, cfa_offset, rbp_slot).unwrap_or(rule(unwind_kind::NONE, 0))
}

/// The CFA expression binutils gives PLT stubs: rsp + 8, plus 8 once the
/// stub's push has run, i.e. `rsp + 8 + ((rip & 15) >= N) << 3`. Returns N.
fn plt_threshold(expression: &[u8]) -> Option<u64> {
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
        .then(|| u64::from(*lit - 0x30))
}

/// Sorts the spans into rows: a `NONE` row wherever one span ends before
/// the next begins (past padding), and no row that repeats the rule before
/// it.
fn finish(mut spans: Vec<Span>) -> Vec<Row> {
    spans.sort_by_key(|span| (span.start, span.end));
    let mut rows: Vec<Row> = Vec::with_capacity(spans.len());
    let mut covered_to = 0;
    for span in &spans {
        if span.start < covered_to {
            // Overlapping FDEs (.debug_frame repeating .eh_frame): first wins.
            continue;
        }
        if !rows.is_empty() && span.start >= covered_to + PADDING {
            push(&mut rows, covered_to, rule(unwind_kind::NONE, 0));
        }
        push(&mut rows, span.start, span.rule);
        covered_to = span.end;
    }
    if !rows.is_empty() {
        push(&mut rows, covered_to, rule(unwind_kind::NONE, 0));
    }
    rows
}

fn push(rows: &mut Vec<Row>, pc: u64, rule: u32) {
    match rows.last_mut() {
        Some(last) if last.pc == pc => last.rule = rule,
        Some(last) if last.rule == rule => {}
        _ => rows.push(Row { pc, rule }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use object::{Object, ObjectSymbol};

    use super::*;

    fn symbol_address(data: &[u8], name: &str) -> u64 {
        let file = object::File::parse(data).unwrap();
        file.symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("no symbol {name}"))
            .address()
    }

    pub(crate) fn rows_of(path: &str) -> Vec<Row> {
        let file = std::fs::File::open(path).unwrap();
        rows(&FrameSources::read(file).unwrap())
    }

    #[test]
    fn a_function_entry_has_its_return_address_at_rsp_and_start_ends_the_stack() {
        let data = std::fs::read("/proc/self/exe").unwrap();
        let rows = rows_of("/proc/self/exe");
        assert!(rows.windows(2).all(|w| w[0].pc < w[1].pc), "rows sorted");
        let main = row_for(&rows, symbol_address(&data, "main")).unwrap().rule;
        assert_eq!(main, rule(unwind_kind::RSP, 8));
        let start = row_for(&rows, symbol_address(&data, "_start")).unwrap();
        assert_eq!(unwind_rule::kind(start.rule), unwind_kind::END);
        assert_eq!(
            row_for(&rows, 0).map(|r| r.rule),
            None,
            "nothing below the first row"
        );
    }

    #[test]
    fn libc_has_its_plt_stub_and_signal_trampoline_rules() {
        let rows = rows_of("/lib/x86_64-linux-gnu/libc.so.6");
        assert!(rows.len() > 1000, "{} rows", rows.len());
        let kinds = |kind| {
            rows.iter()
                .filter(|r| unwind_rule::kind(r.rule) == kind)
                .count()
        };
        assert!(kinds(unwind_kind::SIGNAL) >= 1, "no signal trampoline");
        assert!(
            rows.iter().any(|r| r.rule == rule(unwind_kind::PLT, 11)),
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
    fn gaps_between_functions_become_none_rows_and_repeats_merge_across_padding() {
        let span = |start, end, kind, offset| Span {
            start,
            end,
            rule: rule(kind, offset),
        };
        let shape = |rows: Vec<Row>| -> Vec<(u64, u8)> {
            rows.iter()
                .map(|r| (r.pc, unwind_rule::kind(r.rule)))
                .collect()
        };
        let rows = finish(vec![
            span(0x30, 0x40, unwind_kind::RSP, 8),
            span(0x10, 0x20, unwind_kind::RSP, 8),
            span(0x20, 0x30, unwind_kind::RSP, 8),
        ]);
        assert_eq!(
            shape(rows),
            [(0x10, unwind_kind::RSP), (0x40, unwind_kind::NONE)]
        );
        // Padding (under 16 bytes) merges; a wider gap has no rule.
        let rows = finish(vec![
            span(0x10, 0x20, unwind_kind::RSP, 8),
            span(0x2f, 0x38, unwind_kind::RSP, 8),
            span(0x48, 0x50, unwind_kind::RBP, 16),
        ]);
        assert_eq!(
            shape(rows),
            [
                (0x10, unwind_kind::RSP),
                (0x38, unwind_kind::NONE),
                (0x48, unwind_kind::RBP),
                (0x50, unwind_kind::NONE)
            ]
        );
    }

    #[test]
    fn rules_pack_and_unpack_at_the_ends_of_their_ranges() {
        for (kind, offset, slot) in [
            (unwind_kind::RSP, 8, 0),
            (unwind_kind::RBP, 16, -2),
            // A compiler's function with a frame of half a MiB.
            (unwind_kind::RSP, 540_080, -7),
            (
                unwind_kind::NONE,
                unwind_rule::MAX_CFA_OFFSET,
                unwind_rule::MIN_RBP_SLOT,
            ),
            (unwind_kind::PLT, 11, unwind_rule::MAX_RBP_SLOT),
        ] {
            let rule = unwind_rule::pack(kind, offset, slot).unwrap();
            assert_eq!(unwind_rule::kind(rule), kind);
            assert_eq!(unwind_rule::cfa_offset(rule), offset);
            assert_eq!(unwind_rule::rbp_slot(rule), slot);
        }
        assert_eq!(
            unwind_rule::pack(0, unwind_rule::MAX_CFA_OFFSET + 1, 0),
            None
        );
        assert_eq!(unwind_rule::pack(0, 8, unwind_rule::MIN_RBP_SLOT - 1), None);
    }
}
