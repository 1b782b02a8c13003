use super::*;
use crate::analysis::{
    ProcessStat,
    off_cpu::{OffCpuSummary, WaitSite, WallEntity, WallStat},
};

fn meta() -> RunMeta {
    let mut meta = RunMeta::new(
        99,
        "all processes".into(),
        std::time::SystemTime::now(),
        Default::default(),
    );
    meta.cpus = 2;
    meta.duration_secs = 10.0;
    meta
}

fn summary() -> Summary {
    let f = |name: &str, s, t| FunctionStat {
        name: name.into(),
        module: "app".into(),
        self_samples: s,
        total_samples: t,
    };
    Summary {
        total_samples: 200,
        functions: vec![
            f("main", 0, 200),
            f("hot_a", 150, 150),
            f(&"x".repeat(120), 50, 50),
        ],
        processes: vec![ProcessStat {
            pid: 42,
            name: "app".into(),
            samples: 200,
        }],
        ..Summary::default()
    }
}

#[test]
fn the_quality_block_counts_and_advises_above_5_percent() {
    let mut losses = Losses::default();
    losses.samples = 200;
    losses[Loss::StackCollisions] = 30;
    losses[Loss::UnknownFrames] = 40;
    losses
        .unknown_frames_by_module
        .insert("libfoo.so".into(), 36);
    losses
        .unknown_frames_by_module
        .insert("[no file]".into(), 4);
    let mut meta = meta();
    meta.stack_map_size = 16384;
    let text = render(&meta, &summary(), &losses, 20);
    assert!(text.contains("Quality"), "{text}");
    assert!(text.contains("    in libfoo.so"), "{text}");
    assert!(text.contains("warning: 15.0% of samples lost a stack to a full stack map: run with --stack-map-size 65536"), "{text}");
    assert!(text.contains("warning: 18.0% of samples have unnamed frames in libfoo.so: install debug symbols for libfoo.so"), "{text}");
    assert!(
        !text.contains("unnamed frames in [no file]"),
        "2% is under the limit: {text}"
    );
    for line in text.lines().filter(|l| !l.starts_with("warning:")) {
        assert!(line.chars().count() <= 100, "too wide: {line}");
    }
}

#[test]
fn the_quality_block_lists_every_loss_by_its_label_in_table_order() {
    let mut losses = Losses::default();
    losses.samples = 1_000_000;
    for (i, loss) in Loss::ALL.into_iter().enumerate() {
        losses[loss] = 100 + i as u64;
    }
    losses
        .unknown_frames_by_module
        .insert("libfoo.so".into(), 100);
    let text = render(&meta(), &summary(), &losses, 20);
    let block: Vec<&str> = text
        .split("\nQuality\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.is_empty() && !l.starts_with("warning:"))
        .collect();
    let mut expected = Vec::new();
    for (i, loss) in Loss::ALL.into_iter().enumerate() {
        expected.push(format!("  {:<40} {:>9}", loss.label(), 100 + i));
        if loss == Loss::UnknownFrames {
            expected.push(format!("    in {:<37} {:>9}", "libfoo.so", 100));
        }
    }
    assert_eq!(block, expected, "{text}");
    // A counter at 0 has no line.
    losses[Loss::PerfMapsCut] = 0;
    let text = render(&meta(), &summary(), &losses, 20);
    assert!(!text.contains(Loss::PerfMapsCut.label()), "{text}");
}

#[test]
fn tables_rank_fit_100_columns_and_show_losses() {
    let mut losses = Losses::default();
    losses.samples = 200;
    losses[Loss::StackCollisions] = 3;
    let text = render(&meta(), &summary(), &losses, 20);
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "too wide: {line}");
    }
    let self_table = text.split("by self time").nth(1).unwrap();
    let first_row = self_table.lines().nth(2).unwrap();
    assert!(
        first_row.contains("hot_a") && first_row.contains("75.0%"),
        "{first_row}"
    );
    assert!(
        !self_table
            .split("by total")
            .next()
            .unwrap()
            .contains(" main "),
        "main has no self time"
    );
    assert!(text.contains("stack id collisions"));
    assert!(text.contains("       42        200  100.0%  app"), "{text}");
}

#[test]
fn off_cpu_tables_fit_and_rank_by_wall() {
    let mut summary =
        crate::analysis::summarize(&crate::profile::Profile::default(), false, 10_000.0);
    summary.total_samples = 200;
    let long = "a_very_long_function_name_that_goes_on_and_on_and_on".to_string();
    summary.off_cpu = Some(OffCpuSummary {
        total_us: 2_500_000,
        by_state: [2_000_000, 0, 500_000, 0],
        functions: vec![WallStat {
            name: long.clone(),
            module: "app".into(),
            cpu_us: 1_000_000,
            off_us: [2_000_000, 0, 500_000, 0],
        }],
        wait_sites: vec![WaitSite {
            name: "wait_for_reply".into(),
            module: "app".into(),
            off_us: [2_000_000, 0, 0, 0],
        }],
        processes: vec![WallEntity {
            id: 42,
            tgid: 42,
            name: "app".into(),
            cpu_us: 1_000_000,
            off_us: [2_000_000, 0, 500_000, 0],
        }],
        threads: vec![],
    });
    let text = render(&meta(), &summary, &Losses::default(), 20);
    for line in text.lines() {
        assert!(
            line.chars().count() <= 100,
            "too wide ({}): {line}",
            line.chars().count()
        );
    }
    assert!(
        text.contains("Off-CPU: 2.50 s blocked (sleeping 2.00 s, preempted 500.0 ms)"),
        "{text}"
    );
    assert!(
        text.contains("   3.50 s    1.00 s    2.00 s         -  500.0 ms         -  …"),
        "{text}"
    );
    assert!(text.contains("wait_for_reply"));
    assert_eq!(time(999), "999 us");
    assert_eq!(time(1500), "1.5 ms");
}

#[test]
fn an_empty_profile_says_so() {
    let empty = Summary {
        total_samples: 0,
        functions: vec![],
        ..Summary::default()
    };
    let text = render(&meta(), &empty, &Losses::default(), 20);
    assert!(text.contains("No samples"));
    assert!(!text.contains("Losses"));
}
