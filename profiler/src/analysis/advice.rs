//! Recommendations: short, concrete, each tied to a number of this run.
//! A rule speaks only when its number passes its threshold. The same text
//! is printed under the tables and written to report.json, so it names
//! the sections it points to (a table's title and its report.json key)
//! rather than where they are on the screen.

use crate::{
    analysis::{Summary, percent, top_by_self},
    profile::{FrameKind, OffState, Profile, StackSite},
};

/// Exact names of allocator entry points, and substrings of allocator and
/// garbage-collector internals.
const ALLOC_NAMES: &[&str] = &[
    "free",
    "cfree",
    "__libc_free",
    "__free",
    "je_free",
    "mi_free",
];
const ALLOC_PARTS: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "_int_free",
    "__rust_alloc",
    "__rust_dealloc",
    "__rust_realloc",
    "__rdl_alloc",
    "operator new",
    "operator delete",
    "alloc::alloc",
    "GarbageCollect",
    "Scavenge",
    "gc_collect",
    "mallocgc",
    "gcBgMarkWorker",
    "::gc::",
];
const LOCK_PARTS: &[&str] = &[
    "futex_wait",
    "pthread_mutex_lock",
    "pthread_cond_wait",
    "pthread_rwlock",
    "__lll_lock_wait",
    "parking_lot",
    "std::sync::",
];

pub(crate) fn recommend(profile: &Profile, summary: &Summary) -> Vec<String> {
    let mut advice = Vec::new();
    let total = summary.total_samples;
    if let Some(hot) = top_by_self(&summary.functions, 1).first()
        && percent(hot.self_samples, total) > 30.0
    {
        advice.push(format!(
            "{} takes {:.1}% of the CPU by itself (self time): make it cheaper or call it less often; \
             its callers are in the hottest call paths on-CPU (call_paths in report.json)",
            hot.name,
            percent(hot.self_samples, total)
        ));
    }
    let alloc = on_cpu_share(profile, is_alloc);
    if alloc > 15.0 {
        advice.push(format!(
            "memory allocation and freeing (malloc, free, the GC) is on the stack in {alloc:.1}% of CPU \
             samples: reuse buffers, size collections up front, or try a faster allocator"
        ));
    }
    if let Some(off) = &summary.off_cpu
        && off.total_us > 0
    {
        let locked: u64 = profile
            .off_cpu
            .iter()
            .filter(|(o, _)| {
                any_frame(profile, &o.site, |n| {
                    LOCK_PARTS.iter().any(|p| n.contains(p))
                })
            })
            .map(|(_, us)| us)
            .sum();
        let share = percent(locked, off.total_us);
        if share > 10.0 {
            advice.push(format!(
                "{share:.1}% of off-CPU time ({:.2} s) is spent waiting on locks (futex, mutex, condition \
                 variable): look for contended locks where threads waited (off_cpu.wait_sites in report.json)",
                locked as f64 / 1e6
            ));
        }
        for p in &off.processes {
            let preempted = percent(p.off_us[OffState::Preempted.index()], p.wall_us());
            if preempted > 10.0 {
                advice.push(format!(
                    "{} (pid {}) waited for a CPU {preempted:.1}% of its wall time (preempted): more runnable \
                     threads than CPUs; use fewer threads, pin or prioritise it, or add CPUs",
                    p.name, p.id
                ));
            }
        }
    }
    for p in summary.processes.iter().filter(|p| p.samples >= 20) {
        let mine = |f: &dyn Fn(&str) -> bool| process_share(profile, p.pid, p.samples, f);
        let syscalls = mine(&|n| n.starts_with("entry_SYSCALL") || n == "do_syscall_64");
        if syscalls > 50.0 {
            advice.push(format!(
                "{} (pid {}) spends {syscalls:.1}% of its CPU time in system calls: batch them, use larger \
                 buffers, or avoid the round trips (mmap, io_uring)",
                p.name, p.pid
            ));
        }
        let faults = mine(&|n| n.contains("exc_page_fault"));
        if faults > 50.0 {
            advice.push(format!(
                "{} (pid {}) spends {faults:.1}% of its CPU time in page faults: touch memory less \
                 sparsely, pre-fault or reuse it, or use huge pages",
                p.name, p.pid
            ));
        }
        let unknown = unknown_share(profile, p.pid, p.samples);
        if unknown > 50.0 {
            advice.push(format!(
                "{} (pid {}): {unknown:.1}% of its samples have unnamed frames: install its debug symbols, \
                 build it with frame pointers, or start its JIT with a perf map (see Quality, errors in report.json)",
                p.name, p.pid
            ));
        }
    }
    advice
}

fn is_alloc(name: &str) -> bool {
    let bare = name
        .trim_start_matches("__GI_")
        .trim_start_matches("__GI___");
    ALLOC_NAMES.contains(&bare) || ALLOC_PARTS.iter().any(|p| name.contains(p))
}

fn any_frame(profile: &Profile, site: &StackSite, matches: impl Fn(&str) -> bool) -> bool {
    site.frames
        .iter()
        .any(|&f| matches(&profile.frames.get(f).name))
}

/// Percent of all on-CPU samples whose stack has a matching frame.
fn on_cpu_share(profile: &Profile, matches: impl Fn(&str) -> bool) -> f64 {
    let total = profile.total_samples();
    let hit: u64 = profile
        .on_cpu
        .iter()
        .filter(|(site, _)| any_frame(profile, site, &matches))
        .map(|(_, n)| n)
        .sum();
    percent(hit, total)
}

fn process_share(profile: &Profile, pid: u32, samples: u64, matches: &dyn Fn(&str) -> bool) -> f64 {
    let hit: u64 = profile
        .on_cpu
        .iter()
        .filter(|(site, _)| site.tgid == pid && any_frame(profile, site, matches))
        .map(|(_, n)| n)
        .sum();
    percent(hit, samples)
}

fn unknown_share(profile: &Profile, pid: u32, samples: u64) -> f64 {
    let hit: u64 = profile
        .on_cpu
        .iter()
        .filter(|(site, _)| {
            site.tgid == pid
                && site
                    .frames
                    .iter()
                    .any(|&f| profile.frames.get(f).kind == FrameKind::Unknown)
        })
        .map(|(_, n)| n)
        .sum();
    percent(hit, samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{analysis::summarize, profile::Frame};

    fn frame(p: &mut Profile, name: &str, kind: FrameKind) -> u32 {
        p.frames.intern(Frame {
            name: name.into(),
            module: Some("app".into()),
            kind,
        })
    }

    fn site(frames: Vec<u32>) -> StackSite {
        StackSite {
            tgid: 1,
            tid: 1,
            frames,
            ..StackSite::default()
        }
    }

    #[test]
    fn each_rule_speaks_with_its_number() {
        let mut p = Profile::default();
        p.name_process(1, || "app".into());
        let main = frame(&mut p, "main", FrameKind::User);
        let hot = frame(&mut p, "hot_loop", FrameKind::User);
        let malloc = frame(&mut p, "__GI___libc_malloc", FrameKind::User);
        let syscall = frame(&mut p, "entry_SYSCALL_64_after_hwframe", FrameKind::Kernel);
        p.add(site(vec![main, hot]), 60);
        p.add(site(vec![main, malloc]), 20);
        p.add(site(vec![main, syscall]), 20);
        let advice = recommend(&p, &summarize(&p, false, 10_000.0));
        assert!(
            advice
                .iter()
                .any(|a| a.starts_with("hot_loop takes 60.0% of the CPU")),
            "{advice:?}"
        );
        assert!(
            advice
                .iter()
                .any(|a| a.contains("is on the stack in 20.0% of CPU samples")),
            "{advice:?}"
        );
        assert!(
            !advice.iter().any(|a| a.contains("system calls")),
            "20% does not dominate: {advice:?}"
        );
    }

    #[test]
    fn lock_waits_and_contention_need_off_cpu_time() {
        let mut p = Profile::default();
        p.name_process(1, || "app".into());
        let main = frame(&mut p, "main", FrameKind::User);
        let futex = frame(&mut p, "futex_wait", FrameKind::Kernel);
        p.add(site(vec![main]), 100);
        p.add_off_cpu(site(vec![main, futex]), OffState::Sleeping, 500_000);
        p.add_off_cpu(site(vec![main]), OffState::Preempted, 500_000);
        let advice = recommend(&p, &summarize(&p, true, 10_000.0));
        assert!(
            advice
                .iter()
                .any(|a| a.starts_with("50.0% of off-CPU time (0.50 s) is spent waiting on locks")),
            "{advice:?}"
        );
        assert!(
            advice
                .iter()
                .any(|a| a.contains("waited for a CPU 25.0% of its wall time")),
            "{advice:?}"
        );
    }

    /// Texts that point elsewhere read right in report.json too: no
    /// "above" or "below", and each report.json key they name exists.
    #[test]
    fn pointers_to_other_sections_name_them() {
        let mut p = Profile::default();
        p.name_process(1, || "app".into());
        let main = frame(&mut p, "main", FrameKind::User);
        let hot = frame(&mut p, "hot_loop", FrameKind::User);
        let unknown = frame(&mut p, "[app+0x10]", FrameKind::Unknown);
        let futex = frame(&mut p, "futex_wait", FrameKind::Kernel);
        p.add(site(vec![main, unknown, hot]), 100);
        p.add_off_cpu(site(vec![main, futex]), OffState::Sleeping, 500_000);
        let advice = recommend(&p, &summarize(&p, true, 10_000.0));
        let schema: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/report.schema.json"
        )))
        .unwrap();
        let mut keys = Vec::new();
        for text in &advice {
            assert!(!text.contains("above") && !text.contains("below"), "{text}");
            for (before, _) in text
                .match_indices(" in report.json")
                .map(|(i, m)| (&text[..i], m))
            {
                let key = before.rsplit([' ', '(']).next().unwrap();
                let mut node = &schema;
                for part in key.split('.') {
                    node = &node["properties"][part];
                }
                assert!(node.is_object(), "{key} is not in report.json: {text}");
                keys.push(key);
            }
        }
        assert_eq!(keys, ["call_paths", "off_cpu.wait_sites", "errors"]);
    }

    #[test]
    fn allocator_names_are_recognised_without_false_friends() {
        assert!(is_alloc("__GI___libc_free") && is_alloc("free") && is_alloc("_int_malloc"));
        assert!(is_alloc("alloc::raw_vec::finish_grow") || is_alloc("__rust_alloc"));
        assert!(!is_alloc("freeze_super") && !is_alloc("hot_loop"));
    }
}
