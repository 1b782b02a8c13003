//! Loading the programs into the kernel and attaching them: the sampler to
//! the cpu-clock of each CPU, the rest to their scheduler tracepoints.
//! Order matters here and is explained on [`Collector::attach`].

use anyhow::{Context, Result, anyhow};
use aya::{
    programs::{
        PerfEvent, ProgramError, TracePoint,
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
    },
    util::online_cpus,
};

use super::Collector;

impl Collector {
    /// Loads every program the run needs, then attaches the tracepoint
    /// programs, and the sampler to the CPU clock of every online CPU last.
    /// The verifier is slow over the off-CPU program, slower on a busy
    /// machine: had the sampler been attached first, it would have sampled
    /// all that while before the run's clock started, and the samples
    /// would have exceeded the time measured.
    pub(crate) fn attach(&mut self, freq: u64) -> Result<()> {
        let tracepoints = self.tracepoints();
        for &(program_name, _) in &tracepoints {
            self.tracepoint(program_name)?;
        }
        self.sampler()?;
        for (program_name, event) in tracepoints {
            self.tracepoint(program_name)?
                .attach("sched", event)
                .with_context(|| format!("attaching to tracepoint sched:{event}"))?;
        }
        let cpus = online_cpus().map_err(|(path, e)| anyhow!("reading {path}: {e}"))?;
        let sampler = self.sampler()?;
        for cpu in cpus {
            sampler
                .attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(freq),
                    false,
                )
                .with_context(|| format!("attaching the sampler to the cpu-clock of CPU {cpu}"))?;
        }
        Ok(())
    }

    /// The tracepoint programs this run attaches, with their events.
    fn tracepoints(&self) -> Vec<(&'static str, &'static str)> {
        let mut tracepoints = vec![("on_exec", "sched_process_exec")];
        if self.follow_forks {
            tracepoints.push(("follow_fork", "sched_process_fork"));
        }
        if self.wakers {
            tracepoints.push(("on_waking", "sched_waking"));
        }
        if self.off_cpu {
            tracepoints.push(("on_switch", "sched_switch"));
        }
        tracepoints
    }

    /// The sampler program, loaded on first use.
    fn sampler(&mut self) -> Result<&mut PerfEvent> {
        let verbose = self.verbose;
        let program: &mut PerfEvent = self
            .ebpf
            .program_mut("on_cpu_sample")
            .context("program on_cpu_sample missing from the BPF object")?
            .try_into()?;
        if program.fd().is_err() {
            program
                .load()
                .map_err(|e| load_error("on_cpu_sample", e, verbose))?;
        }
        Ok(program)
    }

    /// A tracepoint program, loaded on first use.
    fn tracepoint(&mut self, program_name: &str) -> Result<&mut TracePoint> {
        let verbose = self.verbose;
        let program: &mut TracePoint = self
            .ebpf
            .program_mut(program_name)
            .with_context(|| format!("program {program_name} missing from the BPF object"))?
            .try_into()?;
        if program.fd().is_err() {
            program
                .load()
                .map_err(|e| load_error(program_name, e, verbose))?;
        }
        Ok(program)
    }

    /// Stops all sampling; the maps stay readable. Programs that were never
    /// loaded (the fork follower outside `-- COMMAND` runs) are skipped.
    pub(crate) fn detach(&mut self) {
        if let Some(Ok(sampler)) = self
            .ebpf
            .program_mut("on_cpu_sample")
            .map(<&mut PerfEvent>::try_from)
        {
            let _ = sampler.unload();
        }
        for name in ["on_switch", "on_waking", "on_exec", "follow_fork"] {
            if let Some(Ok(tracepoint)) =
                self.ebpf.program_mut(name).map(<&mut TracePoint>::try_from)
            {
                let _ = tracepoint.unload();
            }
        }
    }
}

fn load_error(program: &str, err: ProgramError, verbose: bool) -> anyhow::Error {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            if verbose {
                eprintln!("BPF verifier log for {program}:\n{verifier_log}");
            }
            let hint = match io_error.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) if !verbose => {
                    " (permission denied: run as root; add -v for the verifier log)"
                }
                _ if !verbose => " (add -v for the verifier log)",
                _ => "",
            };
            anyhow!("the kernel refused BPF program `{program}`: {io_error}{hint}")
        }
        other => anyhow!("loading BPF program `{program}`: {other}"),
    }
}
