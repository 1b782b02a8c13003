//! Scale: how the BPF side and the drain hold up as the distinct stacks
//! grow, on one CPU and on all, at high rates.

use std::{process::Command, thread, time::Duration};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{Bench, cases::bpf_ns_per_run, run::Series};

impl Bench {
    /// Scale (item 6): a workload of 64 or 16384 distinct stacks on 1 CPU
    /// and on every CPU, at 999 and 4999 Hz: BPF time per sample, drain
    /// time per interval, how full the maps get, and what share of samples
    /// lost a stack (a full map; collisions, before stacks were hash-keyed).
    pub fn scale(&self) -> Result<Value> {
        let mut out = Vec::new();
        let mut busy_cpus = vec![1, self.cpus];
        busy_cpus.dedup();
        let shapes = busy_cpus.iter().flat_map(|&busy| {
            [999u32, 4999]
                .into_iter()
                .flat_map(move |rate| [6u32, 14].map(|levels| (busy, rate, levels)))
        });
        for (busy, rate, levels) in shapes {
            let (mut avg_ms, mut max_ms, mut keys, mut stacks, mut lost, mut per_sample) = (
                Series::default(),
                Series::default(),
                Series::default(),
                Series::default(),
                Series::default(),
                Series::default(),
            );
            let mut sizes = (0u64, 0u64);
            for _ in 0..self.runs {
                let workloads: Vec<_> = (0..busy)
                    .map(|_| {
                        Command::new(self.workload("wl-stacks"))
                            .args(["8", &levels.to_string()])
                            .spawn()
                    })
                    .collect::<Result<_, _>>()?;
                thread::sleep(Duration::from_millis(300));
                let dir = self.tmp("scale");
                let output = Command::new(&self.bpfprof)
                    .args([
                        "-v",
                        "-F",
                        &rate.to_string(),
                        "-d",
                        "5",
                        "--format",
                        "json",
                        "--force",
                        "-o",
                    ])
                    .arg(&dir)
                    .output()?;
                for mut w in workloads {
                    let _ = w.kill();
                    let _ = w.wait();
                }
                let stderr = String::from_utf8_lossy(&output.stderr);
                if let Some(ns) = bpf_ns_per_run(&stderr, "on_cpu_sample") {
                    per_sample.push(ns);
                }
                let line = stderr
                    .lines()
                    .find(|l| l.contains(" drains, "))
                    .context("bpfprof -v printed no drain statistics")?;
                let numbers: Vec<f64> = line
                    .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .filter_map(|w| w.parse().ok())
                    .collect();
                // drains, average ms, max ms, counts, of, stacks, of
                if let [_, avg, max, k, k_of, st, st_of, ..] = numbers[..] {
                    avg_ms.push(avg);
                    max_ms.push(max);
                    keys.push(k);
                    stacks.push(st);
                    sizes = (k_of as u64, st_of as u64);
                }
                let report: Value =
                    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json"))?)?;
                let errors = &report["errors"];
                let samples = errors["samples"].as_f64().unwrap_or(0.0).max(1.0);
                let collided = errors["stack_collisions"].as_f64().unwrap_or(0.0)
                    + errors["stack_map_full"].as_f64().unwrap_or(0.0);
                lost.push(collided * 100.0 / samples);
            }
            out.push(json!({
                "freq_hz": rate,
                "cpus": self.cpus,
                "busy_cpus": busy,
                "distinct_stacks": 1u64 << levels,
                "bpf_ns_per_sample": per_sample.json(),
                "drain_ms_average": avg_ms.json(),
                "drain_ms_max": max_ms.json(),
                "peak_counts_per_interval": keys.json(),
                "max_stacks": sizes.0,
                "peak_stacks_per_interval": stacks.json(),
                "stack_map_size": sizes.1,
                "samples_lost_to_collisions_percent": lost.json(),
            }));
        }
        Ok(Value::Array(out))
    }
}
