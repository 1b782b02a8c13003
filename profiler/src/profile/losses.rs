//! What a run could not record whole, by cause: the counters of the
//! Quality block and of report.json's `errors`.

use std::collections::BTreeMap;

/// Samples and stacks the run could not record whole, by cause.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Losses {
    /// On-CPU samples.
    pub samples: u64,
    /// Stacks dropped because their stack-map bucket held another stack.
    /// Always 0 since stacks are stored under hashes of their frames; kept
    /// so reports keep their fields.
    pub stack_collisions: u64,
    /// Stacks dropped because the stack map was full.
    pub stack_map_full: u64,
    /// Samples of user threads that came without a user stack.
    pub user_stack_missing: u64,
    /// Other `bpf_get_stack` failures.
    pub stack_errors_other: u64,
    /// Samples not counted because the counts map was full.
    pub counts_map_full: u64,
    /// Forked children of a followed command that could not be followed.
    pub follow_map_full: u64,
    /// Blocked threads not tracked: the pending map was full.
    pub pending_map_full: u64,
    /// Wakers not recorded: the wakers map was full.
    pub wakers_map_full: u64,
    /// On-CPU samples whose stack hit the depth limit (127 frames).
    pub truncated_stacks: u64,
    /// On-CPU samples with at least one frame no symbol names.
    pub samples_with_unknown_frames: u64,
    /// The same, per module the unnamed frames are in.
    pub unknown_frames_by_module: BTreeMap<String, u64>,
    /// JIT perf maps not read: not owned by the process's user, or not a
    /// regular file.
    pub perf_maps_ignored: u64,
    /// Lines of JIT perf maps that did not parse (the rest of the map is used).
    pub perf_map_lines_skipped: u64,
    /// JIT perf maps larger than bpfprof reads: only their start was used.
    pub perf_maps_cut: u64,
    /// Stack ids whose stack had left the map before it was read.
    pub stacks_lost_in_drain: u64,
    /// Process announcements dropped (ring buffer full): such a process
    /// may be unnamed if it exited before the next drain.
    pub process_events_lost: u64,
    /// Off-CPU block sites whose reused stacks differed from a check walk.
    pub stack_reuse_mismatches: u64,
    /// On-CPU samples whose user-stack walk stopped part way (no unwind
    /// rule for a frame, or unreadable memory): shown with `[truncated]`.
    pub incomplete_unwinds: u64,
}

impl Losses {
    /// Adds what reading perf maps cost since the last call.
    pub(crate) fn add_perf_map_losses(&mut self, perf_maps: super::PerfMapLosses) {
        self.perf_maps_ignored += perf_maps.ignored;
        self.perf_map_lines_skipped += perf_maps.lines_skipped;
        self.perf_maps_cut += perf_maps.cut;
    }

    /// Adds another window's counts to these.
    pub fn add(&mut self, other: &Losses) {
        self.samples += other.samples;
        self.stack_collisions += other.stack_collisions;
        self.stack_map_full += other.stack_map_full;
        self.user_stack_missing += other.user_stack_missing;
        self.stack_errors_other += other.stack_errors_other;
        self.counts_map_full += other.counts_map_full;
        self.follow_map_full += other.follow_map_full;
        self.pending_map_full += other.pending_map_full;
        self.wakers_map_full += other.wakers_map_full;
        self.truncated_stacks += other.truncated_stacks;
        self.samples_with_unknown_frames += other.samples_with_unknown_frames;
        for (module, n) in &other.unknown_frames_by_module {
            *self
                .unknown_frames_by_module
                .entry(module.clone())
                .or_default() += n;
        }
        self.perf_maps_ignored += other.perf_maps_ignored;
        self.perf_map_lines_skipped += other.perf_map_lines_skipped;
        self.perf_maps_cut += other.perf_maps_cut;
        self.stacks_lost_in_drain += other.stacks_lost_in_drain;
        self.process_events_lost += other.process_events_lost;
        self.stack_reuse_mismatches += other.stack_reuse_mismatches;
        self.incomplete_unwinds += other.incomplete_unwinds;
    }

    /// True when nothing was lost and every frame was named.
    pub fn is_empty(&self) -> bool {
        self.entries().iter().all(|(_, v)| *v == 0)
    }

    /// Name and value of every counter, for the tables.
    pub fn entries(&self) -> [(&'static str, u64); 17] {
        [
            (
                "samples with unnamed frames",
                self.samples_with_unknown_frames,
            ),
            ("stacks truncated at 127 frames", self.truncated_stacks),
            ("user stacks unwound part way", self.incomplete_unwinds),
            (
                "JIT perf maps ignored (not owned, not a file)",
                self.perf_maps_ignored,
            ),
            ("JIT perf map lines skipped", self.perf_map_lines_skipped),
            ("JIT perf maps cut at 64 MiB", self.perf_maps_cut),
            ("stack id collisions", self.stack_collisions),
            ("stack map full", self.stack_map_full),
            ("user stack missing (user threads)", self.user_stack_missing),
            ("other stack errors", self.stack_errors_other),
            ("counts map full", self.counts_map_full),
            ("children not followed (map full)", self.follow_map_full),
            (
                "blocked threads not tracked (map full)",
                self.pending_map_full,
            ),
            ("wakers not recorded (map full)", self.wakers_map_full),
            ("stacks lost between drains", self.stacks_lost_in_drain),
            ("process events lost", self.process_events_lost),
            (
                "off-CPU stack reuse mismatches",
                self.stack_reuse_mismatches,
            ),
        ]
    }
}
