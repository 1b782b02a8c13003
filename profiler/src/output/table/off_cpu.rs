//! The off-CPU tables: functions by wall time, the places threads waited,
//! and processes by wall time; times in us, ms or s.

use std::fmt::Write;

use super::truncate;
use crate::{
    analysis::off_cpu::{OffCpuSummary, states},
    profile::StateTimes,
};

pub(crate) fn tables(out: &mut String, off: &OffCpuSummary, top: usize) {
    let by_state: Vec<String> = states()
        .filter(|&(i, _)| off.by_state[i] > 0)
        .map(|(i, name)| format!("{name} {}", time(off.by_state[i])))
        .collect();
    let _ = writeln!(
        out,
        "\nOff-CPU: {} blocked ({})",
        time(off.total_us),
        if by_state.is_empty() {
            "nothing".into()
        } else {
            by_state.join(", ")
        }
    );
    if off.total_us == 0 {
        return;
    }
    functions(out, off, top);
    wait_sites(out, off, top);
    processes(out, off, top);
}

fn functions(out: &mut String, off: &OffCpuSummary, top: usize) {
    let _ = writeln!(
        out,
        "\nTop {top} functions by wall time (on-CPU + off-CPU, self + callees)"
    );
    let _ = writeln!(
        out,
        "  {:>9} {:>9} {}  {:<WALL_FUNCTION$}  module",
        "wall",
        "cpu",
        state_header(),
        "function"
    );
    for f in off.functions.iter().take(top) {
        let _ = writeln!(
            out,
            "  {:>9} {:>9} {}  {:<WALL_FUNCTION$}  {}",
            time(f.wall_us()),
            time(f.cpu_us),
            state_cells(&f.off_us),
            truncate(&f.name, WALL_FUNCTION),
            truncate(&f.module, WALL_MODULE)
        );
    }
}

fn wait_sites(out: &mut String, off: &OffCpuSummary, top: usize) {
    let _ = writeln!(
        out,
        "\nTop {top} places threads waited (innermost user-space function)"
    );
    let _ = writeln!(
        out,
        "  {:>9} {}  {:<WAIT_FUNCTION$}  module",
        "off-cpu",
        state_header(),
        "function"
    );
    for w in off.wait_sites.iter().take(top) {
        let _ = writeln!(
            out,
            "  {:>9} {}  {:<WAIT_FUNCTION$}  {}",
            time(w.total()),
            state_cells(&w.off_us),
            truncate(&w.name, WAIT_FUNCTION),
            truncate(&w.module, WAIT_MODULE)
        );
    }
}

fn processes(out: &mut String, off: &OffCpuSummary, top: usize) {
    let _ = writeln!(out, "\nTop processes by wall time");
    let _ = writeln!(
        out,
        "  {:>8} {:>9} {:>9} {}  process",
        "pid",
        "wall",
        "cpu",
        state_header()
    );
    for p in off.processes.iter().take(top) {
        let _ = writeln!(
            out,
            "  {:>8} {:>9} {:>9} {}  {}",
            p.id,
            time(p.wall_us()),
            time(p.cpu_us),
            state_cells(&p.off_us),
            truncate(&p.name, 20)
        );
    }
}

const WALL_FUNCTION: usize = 28;
const WALL_MODULE: usize = 12;
const WAIT_FUNCTION: usize = 38;
const WAIT_MODULE: usize = 14;

fn state_header() -> String {
    format!(
        "{:>9} {:>9} {:>9} {:>9}",
        "sleeping", "uninter", "preempt", "other"
    )
}

fn state_cells(times: &StateTimes) -> String {
    format!(
        "{:>9} {:>9} {:>9} {:>9}",
        time(times[0]),
        time(times[1]),
        time(times[2]),
        time(times[3])
    )
}

/// Microseconds as `-`, `850 us`, `12.3 ms` or `4.56 s`.
pub(crate) fn time(us: u64) -> String {
    match us {
        0 => "-".into(),
        1..1_000 => format!("{us} us"),
        1_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}
