//! The kernel memory a run's BPF maps take: how many entries each map gets
//! from the flags, and one arithmetic for both the check made before
//! anything is loaded and `-v`'s table of the loaded maps.
//!
//! The check refuses a run whose maps could take more than half of the
//! machine's memory: BPF maps are kernel memory that never swaps, taken
//! from the workload being profiled, and the defaults need a small fraction
//! of that on any machine, so such sizes are mistakes (a digit too many)
//! that would otherwise stall the machine before the kernel refuses them.

use profiler_common::names;

use crate::cli::Config;

/// How a map's entries turn into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One key and value per entry (arrays, hashes, stack maps).
    Plain,
    /// One key and a value per CPU per entry.
    PerCpu,
    /// The entry count is the buffer's size in bytes.
    RingBuf,
}

impl Kind {
    /// The kind of a map of `bpf_map_type` `map_type`; None for types
    /// bpfprof does not use.
    pub(crate) fn of_type(map_type: u32) -> Option<Kind> {
        use aya_obj::generated::bpf_map_type::*;
        let is = |t: aya_obj::generated::bpf_map_type| map_type == t as u32;
        if [
            BPF_MAP_TYPE_HASH,
            BPF_MAP_TYPE_ARRAY,
            BPF_MAP_TYPE_STACK_TRACE,
            BPF_MAP_TYPE_LRU_HASH,
        ]
        .into_iter()
        .any(is)
        {
            Some(Kind::Plain)
        } else if [
            BPF_MAP_TYPE_PERCPU_HASH,
            BPF_MAP_TYPE_PERCPU_ARRAY,
            BPF_MAP_TYPE_LRU_PERCPU_HASH,
        ]
        .into_iter()
        .any(is)
        {
            Some(Kind::PerCpu)
        } else if is(BPF_MAP_TYPE_RINGBUF) {
            Some(Kind::RingBuf)
        } else {
            None
        }
    }
}

/// `BPF_F_NO_PREALLOC`: the map's memory grows with use, up to its bound.
const NO_PREALLOC: u32 = 1;

/// A map's entries and the memory the kernel holds for it (approximately:
/// entries times key and value size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MapCost {
    pub(crate) name: String,
    pub(crate) entries: u32,
    pub(crate) bytes: u64,
    /// Allocated as used: `bytes` is a bound, not taken up front.
    pub(crate) on_demand: bool,
}

/// The shape of one map, as the object declares it or the kernel reports it.
pub(crate) struct Shape {
    pub(crate) kind: Kind,
    pub(crate) entries: u32,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    pub(crate) flags: u32,
}

impl MapCost {
    pub(crate) fn new(name: &str, shape: &Shape, cpus: u64) -> MapCost {
        let entries = u64::from(shape.entries);
        let bytes = match shape.kind {
            Kind::RingBuf => entries,
            Kind::Plain | Kind::PerCpu => {
                let copies = if shape.kind == Kind::PerCpu { cpus } else { 1 };
                let value = u64::from(shape.value_size) * copies;
                entries * (u64::from(shape.key_size) + value)
            }
        };
        MapCost {
            name: name.to_string(),
            entries: shape.entries,
            bytes,
            on_demand: shape.flags & NO_PREALLOC != 0,
        }
    }
}

/// One line per map, then the totals (`-v`).
pub(crate) fn describe(costs: &[MapCost]) -> Vec<String> {
    let mut lines = Vec::new();
    let (mut total, mut on_demand_total) = (0, 0);
    for cost in costs {
        if cost.on_demand {
            on_demand_total += cost.bytes;
        } else {
            total += cost.bytes;
        }
        lines.push(format!(
            "map {:<14} {:>8} entries  {:>8.1} MiB{}",
            cost.name,
            cost.entries,
            mib(cost.bytes),
            if cost.on_demand {
                " at most, as used"
            } else {
                ""
            }
        ));
    }
    lines.push(format!(
        "maps in all                        {:>8.1} MiB, and up to {:.1} MiB more as used",
        mib(total),
        mib(on_demand_total)
    ));
    lines
}

/// The flags that size maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizeFlag {
    StackMapSize,
    MaxStacks,
    UnwindRows,
}

impl SizeFlag {
    fn describe(self, config: &Config) -> String {
        match self {
            SizeFlag::StackMapSize => format!("--stack-map-size {}", config.map_sizes.stack_map),
            SizeFlag::MaxStacks => format!("--max-stacks {}", config.map_sizes.max_stacks),
            SizeFlag::UnwindRows => format!("--unwind-rows {}", config.unwind_rows),
        }
    }
}

/// A map whose size the run sets, and the flag it follows, if any.
pub(crate) struct Sizing {
    pub(crate) map: &'static str,
    pub(crate) entries: u32,
    pub(crate) flag: Option<SizeFlag>,
}

/// The entries of every map the run sizes; the others keep the object's.
pub(crate) fn sizing(config: &Config) -> Vec<Sizing> {
    let sizes = config.map_sizes;
    let off_cpu = config.off_cpu.is_some();
    let wakers = config.off_cpu.as_ref().is_some_and(|o| o.wakers);
    // Maps of features not in use get one entry: preallocating them
    // cost more CPU at start-up than a 99 Hz run spends sampling.
    let when = |used: bool, n: u32| if used { n } else { 1 };
    let of = |flag, map, entries| Sizing {
        map,
        entries,
        flag: Some(flag),
    };
    let fixed = |map, entries| Sizing {
        map,
        entries,
        flag: None,
    };
    let mut maps: Vec<Sizing> = [names::KERNEL_STACKS, names::USER_STACKS]
        .into_iter()
        .flatten()
        .map(|map| of(SizeFlag::StackMapSize, map, sizes.stack_map))
        .collect();
    // Short stacks of both kinds share one map per set: room for as many
    // as the kernel and user maps together.
    maps.extend(names::SHORT_STACKS.map(|map| {
        of(
            SizeFlag::StackMapSize,
            map,
            sizes.stack_map.saturating_mul(2),
        )
    }));
    for set in 0..2 {
        maps.extend([
            of(SizeFlag::MaxStacks, names::COUNTS[set], sizes.max_stacks),
            of(
                SizeFlag::MaxStacks,
                names::OFF_US[set],
                when(off_cpu, sizes.max_stacks),
            ),
            of(
                SizeFlag::MaxStacks,
                names::WAKE_US[set],
                when(wakers, sizes.max_stacks),
            ),
        ]);
    }
    maps.extend([
        fixed(names::PENDING, when(off_cpu, 32768)),
        fixed(names::REUSED_STACKS, when(off_cpu, 16384)),
        fixed(names::WAKERS, when(wakers, 32768)),
        fixed(names::AYA_LOGS, super::log::ring_bytes(config.verbose)),
        of(
            SizeFlag::UnwindRows,
            names::UNWIND_TABLES,
            config.unwind_rows,
        ),
    ]);
    maps
}

/// The unwind tables: one array per binary, made as binaries are met, all
/// of them together within the rows budget.
fn unwind_tables_cost(config: &Config) -> MapCost {
    let row_bytes = size_of::<profiler_common::UnwindRow>() as u64;
    MapCost {
        name: names::UNWIND_TABLES.to_string(),
        entries: config.unwind_rows,
        bytes: u64::from(config.unwind_rows) * row_bytes,
        on_demand: true,
    }
}

/// The maps the run would create from `object`, sized as `config` says.
pub(crate) fn planned(config: &Config, object: &aya_obj::Object, cpus: u64) -> Vec<MapCost> {
    let sizing = sizing(config);
    let mut costs: Vec<MapCost> = object
        .maps
        .iter()
        .filter_map(|(name, map)| {
            let entries = sizing
                .iter()
                .find(|s| s.map == name)
                .map_or(map.max_entries(), |s| s.entries);
            let shape = Shape {
                kind: Kind::of_type(map.map_type())?,
                entries,
                key_size: map.key_size(),
                value_size: map.value_size(),
                flags: map.map_flags(),
            };
            Some(MapCost::new(name, &shape, cpus))
        })
        .collect();
    costs.push(unwind_tables_cost(config));
    costs.sort_by(|a, b| a.name.cmp(&b.name));
    costs
}

/// Refuses maps that could take more than half of `mem_total` bytes, in one
/// line naming the flag whose maps take the most.
pub(crate) fn check(config: &Config, costs: &[MapCost], mem_total: u64) -> Result<(), String> {
    let total: u64 = costs.iter().map(|c| c.bytes).sum();
    if total <= mem_total / 2 {
        return Ok(());
    }
    let sizing = sizing(config);
    let flag_of = |name: &str| sizing.iter().find(|s| s.map == name).and_then(|s| s.flag);
    let by_flag = |flag| -> u64 {
        let maps = costs.iter().filter(|c| flag_of(&c.name) == Some(flag));
        maps.map(|c| c.bytes).sum()
    };
    let largest = [
        SizeFlag::StackMapSize,
        SizeFlag::MaxStacks,
        SizeFlag::UnwindRows,
    ]
    .into_iter()
    .map(|flag| (by_flag(flag), flag))
    .max_by_key(|&(bytes, _)| bytes);
    let memory = format!(
        "more than half of this machine's {:.1} GiB of memory",
        gib(mem_total)
    );
    Err(match largest {
        Some((bytes, flag)) if bytes > 0 => format!(
            "{}: its BPF maps would take up to {:.1} GiB ({:.1} GiB with the others), {memory}",
            flag.describe(config),
            gib(bytes),
            gib(total)
        ),
        _ => format!(
            "the BPF maps would take up to {:.1} GiB, {memory}",
            gib(total)
        ),
    })
}

/// MemTotal from /proc/meminfo, in bytes.
pub(crate) fn mem_total() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Limits, validate};
    use clap::Parser;

    fn config(args: &[&str]) -> Config {
        let cli =
            Cli::try_parse_from(std::iter::once("bpfprof").chain(args.iter().copied())).unwrap();
        let limits = Limits {
            max_sample_rate: 1000,
            cpus: 2,
        };
        validate(cli.profile, &limits, Some, || "out".into()).unwrap()
    }

    /// The maps the run sizes, with the object's key and value sizes.
    fn costs(config: &Config) -> Vec<MapCost> {
        sizing(config)
            .iter()
            .map(|s| {
                let (key_size, value_size) = match s.map {
                    m if m.starts_with("SHORT_STACKS") => (8, 192),
                    m if m.contains("STACKS") => (8, 1024),
                    m if m.starts_with("UNWIND") => (4, 16),
                    _ => (48, 8),
                };
                let shape = Shape {
                    kind: Kind::Plain,
                    entries: s.entries,
                    key_size,
                    value_size,
                    flags: NO_PREALLOC,
                };
                MapCost::new(s.map, &shape, 2)
            })
            .collect()
    }

    #[test]
    fn per_cpu_values_and_ring_buffers_are_counted() {
        let shape = |kind| Shape {
            kind,
            entries: 10,
            key_size: 4,
            value_size: 8,
            flags: 0,
        };
        assert_eq!(MapCost::new("a", &shape(Kind::Plain), 4).bytes, 120);
        assert_eq!(MapCost::new("a", &shape(Kind::PerCpu), 4).bytes, 360);
        assert_eq!(MapCost::new("a", &shape(Kind::RingBuf), 4).bytes, 10);
        assert!(!MapCost::new("a", &shape(Kind::Plain), 4).on_demand);
        let lines = describe(&costs(&config(&[])));
        assert!(
            lines.last().unwrap().starts_with("maps in all"),
            "{lines:?}"
        );
    }

    #[test]
    fn maps_over_half_the_memory_are_refused_naming_the_flag() {
        const GIB: u64 = 1 << 30;
        let defaults = config(&[]);
        check(&defaults, &costs(&defaults), 2 * GIB).unwrap();
        let big = config(&["--stack-map-size", "16777216", "--max-stacks", "16777216"]);
        let err = check(&big, &costs(&big), 24 * GIB).unwrap_err();
        assert!(
            err.starts_with("--stack-map-size 16777216: its BPF maps would take up to 77.0 GiB"),
            "{err}"
        );
        assert!(
            err.ends_with("half of this machine's 24.0 GiB of memory"),
            "{err}"
        );
        let rows = config(&["--unwind-rows", "4294967295"]);
        let err = check(&rows, &costs(&rows), 24 * GIB).unwrap_err();
        assert!(err.starts_with("--unwind-rows 4294967295: "), "{err}");
        let fp = config(&["--unwind-rows", "4294967295", "--unwind", "fp"]);
        check(&fp, &costs(&fp), 24 * GIB).unwrap();
    }
}
