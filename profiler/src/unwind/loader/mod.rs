//! Loads unwind tables into BPF: each binary's table once, shared by every
//! process that maps it, and each process's executable mappings, in
//! `UNWIND_PROCESSES`, pointing at its binaries' tables. A process is
//! loaded when BPF first sees it, again on exec, and again when a walk
//! meets an address outside its known mappings (a library loaded since).
//! Exited processes are forgotten.
//!
//! A binary met for the first time goes to the `worker` thread; its
//! mappings are marked pending until the table comes back, and then every
//! process waiting on it is loaded again. This module owns which binaries
//! are known and which processes wait on them, and where processes go
//! (their slots); `bpf` writes the maps.

mod room;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::Result;
use profiler_common::{
    MAX_UNWIND_MAPPINGS, ProcessMappings, UnwindMapping, UnwindRow, table_state,
};
use tokio::sync::mpsc::error::TryRecvError;

use super::{
    binary::Layout,
    cache::TableCache,
    worker::{FileKey, Job, Outcome, Reply, Source, Worker},
};
use crate::{
    bpf::Collector,
    procfs::{self, Mapping},
    untrusted_file,
};

/// What a run's tables hold, for -v.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct UnwindStats {
    pub(crate) binaries: u64,
    /// Of those, read from the disk cache.
    pub(crate) from_cache: u64,
    /// Entries (rows and page index) of all tables.
    pub(crate) rows: u64,
    /// Seconds the worker spent on the tables it parsed or read.
    pub(crate) seconds: f64,
    /// Processes left to frame pointers: every slot was taken.
    pub(crate) processes_not_loaded: u64,
    /// Tables freed when the last process using them exited (`binaries`
    /// and `rows` are what is loaded now).
    pub(crate) freed: u64,
}

/// Processes with tables at once: the entries of `UNWIND_PROCESSES`.
const PROCESS_SLOTS: u32 = 1024;

/// A binary as far as processes' mappings are concerned.
enum Binary {
    /// With the worker; the processes to load again when it is back.
    Pending(Vec<u32>),
    Ready {
        index: u32,
        layout: Layout,
    },
    /// Its table (of `rows` entries) did not fit; the processes to load
    /// again if room is made.
    DidNotFit {
        waiting: Vec<u32>,
        rows: u64,
    },
    NoTable,
}

pub(crate) struct UnwindLoader {
    binaries: HashMap<FileKey, Binary>,
    worker: Worker,
    /// Each loaded process's slot in `UNWIND_PROCESSES`, and the free ones.
    slots: HashMap<u32, u32>,
    free_slots: Vec<u32>,
    /// The tables each loaded process's mappings point at: a table no
    /// process points at is freed.
    tables_in_use: HashMap<u32, HashSet<u32>>,
    /// The entries all tables together may hold (`--unwind-rows`).
    rows_budget: u64,
    /// Processes whose walks met an unknown address, reloaded at once (a
    /// new process's libraries are mapped just after its exec, when it is
    /// first loaded); those reloaded so this interval, and those whose
    /// walks missed again since, reloaded at the next drain: a process
    /// whose walks keep missing costs one reload per interval, not one per
    /// sample.
    reloaded: HashSet<u32>,
    stale: HashSet<u32>,
    /// Process loads so far: each load's version.
    loads: u32,
    pub(crate) stats: UnwindStats,
    /// Binaries whose table did not fit, by path, with its entries.
    not_loaded: BTreeMap<String, u64>,
    /// Those not yet moved into a profile's losses.
    not_loaded_unsettled: BTreeMap<String, u64>,
}

impl UnwindLoader {
    /// `rows_budget`: the table entries of all binaries together;
    /// `cache`: where tables are kept between runs, if anywhere.
    pub(crate) fn new(rows_budget: u64, cache: Option<TableCache>) -> UnwindLoader {
        UnwindLoader {
            binaries: HashMap::new(),
            worker: Worker::start(rows_budget, cache),
            slots: HashMap::new(),
            free_slots: (0..PROCESS_SLOTS).rev().collect(),
            tables_in_use: HashMap::new(),
            rows_budget,
            reloaded: HashSet::new(),
            stale: HashSet::new(),
            loads: 0,
            stats: UnwindStats::default(),
            not_loaded: BTreeMap::new(),
            not_loaded_unsettled: BTreeMap::new(),
        }
    }

    /// Reads the process's mappings and gives BPF their tables (those
    /// known; the others are queued, and pending meanwhile).
    pub(crate) fn load_process(&mut self, collector: &mut Collector, tgid: u32) -> Result<()> {
        let mut mappings: Vec<UnwindMapping> = procfs::executable_mappings(tgid)
            .iter()
            .map(|mapping| self.mapping(tgid, mapping))
            .collect();
        if mappings.is_empty() {
            return Ok(());
        }
        // Too many: keep those with tables (or about to have them) first.
        mappings.sort_by_key(|m| (m.state == table_state::NONE, m.start));
        mappings.truncate(MAX_UNWIND_MAPPINGS);
        mappings.sort_by_key(|m| m.start);
        self.loads += 1;
        let mut value = ProcessMappings {
            len: mappings.len() as u32,
            stale: 0,
            version: self.loads,
            _pad: 0,
            mappings: [UnwindMapping::default(); MAX_UNWIND_MAPPINGS],
        };
        value.mappings[..mappings.len()].copy_from_slice(&mappings);
        let Some(slot) = self.slot_for(tgid) else {
            self.stats.processes_not_loaded += 1;
            return Ok(());
        };
        let tables = mappings
            .iter()
            .filter(|m| m.state == table_state::READY)
            .map(|m| m.table);
        self.tables_in_use.insert(tgid, tables.collect());
        collector.unwind_tables().set_process(tgid, slot, &value)
    }

    /// One mapping as BPF sees it, its binary queued if it is new.
    fn mapping(&mut self, tgid: u32, mapping: &Mapping) -> UnwindMapping {
        let mut unwind = UnwindMapping {
            start: mapping.start,
            end: mapping.end,
            ..UnwindMapping::default()
        };
        let Some(key) = file_key(mapping) else {
            // Anonymous code (JIT): no table; `auto` walks it by frame pointers.
            return unwind;
        };
        if !self.binaries.contains_key(&key) {
            let known = match source(tgid, mapping) {
                Some(source) => self.submit(key.clone(), source, &mapping.path),
                None => Binary::NoTable,
            };
            self.binaries.insert(key.clone(), known);
        }
        match self.binaries.get_mut(&key) {
            Some(Binary::Ready { index, layout }) => {
                unwind.bias = layout.bias(mapping);
                unwind.table = *index;
                unwind.page_count = layout.page_count;
                unwind.rows_len = layout.rows_len;
                unwind.state = table_state::READY;
            }
            Some(Binary::Pending(waiting)) => {
                if !waiting.contains(&tgid) {
                    waiting.push(tgid);
                }
                unwind.state = table_state::PENDING;
            }
            Some(Binary::DidNotFit { waiting, .. }) if !waiting.contains(&tgid) => {
                waiting.push(tgid)
            }
            _ => {}
        }
        unwind
    }

    fn submit(&mut self, key: FileKey, source: Source, path: &str) -> Binary {
        let job = Job {
            key,
            source,
            name: path.to_string(),
        };
        if self.worker.submit(job) {
            Binary::Pending(Vec::new())
        } else {
            Binary::NoTable
        }
    }

    /// Waits, up to `limit`, until no binary is pending: the processes
    /// named by `--pid` have their tables before sampling starts.
    pub(crate) fn settle(&mut self, collector: &mut Collector, limit: Duration) {
        let deadline = Instant::now() + limit;
        let pending = |loader: &UnwindLoader| {
            loader
                .binaries
                .values()
                .any(|b| matches!(b, Binary::Pending(_)))
        };
        while pending(self) && Instant::now() < deadline {
            match self.worker.replies.try_recv() {
                Ok(reply) => self.on_reply(collector, reply),
                Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(2)),
                Err(TryRecvError::Disconnected) => return,
            }
        }
    }

    /// The next table the worker is done with (never, once it is gone).
    pub(crate) async fn next_reply(&mut self) -> Reply {
        match self.worker.replies.recv().await {
            Some(reply) => reply,
            None => std::future::pending().await,
        }
    }

    /// Plugs in a table the worker made, then loads again every process
    /// that waited on it.
    pub(crate) fn on_reply(&mut self, collector: &mut Collector, reply: Reply) {
        let state = match reply.outcome {
            Outcome::New {
                index,
                table,
                layout,
                cached,
                took,
            } => {
                let plugged = collector.unwind_tables().set_table(index, &table).is_ok();
                self.stats.binaries += u64::from(plugged);
                self.stats.from_cache += u64::from(plugged && cached);
                self.stats.rows += layout.entries();
                self.stats.seconds += took.as_secs_f64();
                match plugged {
                    true => Binary::Ready { index, layout },
                    false => Binary::NoTable,
                }
            }
            Outcome::Shared { index, layout } => Binary::Ready { index, layout },
            Outcome::NoTable => Binary::NoTable,
            Outcome::NotLoaded { rows } => {
                self.not_loaded.insert(reply.name.clone(), rows);
                self.not_loaded_unsettled.insert(reply.name, rows);
                Binary::DidNotFit {
                    waiting: Vec::new(),
                    rows,
                }
            }
        };
        let Some(Binary::Pending(waiting)) = self.binaries.remove(&reply.key) else {
            self.binaries.insert(reply.key, state);
            return;
        };
        if let Binary::DidNotFit { rows, .. } = state {
            // Loaded again, with its table, when room is made.
            self.binaries
                .insert(reply.key, Binary::DidNotFit { waiting, rows });
            return;
        }
        self.binaries.insert(reply.key, state);
        for tgid in waiting {
            // A process gone meanwhile is no loss.
            if self.slots.contains_key(&tgid) || procfs::exists(tgid) {
                let _ = self.load_process(collector, tgid);
            }
        }
    }

    /// The process's slot in `UNWIND_PROCESSES`: its own, or a free one.
    fn slot_for(&mut self, tgid: u32) -> Option<u32> {
        if let Some(&slot) = self.slots.get(&tgid) {
            return Some(slot);
        }
        let slot = self.free_slots.pop()?;
        self.slots.insert(tgid, slot);
        Some(slot)
    }

    /// A process's mappings changed since they were loaded: loaded again
    /// now, or at the next drain if it was so this interval.
    pub(crate) fn on_stale(&mut self, collector: &mut Collector, tgid: u32) {
        if self.reloaded.insert(tgid) {
            // A process gone meanwhile is no loss.
            let _ = self.load_process(collector, tgid);
        } else {
            self.stale.insert(tgid);
        }
    }

    /// Reloads the processes marked stale since the last call.
    pub(crate) fn reload_stale(&mut self, collector: &mut Collector) {
        self.reloaded.clear();
        for tgid in std::mem::take(&mut self.stale) {
            // A process gone meanwhile is no loss.
            let _ = self.load_process(collector, tgid);
        }
    }

    /// What the tables hold and cost (-v), against the row budget.
    pub(crate) fn describe(&self, budget: u32) -> Vec<String> {
        let s = &self.stats;
        let mib = |rows: u64| (rows * size_of::<UnwindRow>() as u64) as f64 / f64::from(1 << 20);
        let mut lines = vec![format!(
            "unwind tables: {} binaries ({} from the cache), {} rows ({:.1} of {:.1} MiB), {:.2} s reading them off the capture's loop; {} freed when no process used them; {} did not fit (--unwind-rows)",
            s.binaries,
            s.from_cache,
            s.rows,
            mib(s.rows),
            mib(u64::from(budget)),
            s.seconds,
            s.freed,
            self.not_loaded.len()
        )];
        for (name, rows) in &self.not_loaded {
            lines.push(format!("unwind table not loaded: {name} ({rows} rows)"));
        }
        if s.processes_not_loaded > 0 {
            lines.push(format!(
                "unwind tables: {} processes left to frame pointers (all {PROCESS_SLOTS} process slots taken)",
                s.processes_not_loaded
            ));
        }
        lines
    }

    /// The same, those not taken before: for the profile's losses.
    pub(crate) fn take_not_loaded(&mut self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.not_loaded_unsettled)
    }
}

/// Which file a mapping is of: by device and inode; the vDSO, the same
/// image in every process, by its name. Anonymous code has none.
fn file_key(mapping: &Mapping) -> Option<FileKey> {
    if mapping.path == "[vdso]" {
        return Some((mapping.path.clone(), 0));
    }
    (mapping.file_id.1 != 0 && mapping.path.starts_with('/')).then(|| mapping.file_id.clone())
}

/// The binary behind a mapping, opened now (the process may be gone by
/// the time the worker reads it): the file, through map_files, so it works
/// across mount namespaces and for deleted files; for the vDSO, its image
/// in the process's memory.
fn source(tgid: u32, mapping: &Mapping) -> Option<Source> {
    if mapping.path == "[vdso]" {
        use std::os::unix::fs::FileExt;
        let mem = std::fs::File::open(format!("/proc/{tgid}/mem")).ok()?;
        let mut image = vec![0; (mapping.end - mapping.start) as usize];
        mem.read_exact_at(&mut image, mapping.start).ok()?;
        return Some(Source::Image(image));
    }
    let file = untrusted_file::open(&mapping.map_files_path(tgid), true).ok()?;
    file.metadata()
        .ok()?
        .is_file()
        .then_some(Source::File(file))
}
