//! One step of a user-stack walk, from a frame to its caller: by the
//! binary's unwind table where userspace loaded one (built from .eh_frame,
//! see profiler/src/unwind), else by the frame pointer. Tables make stacks
//! whole through code built without frame pointers and through frameless
//! leaf functions, whose caller a frame-pointer walk skips.

use aya_ebpf::{
    Global,
    bindings::{BPF_F_INNER_MAP, BPF_F_MMAPABLE},
    btf_maps::{Array as TableArray, ArrayOfMaps},
    helpers::bpf_probe_read_user,
    macros::{btf_map, map},
    maps::{Array, HashMap, PerCpuArray},
};
use profiler_common::{
    MAX_UNWIND_MAPPINGS, MAX_UNWIND_TABLES, PROCESS_MAPS_STALE, ProcessMappings, UnwindMapping,
    UnwindRow, table_state, unwind_kind, unwind_mode, unwind_rule,
};

use crate::events::announce;

/// `--unwind`: one of `unwind_mode::*`.
#[unsafe(no_mangle)]
pub static UNWIND_MODE: Global<u32> = Global::new(unwind_mode::FP);

/// One table per loaded binary (its page index, then its rows, sorted):
/// each an array sized to its binary by userspace, which creates it when
/// the binary is first met (and fills it through a memory mapping, as one
/// copy), so no binary waits on a budget shared with the others.
type Table = TableArray<UnwindRow, 1, { (BPF_F_INNER_MAP | BPF_F_MMAPABLE) as usize }>;
#[btf_map]
static UNWIND_TABLES: ArrayOfMaps<Table, { MAX_UNWIND_TABLES as usize }> = ArrayOfMaps::new();
/// Each loaded process's slot in `UNWIND_PROCESSES`, by tgid.
#[map]
static UNWIND_SLOTS: HashMap<u32, u32> = HashMap::with_max_entries(1024, 0);
/// Each process's executable mappings and where their rows are, by slot:
/// an array, so the lookup each frame needs is a few instructions (a hash
/// lookup per frame was a fifth of a table walk's cost).
#[map]
pub static UNWIND_PROCESSES: Array<ProcessMappings> = Array::with_max_entries(1024, 0);

/// The rows found lately, per CPU, by address and process load: a hit
/// skips the mapping scan, the page index and the binary search, several
/// cache lines each (A/B on a busy load: 690 -> 630 ns per sample at
/// 999 Hz). Direct-mapped; a slot holds the last address that hashed to it.
#[map]
static ROW_CACHE: PerCpuArray<CachedRow> = PerCpuArray::with_max_entries(ROW_CACHE_SLOTS, 0);
const ROW_CACHE_SLOTS: u32 = 4096;

#[repr(C)]
#[derive(Clone, Copy)]
struct CachedRow {
    /// The address looked up (`UnwindRow::pc` is the row's start).
    address: u64,
    /// `ProcessMappings::version`: unique to each load of a process's
    /// mappings (0 is none), so an entry of an older load never matches.
    version: u32,
    _pad: u32,
    row: UnwindRow,
}

/// No slot: the process has no tables (or `--unwind fp`).
pub const NO_SLOT: u32 = u32::MAX;

/// The current process's slot in `UNWIND_PROCESSES`, or `NO_SLOT`.
#[inline(always)]
pub fn process_slot(tgid: u32) -> u32 {
    if UNWIND_MODE.load() == unwind_mode::FP {
        return NO_SLOT;
    }
    unsafe { UNWIND_SLOTS.get(tgid) }
        .copied()
        .unwrap_or(NO_SLOT)
}

/// Nothing is mapped in the first page; a frame pointer there is garbage.
const MIN_FRAME_ADDRESS: u64 = 4096;
/// Binary search depth: up to 2^24 rows per binary.
const ROW_SEARCH_STEPS: usize = 24;
/// Where a signal frame's ucontext keeps the interrupted rbp, rsp and rip
/// (offsets from rsp at the trampoline: uc_mcontext is at 40, gregs in
/// the kernel's order).
const SIGNAL_RBP: u64 = 40 + 10 * 8;
const SIGNAL_RSP: u64 = 40 + 15 * 8;
const SIGNAL_RIP: u64 = 40 + 16 * 8;

/// A frame's registers.
#[derive(Clone, Copy)]
pub struct Frame {
    pub pc: u64,
    pub sp: u64,
    pub bp: u64,
    /// `pc` is where execution stopped (the leaf, or a frame a signal
    /// interrupted), not a return address just past a call.
    pub exact: bool,
}

pub enum Step {
    Caller(Frame),
    /// The outermost frame: the stack is whole.
    End,
    /// The usual end of a frame-pointer chain: no frame record at bp.
    Stop,
    /// The walk cannot go on: no rule for the frame (`cfa` 0), or the
    /// rule's CFA is no caller's or the memory at it is unreadable.
    Failed {
        cfa: u64,
    },
}

/// True when user stacks are walked by unwind tables (`auto`, `dwarf`).
#[inline(always)]
pub fn tables_wanted() -> bool {
    UNWIND_MODE.load() != unwind_mode::FP
}

/// The caller of `frame`. `mappings` is None in frame-pointer mode and for
/// processes whose tables are not loaded (yet). `pending` is set when the
/// step went by frame pointers because the frame's table is still being
/// loaded.
#[inline(always)]
pub fn step(
    frame: &Frame,
    mappings: Option<*mut ProcessMappings>,
    tgid: u32,
    pending: &mut u64,
) -> Step {
    let Some(mappings) = mappings else {
        return frame_pointer_step(frame);
    };
    let mappings = unsafe { &mut *mappings };
    let lookup = if frame.exact {
        frame.pc
    } else {
        frame.pc.wrapping_sub(1)
    };
    let version = mappings.version;
    let slot = ((lookup ^ (lookup >> 12) ^ u64::from(version)) as u32) & (ROW_CACHE_SLOTS - 1);
    let cached = ROW_CACHE.get_ptr_mut(slot);
    if let Some(cached) = cached {
        let cached = unsafe { &*cached };
        if cached.address == lookup && cached.version == version {
            return follow(frame, &cached.row);
        }
    }
    let Some(mapping) = find_mapping(mappings, lookup) else {
        if mappings.stale == 0 {
            mappings.stale = 1;
            announce(tgid, PROCESS_MAPS_STALE);
        }
        return without_table(frame);
    };
    if mapping.state == table_state::PENDING {
        // Not cached: the table may be there at the next sample.
        *pending = 1;
        return without_table(frame);
    }
    // No table or no row: a row of kind NONE, so the cache remembers that.
    let row = if mapping.state == table_state::READY {
        find_row(&mapping, lookup.wrapping_sub(mapping.bias))
    } else {
        None
    }
    .unwrap_or(UnwindRow {
        pc: 0,
        rule: u32::from(unwind_kind::NONE),
    });
    if let Some(cached) = cached {
        unsafe {
            *cached = CachedRow {
                address: lookup,
                version,
                _pad: 0,
                row,
            }
        };
    }
    follow(frame, &row)
}

/// The caller of `frame` by `row`'s rule.
#[inline(always)]
fn follow(frame: &Frame, row: &UnwindRow) -> Step {
    match unwind_rule::kind(row.rule) {
        unwind_kind::RSP | unwind_kind::RBP | unwind_kind::PLT => table_step(frame, row),
        unwind_kind::SIGNAL => signal_step(frame),
        unwind_kind::END => Step::End,
        _ => without_table(frame),
    }
}

/// A frame with no usable rule: frame pointers in `auto` mode, the end of
/// an incomplete walk in `dwarf` mode.
#[inline(always)]
fn without_table(frame: &Frame) -> Step {
    if UNWIND_MODE.load() == unwind_mode::AUTO {
        frame_pointer_step(frame)
    } else {
        Step::Failed { cfa: 0 }
    }
}

#[inline(always)]
fn frame_pointer_step(frame: &Frame) -> Step {
    let fp = frame.bp;
    // A frame record lies above the stack pointer; anything else is not one.
    if fp < MIN_FRAME_ADDRESS || fp & 7 != 0 || fp < frame.sp {
        return Step::Stop;
    }
    let Ok([caller_fp, ret]) = (unsafe { bpf_probe_read_user(fp as *const [u64; 2]) }) else {
        return Step::Stop;
    };
    if ret == 0 {
        return Step::End;
    }
    Step::Caller(Frame {
        pc: ret,
        sp: fp + 16,
        bp: caller_fp,
        exact: false,
    })
}

#[inline(always)]
fn table_step(frame: &Frame, row: &UnwindRow) -> Step {
    let offset = unwind_rule::cfa_offset(row.rule);
    let rbp_slot = unwind_rule::rbp_slot(row.rule);
    let cfa = match unwind_rule::kind(row.rule) {
        unwind_kind::RSP => frame.sp.wrapping_add(offset),
        unwind_kind::RBP => frame.bp.wrapping_add(offset),
        // PLT: 8 more once the stub's push has run.
        _ if frame.pc & 15 >= offset => frame.sp + 16,
        _ => frame.sp + 8,
    };
    // The caller's frame is above this one; anything else is a bad rule or
    // a corrupt register, and would loop.
    if cfa <= frame.sp {
        return Step::Failed { cfa };
    }
    // Most functions that save rbp push it first, right below the return
    // address: one read then fetches both.
    if rbp_slot == -2 {
        let Ok([bp, ret]) = (unsafe { bpf_probe_read_user((cfa - 16) as *const [u64; 2]) }) else {
            return Step::Failed { cfa };
        };
        return caller(ret, cfa, bp);
    }
    let Ok(ret) = (unsafe { bpf_probe_read_user((cfa - 8) as *const u64) }) else {
        return Step::Failed { cfa };
    };
    let bp = if rbp_slot != 0 {
        let saved = cfa.wrapping_add((rbp_slot * 8) as u64);
        match unsafe { bpf_probe_read_user(saved as *const u64) } {
            Ok(bp) => bp,
            Err(_) => return Step::Failed { cfa },
        }
    } else {
        frame.bp
    };
    caller(ret, cfa, bp)
}

/// The caller's frame, found by a table rule; a zero return address ends
/// the stack.
#[inline(always)]
fn caller(ret: u64, cfa: u64, bp: u64) -> Step {
    if ret == 0 {
        return Step::End;
    }
    Step::Caller(Frame {
        pc: ret,
        sp: cfa,
        bp,
        exact: false,
    })
}

/// A signal trampoline: the interrupted frame's registers are in the
/// ucontext on the stack, and its pc is exact.
#[inline(always)]
fn signal_step(frame: &Frame) -> Step {
    let read = |offset: u64| unsafe { bpf_probe_read_user((frame.sp + offset) as *const u64) };
    match (read(SIGNAL_RIP), read(SIGNAL_RSP), read(SIGNAL_RBP)) {
        (Ok(pc), Ok(sp), Ok(bp)) if pc != 0 => Step::Caller(Frame {
            pc,
            sp,
            bp,
            exact: true,
        }),
        _ => Step::Failed { cfa: 0 },
    }
}

/// The mapping containing `pc`. A linear scan, not a binary search: the
/// verifier follows every path of a search whose indices address the map
/// value, and 2^7 paths per frame exceed its budget; a scan is one path per
/// index, and processes have a handful of executable mappings.
#[inline(always)]
fn find_mapping(mappings: &ProcessMappings, pc: u64) -> Option<UnwindMapping> {
    let len = mappings.len as usize;
    for i in 0..MAX_UNWIND_MAPPINGS {
        if i >= len {
            return None;
        }
        let mapping = &mappings.mappings[i];
        if pc < mapping.start {
            return None;
        }
        if pc < mapping.end {
            return Some(*mapping);
        }
    }
    None
}

/// The last row at or below `offset` (an address in the mapping's table's
/// scale) in the mapping's table: a binary search among the rows of
/// `offset`'s page.
#[inline(always)]
fn find_row(mapping: &UnwindMapping, offset: u64) -> Option<UnwindRow> {
    // Below the table's base, or past what its 32-bit addresses reach.
    let offset = u32::try_from(offset).ok()?;
    let table = UNWIND_TABLES.get(mapping.table)?;
    // Past the last page: the search runs from that page's first row to the
    // end, and finds the closing row.
    let page = (offset >> 12).min(mapping.page_count.checked_sub(1)?);
    let mut low = table.get(page)?.pc;
    let mut high = table.get(page.wrapping_add(1))?.pc.wrapping_add(1);
    high = high.min(mapping.rows_len);
    // Rows follow the page index.
    let rows = mapping.page_count.wrapping_add(1);
    // The answer is in [low, high): the last row with pc <= offset.
    for _ in 0..ROW_SEARCH_STEPS {
        if high.wrapping_sub(low) <= 1 {
            break;
        }
        let mid = low + (high - low) / 2;
        let row = table.get(rows.wrapping_add(mid))?;
        if row.pc <= offset {
            low = mid;
        } else {
            high = mid;
        }
    }
    let row = table.get(rows.wrapping_add(low))?;
    (row.pc <= offset).then_some(*row)
}
