//! What BPF could not record, counted per CPU in `ERRORS` at each
//! [`Loss`]'s index; userspace sums the CPUs and reports each by name.
//!
//! Rare failures are also logged through aya-log: a refused map update
//! (`refused!`) and an unwind step that fails (see `user_stack`). Only
//! with `-vv`: otherwise userspace sets aya-log's level to 0, the verifier
//! sees the logging branches cannot be taken and drops them, and the
//! programs run as if they had none. Never log on a success path.

use aya_ebpf::{macros::map, maps::PerCpuArray};
use profiler_common::Loss;

pub const EFAULT: i32 = 14;
pub const EEXIST: i32 = 17;

#[map]
static ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Loss::BPF_COUNT, 0);

/// Counts one `loss`; a counter userspace keeps is not counted here.
#[inline(always)]
pub fn count(loss: Loss) {
    let Some(index) = loss.bpf_index() else {
        return;
    };
    if let Some(slot) = ERRORS.get_ptr_mut(index) {
        // Per-CPU slot: no other writer, no atomic needed.
        unsafe { *slot += 1 };
    }
}

/// Counts `$loss` for an update that `$map` (a literal naming it) refused
/// with `$err`, and logs it. A macro because aya-log's format strings are
/// literals and each argument's size must be known where it is logged.
macro_rules! refused {
    ($loss:expr, $map:literal, $err:expr) => {{
        $crate::errors::count($loss);
        aya_log_ebpf::warn!(&(), "{} refused an update: error {}", $map, $err);
    }};
}
pub(crate) use refused;
