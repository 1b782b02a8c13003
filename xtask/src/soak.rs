//! `cargo xtask soak [MINUTES]`: the continuous-mode soak test. Profiles
//! the whole machine at 99 Hz in 30 s windows while processes start and
//! exit all the time, samples bpfprof's memory every 10 s, and fails if
//! its heap grew in the second half of the run. Not part of `test`: it
//! takes at least 10 minutes.

use std::{
    path::Path,
    process::{Command, ExitCode, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::progress;

/// Allowed growth of the second half's peak over the first half's, on top
/// of a fixed slack for allocator noise.
const GROWTH: f64 = 1.10;
const SLACK_KB: u64 = 8 * 1024;

pub fn run(bin: &Path, minutes: u64) -> Result<ExitCode> {
    let seconds = minutes * 60;
    progress(&format!(
        "soak: {minutes} min, system-wide at 99 Hz, 30 s windows, with process churn"
    ));
    // Processes starting and exiting, and some CPU load, all the time.
    let mut churn = Command::new("sh")
        .args([
            "-c",
            "while :; do ls /usr/bin >/dev/null; sh -c 'sort /etc/services >/dev/null'; done",
        ])
        .spawn()
        .context("starting the churn loop")?;
    let out_dir = std::env::temp_dir().join("bpfprof-soak");
    let _ = std::fs::remove_dir_all(&out_dir);
    let mut profiler = Command::new(bin)
        .args([
            "-F",
            "99",
            "--window",
            "30",
            "--keep",
            "4",
            "--off-cpu",
            "-d",
            &seconds.to_string(),
        ])
        .arg("-o")
        .arg(&out_dir)
        .stdout(Stdio::null())
        .spawn()
        .context("starting bpfprof")?;
    let start = Instant::now();
    let mut samples: Vec<(u64, u64, u64)> = Vec::new();
    while profiler.try_wait()?.is_none() {
        thread::sleep(Duration::from_secs(10));
        if let Some((rss, anon)) = memory_kb(profiler.id()) {
            let at = start.elapsed().as_secs();
            println!(
                "soak: {at:>5} s  rss {:>7} KiB  heap and anonymous {:>7} KiB",
                rss, anon
            );
            samples.push((at, rss, anon));
        }
    }
    let _ = churn.kill();
    let _ = churn.wait();
    let status = profiler.wait()?;
    let half = samples.len() / 2;
    let peak = |s: &[(u64, u64, u64)]| s.iter().map(|x| x.2).max().unwrap_or(0);
    let (first, second) = (peak(&samples[..half]), peak(&samples[half..]));
    let limit = (first as f64 * GROWTH) as u64 + SLACK_KB;
    println!(
        "soak: anonymous memory peak {first} KiB in the first half, {second} KiB in the second (limit {limit})"
    );
    let flat = second <= limit && samples.len() >= 6;
    if !status.success() || !flat {
        eprintln!(
            "soak: FAILED ({status}; memory {})",
            if flat { "flat" } else { "grew" }
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("soak: passed: memory flat over {minutes} min");
    Ok(ExitCode::SUCCESS)
}

/// VmRSS and RssAnon of a process, in KiB.
fn memory_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("RssAnon:")?))
}
