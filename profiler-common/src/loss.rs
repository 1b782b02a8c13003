//! Every counter of what a run could not record whole, defined once: BPF
//! counts the first few in its per-CPU `ERRORS` array (at their enum
//! index), userspace the rest; the report's `errors` keys and the Quality
//! block's lines come from [`Loss::json_key`] and [`Loss::label`].

/// One way a sample, stack or record was lost or damaged.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Loss {
    // Counted by BPF: indices into `ERRORS` (see `BPF_COUNT`).
    /// A stack could not be stored because its stack map was full.
    StackMapFull = 0,
    /// Any other `bpf_get_stack` failure.
    StackOther,
    /// A sample could not be counted because the counts map was full.
    CountsMapFull,
    /// A forked child of a followed command could not be added to the filter.
    FollowMapFull,
    /// A process event could not be sent (ring buffer full): that process
    /// may be left unnamed if it exits before the next drain.
    ProcessEventLost,
    /// A blocked thread could not be tracked: the pending map was full.
    PendingMapFull,
    /// A waker could not be recorded: the wakers map was full.
    WakersMapFull,
    /// Off-CPU stack ids reused at a block site differed from a full walk
    /// at a check: that site walks every time from then on.
    StackReuseMismatch,
    /// User stacks walked by frame pointers because their process's or
    /// binary's unwind table was not loaded yet (or, for a process, could
    /// not be: every process slot was taken).
    UnwindTablePending,
    /// Python frames that could not be read where the eval loop ran them
    /// (a thread state or frame that was unreadable or not there): the
    /// stack keeps its native frames.
    PythonFramesUnread,
    /// Code objects not announced to userspace (ring buffer full): frames
    /// of a process that exits before the next drain may go unnamed.
    PythonCodeEventLost,
    // Counted by userspace.
    /// Samples with at least one frame no symbol names.
    UnknownFrames,
    /// Samples whose stack hit the depth limit.
    TruncatedStacks,
    /// Samples whose user-stack walk stopped part way.
    IncompleteUnwinds,
    /// Samples of user threads that came without a user stack (counted in
    /// userspace, where kernel threads can be told apart).
    UserStackMissing,
    /// JIT perf maps not read: another user's, a link, not a regular file.
    PerfMapsIgnored,
    /// Lines of JIT perf maps that did not parse.
    PerfMapLinesSkipped,
    /// JIT perf maps larger than bpfprof reads: only their start was used.
    PerfMapsCut,
    /// Stack ids whose stack had left the map before it was read.
    StacksLostInDrain,
    /// Stacks dropped for sharing a stack-map bucket: always 0 since stacks
    /// are stored under hashes of their frames; kept so reports keep shape.
    StackCollisions,
    /// Binaries left without an unwind table: the tables' row budget
    /// (`--unwind-rows`) or their slots were used up.
    UnwindTablesNotLoaded,
    /// Python processes whose Python frames are not walked (a version or
    /// layout bpfprof does not know): they keep their native frames.
    PythonProcessesNotWalked,
}

impl Loss {
    /// How many are counted by BPF: the size of the `ERRORS` array.
    pub const BPF_COUNT: u32 = Loss::PythonCodeEventLost as u32 + 1;

    /// Every counter, in the order the Quality block lists them.
    pub const ALL: [Loss; 22] = [
        Loss::UnknownFrames,
        Loss::TruncatedStacks,
        Loss::IncompleteUnwinds,
        Loss::UnwindTablePending,
        Loss::PythonFramesUnread,
        Loss::PythonCodeEventLost,
        Loss::PythonProcessesNotWalked,
        Loss::UnwindTablesNotLoaded,
        Loss::PerfMapsIgnored,
        Loss::PerfMapLinesSkipped,
        Loss::PerfMapsCut,
        Loss::StackCollisions,
        Loss::StackMapFull,
        Loss::UserStackMissing,
        Loss::StackOther,
        Loss::CountsMapFull,
        Loss::FollowMapFull,
        Loss::PendingMapFull,
        Loss::WakersMapFull,
        Loss::StacksLostInDrain,
        Loss::ProcessEventLost,
        Loss::StackReuseMismatch,
    ];

    /// Its index in BPF's `ERRORS` array, if BPF counts it.
    pub const fn bpf_index(self) -> Option<u32> {
        let index = self as u32;
        if index < Loss::BPF_COUNT {
            Some(index)
        } else {
            None
        }
    }

    /// Its key under report.json's `errors` (kept as reports have had them).
    pub const fn json_key(self) -> &'static str {
        match self {
            Loss::StackMapFull => "stack_map_full",
            Loss::StackOther => "stack_errors_other",
            Loss::CountsMapFull => "counts_map_full",
            Loss::FollowMapFull => "follow_map_full",
            Loss::ProcessEventLost => "process_events_lost",
            Loss::PendingMapFull => "pending_map_full",
            Loss::WakersMapFull => "wakers_map_full",
            Loss::StackReuseMismatch => "stack_reuse_mismatches",
            Loss::UnwindTablePending => "stacks_walked_before_unwind_tables",
            Loss::PythonFramesUnread => "python_frames_unread",
            Loss::PythonCodeEventLost => "python_code_events_lost",
            Loss::PythonProcessesNotWalked => "python_processes_not_walked",
            Loss::UnwindTablesNotLoaded => "unwind_tables_not_loaded",
            Loss::UnknownFrames => "samples_with_unknown_frames",
            Loss::TruncatedStacks => "truncated_stacks",
            Loss::IncompleteUnwinds => "incomplete_unwinds",
            Loss::UserStackMissing => "user_stack_missing",
            Loss::PerfMapsIgnored => "perf_maps_ignored",
            Loss::PerfMapLinesSkipped => "perf_map_lines_skipped",
            Loss::PerfMapsCut => "perf_maps_cut",
            Loss::StacksLostInDrain => "stacks_lost_in_drain",
            Loss::StackCollisions => "stack_collisions",
        }
    }

    /// Its line in the Quality block.
    pub const fn label(self) -> &'static str {
        match self {
            Loss::StackMapFull => "stack map full",
            Loss::StackOther => "other stack errors",
            Loss::CountsMapFull => "counts map full",
            Loss::FollowMapFull => "children not followed (map full)",
            Loss::ProcessEventLost => "process events lost",
            Loss::PendingMapFull => "blocked threads not tracked (map full)",
            Loss::WakersMapFull => "wakers not recorded (map full)",
            Loss::StackReuseMismatch => "off-CPU stack reuse mismatches",
            Loss::UnwindTablePending => "stacks walked before unwind tables loaded",
            Loss::PythonFramesUnread => "Python stacks not read where the eval loop ran",
            Loss::PythonCodeEventLost => "Python code objects not announced (ring full)",
            Loss::PythonProcessesNotWalked => "Python processes without Python frames",
            Loss::UnwindTablesNotLoaded => "binaries without unwind tables (full)",
            Loss::UnknownFrames => "samples with unnamed frames",
            Loss::TruncatedStacks => "stacks truncated at 127 frames",
            Loss::IncompleteUnwinds => "user stacks unwound part way",
            Loss::UserStackMissing => "user stack missing (user threads)",
            Loss::PerfMapsIgnored => "JIT perf maps ignored (not owned, not a file)",
            Loss::PerfMapLinesSkipped => "JIT perf map lines skipped",
            Loss::PerfMapsCut => "JIT perf maps cut at 64 MiB",
            Loss::StacksLostInDrain => "stacks lost between drains",
            Loss::StackCollisions => "stack id collisions",
        }
    }
}

const _: () = {
    // ALL lists every variant exactly once.
    let mut seen = [false; Loss::ALL.len()];
    let mut i = 0;
    while i < Loss::ALL.len() {
        let index = Loss::ALL[i] as usize;
        assert!(index < Loss::ALL.len() && !seen[index]);
        seen[index] = true;
        i += 1;
    }
};
