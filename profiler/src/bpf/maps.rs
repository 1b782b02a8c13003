//! Typed access to the maps other modules read and write: a drain
//! generation's map set (for `drain`), the pending off-CPU records and the
//! recorded wakers (for `blocked`), and the unwind tables (for `unwind`).
//! Each map is found by its name in `profiler_common::names`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use anyhow::{Context, Result};
use aya::{
    Pod,
    maps::{Array, ArrayOfMaps, HashMap, Map, MapData},
};
use profiler_common::{
    OffCpuKey, PendingBlock, ProcessMappings, ShortStack, Stack, StackKey, UnwindRow, WakeKey,
    Waker, map_set, names, python::PythonProcess,
};

use super::{Collector, batch};

/// `BPF_NOEXIST`: insert only if the key is absent.
const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`: update only if the key is present.
const BPF_EXIST: u64 = 2;

impl Collector {
    pub(super) fn map(&self, name: &str) -> Result<&Map> {
        self.ebpf
            .map(name)
            .with_context(|| format!("map {name} missing from the BPF object"))
    }

    pub(super) fn map_mut(&mut self, name: &str) -> Result<&mut Map> {
        self.ebpf
            .map_mut(name)
            .with_context(|| format!("map {name} missing from the BPF object"))
    }

    /// The maps BPF writes in drain generations of map set
    /// `map_set(generation)`.
    pub(crate) fn map_set(&mut self, generation: u32) -> Result<MapSet<'_>> {
        let set = map_set(generation) as usize;
        let [
            Some(kernel_stacks),
            Some(user_stacks),
            Some(short_stacks),
            Some(counts),
            Some(off_us),
            Some(wake_us),
        ] = self.ebpf.maps_disjoint_mut([
            names::KERNEL_STACKS[set],
            names::USER_STACKS[set],
            names::SHORT_STACKS[set],
            names::COUNTS[set],
            names::OFF_US[set],
            names::WAKE_US[set],
        ])
        else {
            let set = if set == 0 { "A" } else { "B" };
            anyhow::bail!("map set {set} missing from the BPF object");
        };
        Ok(MapSet {
            kernel_stacks,
            user_stacks,
            short_stacks,
            counts,
            off_us,
            wake_us,
        })
    }

    /// The off-CPU records of threads that switched out and have not run
    /// since, by tid.
    pub(crate) fn pending(&mut self) -> Result<Pending<'_>> {
        Ok(Pending(HashMap::try_from(self.map_mut(names::PENDING)?)?))
    }

    /// The pending records now, read while BPF changes them.
    pub(crate) fn pending_records(&self) -> Result<Vec<(u32, PendingBlock)>> {
        self.read_live(names::PENDING)
    }

    /// The wakers recorded now (by woken tid), read while BPF changes them.
    pub(crate) fn waker_records(&self) -> Result<Vec<(u32, Waker)>> {
        self.read_live(names::WAKERS)
    }

    /// Reads a map BPF is changing: keys first (bounded, since iteration
    /// restarts when a key is deleted under it), then each value still there.
    fn read_live<V: Pod>(&self, name: &str) -> Result<Vec<(u32, V)>> {
        let data = self.map(name)?;
        let capacity = match data {
            Map::HashMap(d) | Map::LruHashMap(d) => d.info().ok(),
            _ => None,
        }
        .map_or(65536, |info| info.max_entries() as usize);
        let map: HashMap<&MapData, u32, V> = HashMap::try_from(data)?;
        let keys: Vec<u32> = map
            .keys()
            .take(2 * capacity)
            .filter_map(Result::ok)
            .collect();
        Ok(keys
            .into_iter()
            .filter_map(|k| Some((k, map.get(&k, 0).ok()?)))
            .collect())
    }

    /// The unwind tables BPF walks user stacks with.
    pub(crate) fn unwind_tables(&mut self) -> UnwindTables<'_> {
        UnwindTables(self)
    }

    /// Gives BPF what it needs to walk process `tgid`'s Python frames.
    pub(crate) fn set_python_process(&mut self, tgid: u32, process: &PythonProcess) -> Result<()> {
        let mut processes: HashMap<&mut MapData, u32, PythonProcess> =
            HashMap::try_from(self.map_mut(names::PYTHON_PROCESSES)?)?;
        processes
            .insert(tgid, process, 0)
            .with_context(|| format!("loading the Python layout of pid {tgid}"))
    }

    /// Stops walking these processes' Python frames (one not there is skipped).
    pub(crate) fn remove_python_processes(&mut self, tgids: &[u32]) -> Result<()> {
        let mut processes: HashMap<&mut MapData, u32, PythonProcess> =
            HashMap::try_from(self.map_mut(names::PYTHON_PROCESSES)?)?;
        for tgid in tgids {
            let _ = processes.remove(tgid);
        }
        Ok(())
    }
}

/// One map set: the maps BPF writes in one drain generation.
pub(crate) struct MapSet<'a> {
    kernel_stacks: &'a mut Map,
    user_stacks: &'a mut Map,
    short_stacks: &'a mut Map,
    counts: &'a mut Map,
    off_us: &'a mut Map,
    wake_us: &'a mut Map,
}

/// Every map of the set is read and emptied by one of these, while nothing
/// writes to it (the set is not the active one).
impl MapSet<'_> {
    /// Empties the kernel stack map, the user one and the short one,
    /// passing each stack by its id to `each`.
    pub(crate) fn take_stacks(&mut self, mut each: impl FnMut(i64, &Stack)) -> Result<()> {
        batch::take_all::<i64, Stack>(self.kernel_stacks, &mut each)?;
        batch::take_all::<i64, Stack>(self.user_stacks, &mut each)?;
        batch::take_all::<i64, ShortStack>(self.short_stacks, &mut |id, short| {
            each(id, &short.to_stack())
        })
    }

    /// On-CPU sample counts.
    pub(crate) fn take_counts(&mut self) -> Result<Vec<(StackKey, u64)>> {
        collect(self.counts)
    }

    /// Off-CPU microseconds.
    pub(crate) fn take_off_cpu(&mut self) -> Result<Vec<(OffCpuKey, u64)>> {
        collect(self.off_us)
    }

    /// Off-CPU microseconds with their wakers.
    pub(crate) fn take_wakes(&mut self) -> Result<Vec<(WakeKey, u64)>> {
        collect(self.wake_us)
    }
}

fn collect<K: Pod>(map: &mut Map) -> Result<Vec<(K, u64)>> {
    let mut entries = Vec::new();
    batch::take_all::<K, u64>(map, &mut |key, value| entries.push((key, *value)))?;
    Ok(entries)
}

/// The pending map, for changes made from userspace.
pub(crate) struct Pending<'a>(HashMap<&'a mut MapData, u32, PendingBlock>);

impl Pending<'_> {
    /// Adds the thread's record unless it has one; false when not added.
    pub(crate) fn insert_new(&mut self, tid: u32, record: PendingBlock) -> bool {
        self.0.insert(tid, record, BPF_NOEXIST).is_ok()
    }

    /// Replaces the thread's record if it still has one; false when BPF
    /// consumed it meanwhile.
    pub(crate) fn replace(&mut self, tid: u32, record: PendingBlock) -> bool {
        self.0.insert(tid, record, BPF_EXIST).is_ok()
    }
}

/// The unwind tables: each binary's table (`UNWIND_TABLES`), processes'
/// mappings (`UNWIND_PROCESSES`) and the slot each process's mappings are
/// in (`UNWIND_SLOTS`).
pub(crate) struct UnwindTables<'a>(&'a mut Collector);

/// One binary's unwind table: an array made on its own (by the thread that
/// reads tables, off the capture's loop), sized to the binary, until
/// `UnwindTables::set_table` gives it to BPF.
pub(crate) struct UnwindTable(MapData);

impl UnwindTable {
    /// A table holding `entries`: filled through a memory mapping of the
    /// array, one copy, where a batched update of a large binary's million
    /// entries took most of a second.
    pub(crate) fn new(entries: &[UnwindRow]) -> Result<UnwindTable> {
        use aya_obj::generated::{
            BPF_F_INNER_MAP, BPF_F_MMAPABLE, bpf_map_type::BPF_MAP_TYPE_ARRAY,
        };
        let len = u32::try_from(entries.len()).context("unwind table too large")?;
        let shape = aya_obj::Map::new_from_params(
            BPF_MAP_TYPE_ARRAY as u32,
            size_of::<u32>() as u32,
            size_of::<UnwindRow>() as u32,
            len.max(1),
            BPF_F_INNER_MAP | BPF_F_MMAPABLE,
        );
        let data =
            MapData::create(shape, "unwind_table", None).context("creating an unwind table")?;
        fill_mapped(data.fd().as_fd(), entries).context("filling an unwind table")?;
        Ok(UnwindTable(data))
    }
}

/// Copies `values` to the start of the mmapable array behind `fd`. An
/// array's values are laid out one after another, each rounded up to
/// 8 bytes (`values` are: `UnwindRow` is 8 bytes).
fn fill_mapped<T: Pod>(fd: BorrowedFd, values: &[T]) -> std::io::Result<()> {
    const _: () = assert!(size_of::<UnwindRow>().is_multiple_of(8));
    let bytes = size_of_val(values);
    if bytes == 0 {
        return Ok(());
    }
    // SAFETY: a fresh shared mapping of the map's memory, of the map's size
    // or less, written only here and unmapped before returning.
    unsafe {
        let mapped = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        );
        if mapped == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        std::ptr::copy_nonoverlapping(values.as_ptr().cast::<u8>(), mapped.cast::<u8>(), bytes);
        libc::munmap(mapped, bytes);
    }
    Ok(())
}

impl UnwindTables<'_> {
    /// Gives BPF `table` as table `index` of `UNWIND_TABLES`.
    pub(crate) fn set_table(&mut self, index: u32, table: &UnwindTable) -> Result<()> {
        let mut tables: ArrayOfMaps<&mut MapData, MapData> =
            ArrayOfMaps::try_from(self.0.map_mut(names::UNWIND_TABLES)?)?;
        tables
            .set(index, &table.0, 0)
            .context("loading an unwind table")
    }

    /// Frees table `index` of `UNWIND_TABLES`: no process refers to it.
    pub(crate) fn remove_table(&mut self, index: u32) -> Result<()> {
        let map = self.0.map_mut(names::UNWIND_TABLES)?;
        let Map::ArrayOfMaps(data) = map else {
            anyhow::bail!("{} is not an array of maps", names::UNWIND_TABLES);
        };
        super::batch::delete_map_of_maps_entry(data.fd().as_fd(), index)
            .with_context(|| format!("freeing unwind table {index}"))
    }

    /// Gives process `tgid` its mappings, in `slot`: the mappings first,
    /// then the slot BPF finds them by.
    pub(crate) fn set_process(
        &mut self,
        tgid: u32,
        slot: u32,
        mappings: &ProcessMappings,
    ) -> Result<()> {
        let mut processes: Array<&mut MapData, ProcessMappings> =
            Array::try_from(self.0.map_mut(names::UNWIND_PROCESSES)?)?;
        processes
            .set(slot, mappings, 0)
            .with_context(|| format!("loading the mappings of pid {tgid}"))?;
        let mut slots: HashMap<&mut MapData, u32, u32> =
            HashMap::try_from(self.0.map_mut(names::UNWIND_SLOTS)?)?;
        slots
            .insert(tgid, slot, 0)
            .with_context(|| format!("loading the mappings of pid {tgid}"))
    }

    /// Drops the slots of these processes (each one not there is skipped).
    pub(crate) fn remove_processes(&mut self, tgids: &[u32]) -> Result<()> {
        let mut slots: HashMap<&mut MapData, u32, u32> =
            HashMap::try_from(self.0.map_mut(names::UNWIND_SLOTS)?)?;
        for tgid in tgids {
            let _ = slots.remove(tgid);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs root: creates BPF maps"]
    fn an_unwind_table_holds_its_entries_past_the_first_page() {
        let entries: Vec<UnwindRow> = (0..3000)
            .map(|i| UnwindRow {
                pc: i * 7,
                rule: i ^ 0x5a5a,
            })
            .collect();
        let UnwindTable(data) = UnwindTable::new(&entries).unwrap();
        let map = Map::Array(data);
        let array: Array<&MapData, UnwindRow> = Array::try_from(&map).unwrap();
        assert_eq!(array.len(), 3000);
        for i in [0, 1, 511, 512, 2999] {
            assert_eq!(array.get(&i, 0).unwrap(), entries[i as usize], "entry {i}");
        }
    }
}
