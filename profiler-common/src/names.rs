//! The names of the BPF object's maps and globals, in one list: the BPF
//! side declares statics of exactly these names (the `#[map]` and `Global`
//! identifiers), userspace looks them up by these constants, and a test
//! checks every one against the built object.

/// Maps written in two sets, by drain generation (see [`crate::map_set`]):
/// `[set 0, set 1]`.
pub const COUNTS: [&str; 2] = ["COUNTS_A", "COUNTS_B"];
pub const KERNEL_STACKS: [&str; 2] = ["KERNEL_STACKS_A", "KERNEL_STACKS_B"];
pub const USER_STACKS: [&str; 2] = ["USER_STACKS_A", "USER_STACKS_B"];
/// Kernel and user stacks short enough for a `ShortStack`.
pub const SHORT_STACKS: [&str; 2] = ["SHORT_STACKS_A", "SHORT_STACKS_B"];
pub const OFF_US: [&str; 2] = ["OFF_US_A", "OFF_US_B"];
pub const WAKE_US: [&str; 2] = ["WAKE_US_A", "WAKE_US_B"];

// Maps.
pub const ACTIVE: &str = "ACTIVE";
pub const PENDING: &str = "PENDING";
pub const WAKERS: &str = "WAKERS";
pub const WANTED_TGIDS: &str = "WANTED_TGIDS";
pub const ERRORS: &str = "ERRORS";
pub const KNOWN_TGIDS: &str = "KNOWN_TGIDS";
pub const LAST_KNOWN: &str = "LAST_KNOWN";
pub const FORGOTTEN: &str = "FORGOTTEN";
pub const PROCESS_EVENTS: &str = "PROCESS_EVENTS";
pub const REUSED_STACKS: &str = "REUSED_STACKS";
pub const UNWIND_TABLES: &str = "UNWIND_TABLES";
pub const UNWIND_SLOTS: &str = "UNWIND_SLOTS";
pub const UNWIND_PROCESSES: &str = "UNWIND_PROCESSES";
pub const ROW_CACHE: &str = "ROW_CACHE";
pub const KERNEL_WALK: &str = "KERNEL_WALK";
pub const WALK: &str = "WALK";
pub const CURSOR: &str = "CURSOR";
pub const PYTHON_PROCESSES: &str = "PYTHON_PROCESSES";
pub const PYTHON_WALK: &str = "PYTHON_WALK";
pub const WINDOWS: &str = "WINDOWS";
pub const CODE_SEEN: &str = "CODE_SEEN";
pub const PYTHON_CODE_EVENTS: &str = "PYTHON_CODE_EVENTS";
/// aya-log-ebpf's ring of log records (declared by that crate).
pub const AYA_LOGS: &str = "AYA_LOGS";

// Globals, set by userspace at load time.
pub const SELF_TGID: &str = "SELF_TGID";
pub const FILTER_TGIDS: &str = "FILTER_TGIDS";
pub const SWITCH_PREV_STATE_OFFSET: &str = "SWITCH_PREV_STATE_OFFSET";
pub const SWITCH_NEXT_PID_OFFSET: &str = "SWITCH_NEXT_PID_OFFSET";
pub const WAKING_PID_OFFSET: &str = "WAKING_PID_OFFSET";
pub const MIN_BLOCK_US: &str = "MIN_BLOCK_US";
pub const MAX_BLOCK_US: &str = "MAX_BLOCK_US";
pub const RECORD_WAKERS: &str = "RECORD_WAKERS";
pub const FORK_CHILD_PID_OFFSET: &str = "FORK_CHILD_PID_OFFSET";
pub const REUSE_STACKS: &str = "REUSE_STACKS";
pub const UNWIND_MODE: &str = "UNWIND_MODE";
pub const TASK_EXEC_ID_OFFSET: &str = "TASK_EXEC_ID_OFFSET";
pub const TASK_FSBASE_OFFSET: &str = "TASK_FSBASE_OFFSET";
/// aya-log-ebpf's level: records above it are not made (declared by that
/// crate; 0 turns the BPF log off).
pub const AYA_LOG_LEVEL: &str = "AYA_LOG_LEVEL";

/// Every map, for the check against the built object.
pub const ALL_MAPS: [&str; 35] = [
    COUNTS[0],
    COUNTS[1],
    KERNEL_STACKS[0],
    KERNEL_STACKS[1],
    USER_STACKS[0],
    USER_STACKS[1],
    SHORT_STACKS[0],
    SHORT_STACKS[1],
    OFF_US[0],
    OFF_US[1],
    WAKE_US[0],
    WAKE_US[1],
    ACTIVE,
    PENDING,
    WAKERS,
    WANTED_TGIDS,
    ERRORS,
    KNOWN_TGIDS,
    LAST_KNOWN,
    FORGOTTEN,
    PROCESS_EVENTS,
    REUSED_STACKS,
    UNWIND_TABLES,
    UNWIND_SLOTS,
    UNWIND_PROCESSES,
    ROW_CACHE,
    KERNEL_WALK,
    WALK,
    CURSOR,
    PYTHON_PROCESSES,
    PYTHON_WALK,
    WINDOWS,
    CODE_SEEN,
    PYTHON_CODE_EVENTS,
    AYA_LOGS,
];

/// Every global, for the check against the built object.
pub const ALL_GLOBALS: [&str; 14] = [
    SELF_TGID,
    FILTER_TGIDS,
    SWITCH_PREV_STATE_OFFSET,
    SWITCH_NEXT_PID_OFFSET,
    WAKING_PID_OFFSET,
    MIN_BLOCK_US,
    MAX_BLOCK_US,
    RECORD_WAKERS,
    FORK_CHILD_PID_OFFSET,
    REUSE_STACKS,
    UNWIND_MODE,
    TASK_EXEC_ID_OFFSET,
    TASK_FSBASE_OFFSET,
    AYA_LOG_LEVEL,
];
