//! What one closed window hands to the push threads: per service, the
//! pprof message of its processes' samples, and what each process is
//! (for resource and sample attributes). Built on the capture thread,
//! encoded per backend on the push threads.

use std::{collections::BTreeMap, time::SystemTime};

use crate::output::pprof::proto;

/// One window, ready to encode for any backend.
#[derive(Debug, Clone)]
pub(crate) struct PushWindow {
    /// Counts from 0 in the run; a retried window keeps its index.
    pub(crate) index: u64,
    pub(crate) start: SystemTime,
    pub(crate) duration_ns: u64,
    pub(crate) host_name: String,
    /// `--label K=V`, in the order given.
    pub(crate) labels: Vec<(String, String)>,
    /// Sampling frequency, for Pyroscope's `sampleRate`.
    pub(crate) freq_hz: u64,
    /// Off-CPU time was recorded: the pprof messages carry
    /// `off_cpu/nanoseconds` as their third sample type.
    pub(crate) off_cpu: bool,
    /// Services in name order; none when nothing was sampled.
    pub(crate) services: Vec<ServiceWindow>,
}

impl PushWindow {
    /// The nanoseconds past the start's whole second.
    pub(crate) fn start_subsec_ns(&self) -> u64 {
        self.start
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()))
    }
}

/// One service's part of a window.
#[derive(Debug, Clone)]
pub(crate) struct ServiceWindow {
    /// The process name, or `--service-name`.
    pub(crate) name: String,
    /// `output::pprof::build` of this service's processes only: sample
    /// types `samples/count`, `cpu/nanoseconds` and, with off-CPU time,
    /// `off_cpu/nanoseconds`; each sample labelled `pid`, `tid`,
    /// `process`, `thread` (when named) and `state` (off-CPU samples).
    pub(crate) pprof: proto::Profile,
    /// The service's processes, by pid.
    pub(crate) processes: BTreeMap<u32, ProcessAttributes>,
}

/// What the run knows of a process, as OpenTelemetry names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProcessAttributes {
    /// `process.executable.name`: the process name.
    pub(crate) executable_name: String,
    /// `process.executable.path`, from /proc/PID/exe while it ran.
    pub(crate) executable_path: Option<String>,
    /// `container.id`, from the cgroup path.
    pub(crate) container_id: Option<String>,
    /// `k8s.pod.uid`, from the cgroup path.
    pub(crate) pod_uid: Option<String>,
}
