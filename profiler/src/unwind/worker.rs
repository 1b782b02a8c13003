//! Reading binaries' unwind tables off the capture's event loop: a thread
//! that takes each new binary's file, finds its table (in the disk cache by
//! build id, else by parsing its call-frame sections), makes the BPF array
//! that holds it, and hands it back to the loop, which only has to plug it
//! in. So drains and process events never wait on a parse; meanwhile BPF
//! walks the binary by frame pointers and counts those stacks.
//!
//! The thread also owns what is shared across binaries: a table per
//! digest of what tables are made from (the same library in every
//! process, or a binary under two paths; many binaries, such as Rust's
//! toolchain, have no build id), and the budget all tables together must
//! fit in, to which a table no process uses any more is given back.

use std::{
    collections::HashMap,
    fs::File,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use profiler_common::MAX_UNWIND_TABLES;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::{
    binary::{Image, Layout},
    cache::TableCache,
    elf::FrameSources,
    table,
};
use crate::bpf::UnwindTable;

/// A file, by device and inode (the vDSO by its name).
pub(crate) type FileKey = (String, u64);

/// A binary to read: its file, or for the vDSO its image.
pub(crate) enum Source {
    File(File),
    Image(Vec<u8>),
}

pub(crate) struct Job {
    pub(crate) key: FileKey,
    pub(crate) source: Source,
    /// Its path, for messages.
    pub(crate) name: String,
}

pub(crate) struct Reply {
    pub(crate) key: FileKey,
    pub(crate) name: String,
    pub(crate) outcome: Outcome,
}

pub(crate) enum Outcome {
    /// A table new to this run, for slot `index` of `UNWIND_TABLES`.
    New {
        index: u32,
        table: UnwindTable,
        layout: Layout,
        /// Read from the disk cache rather than parsed.
        cached: bool,
        took: Duration,
    },
    /// The same table (by digest) as an earlier reply's `index`.
    Shared { index: u32, layout: Layout },
    /// The binary has no usable table (or is no ELF file).
    NoTable,
    /// Its table did not fit: the budget or the slots were used up.
    NotLoaded { rows: u64 },
}

/// What the loop asks of the thread, in order.
enum Request {
    Read(Job),
    /// No process uses the table in this slot of `UNWIND_TABLES` any more:
    /// its rows go back to the budget and the slot to the free ones.
    Release(u32),
}

/// The thread's end of the loop: jobs in, replies out.
pub(crate) struct Worker {
    jobs: mpsc::Sender<Request>,
    pub(crate) replies: UnboundedReceiver<Reply>,
}

impl Worker {
    /// Starts the thread: `rows_budget` rows for all tables together, kept
    /// in `cache` when there is one.
    pub(crate) fn start(rows_budget: u64, cache: Option<TableCache>) -> Worker {
        let (jobs, jobs_in) = mpsc::channel();
        let (replies_out, replies) = unbounded_channel();
        let mut reader = Reader {
            cache,
            rows_budget,
            rows_used: 0,
            next_index: 0,
            free_indices: Vec::new(),
            by_digest: HashMap::new(),
            placed: HashMap::new(),
        };
        // Detached: at the end of a capture a parse under way is not waited
        // for, and its table would be of no use.
        let _ = thread::Builder::new()
            .name("unwind-tables".into())
            .spawn(move || reader.serve(jobs_in, replies_out));
        Worker { jobs, replies }
    }

    /// Queues a binary; false when the thread is gone.
    pub(crate) fn submit(&self, job: Job) -> bool {
        self.jobs.send(Request::Read(job)).is_ok()
    }

    /// Gives back table `index`, which BPF no longer has.
    pub(crate) fn release(&self, index: u32) {
        let _ = self.jobs.send(Request::Release(index));
    }
}

struct Reader {
    cache: Option<TableCache>,
    rows_budget: u64,
    rows_used: u64,
    next_index: u32,
    /// Slots of released tables, used again before new ones.
    free_indices: Vec<u32>,
    by_digest: HashMap<u64, (u32, Layout)>,
    /// Each placed table's digest and rows, by slot, for its release.
    placed: HashMap<u32, (u64, u64)>,
}

impl Reader {
    fn serve(&mut self, requests: mpsc::Receiver<Request>, replies: UnboundedSender<Reply>) {
        for request in requests {
            let job = match request {
                Request::Read(job) => job,
                Request::Release(index) => {
                    self.release(index);
                    continue;
                }
            };
            let outcome = self.read(job.source);
            let reply = Reply {
                key: job.key,
                name: job.name,
                outcome,
            };
            if replies.send(reply).is_err() {
                return;
            }
        }
    }

    fn read(&mut self, source: Source) -> Outcome {
        let started = Instant::now();
        let sources = match source {
            Source::File(file) => FrameSources::read(file),
            Source::Image(image) => FrameSources::parse(&image),
        };
        let Some(mut sources) = sources else {
            return Outcome::NoTable;
        };
        let digest = sources.digest();
        if let Some((index, layout)) = self.by_digest.get(&digest) {
            return Outcome::Shared {
                index: *index,
                layout: layout.clone(),
            };
        }
        let cached = self.cache.as_ref().and_then(|cache| cache.load(digest));
        let from_cache = cached.is_some();
        let image = match cached {
            Some(image) => image,
            None => {
                let rows = table::rows(&sources);
                let segments = std::mem::take(&mut sources.segments);
                // The sections are large; the rows are what is left to keep.
                drop(sources);
                let Some(image) = Image::new(&rows, segments) else {
                    return Outcome::NoTable;
                };
                image
            }
        };
        self.place(image, digest, from_cache, started)
    }

    fn release(&mut self, index: u32) {
        if let Some((digest, rows)) = self.placed.remove(&index) {
            self.by_digest.remove(&digest);
            self.rows_used -= rows;
            self.free_indices.push(index);
        }
    }

    /// Makes the BPF table of `image` where the budget and slots allow.
    fn place(&mut self, image: Image, digest: u64, from_cache: bool, started: Instant) -> Outcome {
        let rows = image.entries.len() as u64;
        let slot_free = !self.free_indices.is_empty() || self.next_index < MAX_UNWIND_TABLES;
        if self.rows_used + rows > self.rows_budget || !slot_free {
            return Outcome::NotLoaded { rows };
        }
        let Ok(table) = UnwindTable::new(&image.entries) else {
            return Outcome::NotLoaded { rows };
        };
        if let (Some(cache), false) = (&self.cache, from_cache) {
            cache.store(digest, &image);
        }
        let index = self.free_indices.pop().unwrap_or_else(|| {
            self.next_index += 1;
            self.next_index - 1
        });
        self.rows_used += rows;
        self.by_digest.insert(digest, (index, image.layout.clone()));
        self.placed.insert(index, (digest, rows));
        Outcome::New {
            index,
            table,
            layout: image.layout,
            cached: from_cache,
            took: started.elapsed(),
        }
    }
}
