//! Draining: moves what BPF counted into userspace without losing counts.
//!
//! BPF writes to one of two map sets (counts + stacks). A drain flips the
//! `ACTIVE` switch, waits for samples already in flight on the old set to
//! finish, then reads and empties the old set while nothing writes to it.
//! That avoids the get-then-delete race of draining a live map.
//!
//! Process events (first sample, exec) come separately, on a ring buffer,
//! as they happen: they say when to snapshot a process's maps.

use std::{collections::HashMap as StdHashMap, thread, time::Duration};

use anyhow::{Context, Result};
use aya::maps::{HashMap, MapData, RingBuf, StackTraceMap};
use profiler_common::{BUFFER_A, ProcessEvent, StackKey};
use tokio::io::unix::AsyncFd;

use crate::bpf::Collector;

/// A BPF program that read the old `ACTIVE` value is still writing for at
/// most a few microseconds (perf_event programs run with interrupts off);
/// this leaves a wide margin even on a preempted vCPU.
const FLIP_GRACE: Duration = Duration::from_millis(5);

/// One drained count: a thread, its two stacks, how many samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSample {
    pub key: StackKey,
    pub count: u64,
    pub user: RawStack,
    pub kernel: RawStack,
}

/// Instruction pointers of one stack, leaf first, as the kernel stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawStack {
    Frames(Vec<u64>),
    /// `bpf_get_stackid` failed with this errno (positive).
    Failed(i32),
    /// The id was recorded but its stack was gone from the map.
    Lost,
}

impl RawStack {
    pub fn frames(&self) -> &[u64] {
        match self {
            RawStack::Frames(ips) => ips,
            _ => &[],
        }
    }
}

/// Flips to the other map set and drains the one BPF was writing to.
pub fn drain(collector: &mut Collector) -> Result<Vec<RawSample>> {
    let retired = collector.flip()?;
    thread::sleep(FLIP_GRACE);
    drain_set(collector, retired)
}

/// Drains both map sets; for the end of a run, after the programs detached.
pub fn drain_all(collector: &mut Collector) -> Result<Vec<RawSample>> {
    let mut samples = drain(collector)?;
    samples.extend(drain(collector)?);
    Ok(samples)
}

fn drain_set(collector: &mut Collector, set: u32) -> Result<Vec<RawSample>> {
    let (counts_name, stacks_name) = if set == BUFFER_A {
        ("COUNTS_A", "STACKS_A")
    } else {
        ("COUNTS_B", "STACKS_B")
    };
    let [Some(counts), Some(stacks)] = collector.ebpf.maps_disjoint_mut([counts_name, stacks_name])
    else {
        anyhow::bail!("maps {counts_name}/{stacks_name} missing from the BPF object");
    };
    let mut counts: HashMap<&mut MapData, StackKey, u64> = HashMap::try_from(counts)?;
    let mut stacks: StackTraceMap<&mut MapData> = StackTraceMap::try_from(stacks)?;

    // Nothing writes to this set now, so keys are stable while we read.
    let keys: Vec<StackKey> = counts.keys().collect::<Result<_, _>>()?;
    let mut resolved: StdHashMap<i32, RawStack> = StdHashMap::new();
    let mut samples = Vec::with_capacity(keys.len());
    for key in &keys {
        let count = counts
            .get(key, 0)
            .with_context(|| format!("reading {counts_name}"))?;
        let user = read_stack(&stacks, &mut resolved, key.user_stack_id);
        let kernel = read_stack(&stacks, &mut resolved, key.kern_stack_id);
        samples.push(RawSample {
            key: *key,
            count,
            user,
            kernel,
        });
    }
    for key in &keys {
        counts.remove(key)?;
    }
    let stack_ids: Vec<u32> = stacks.stack_ids().collect::<Result<_, _>>()?;
    for id in &stack_ids {
        stacks.remove(id)?;
    }
    Ok(samples)
}

fn read_stack(
    stacks: &StackTraceMap<&mut MapData>,
    resolved: &mut StdHashMap<i32, RawStack>,
    id: i32,
) -> RawStack {
    if id < 0 {
        return RawStack::Failed(-id);
    }
    resolved
        .entry(id)
        .or_insert_with(|| match stacks.get(&(id as u32), 0) {
            Ok(trace) => RawStack::Frames(trace.frames().iter().map(|f| f.ip).collect()),
            Err(_) => RawStack::Lost,
        })
        .clone()
}

/// The ring buffer of process events, readable from the async loop.
pub struct ProcessEvents {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl ProcessEvents {
    pub fn new(ring: RingBuf<MapData>) -> Result<ProcessEvents> {
        // SAFETY: the RingBuf owns its map fd and keeps it open until dropped.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| anyhow::anyhow!("watching the process events: {e}"))?;
        Ok(ProcessEvents { ring })
    }

    /// Waits until events arrive, then returns all that are queued.
    pub async fn next_batch(&mut self) -> Result<Vec<ProcessEvent>> {
        let mut guard = self.ring.readable_mut().await?;
        let events = read_events(guard.get_inner_mut());
        guard.clear_ready();
        Ok(events)
    }

    /// The events queued now, without waiting.
    pub fn pending(&mut self) -> Vec<ProcessEvent> {
        read_events(self.ring.get_mut())
    }
}

fn read_events(ring: &mut RingBuf<MapData>) -> Vec<ProcessEvent> {
    let mut events = Vec::new();
    while let Some(item) = ring.next() {
        if item.len() >= size_of::<ProcessEvent>() {
            // SAFETY: BPF wrote a ProcessEvent (plain data) of this size.
            events.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<ProcessEvent>()) });
        }
    }
    events
}
