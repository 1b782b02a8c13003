//! Micro-benchmarks of the userspace hot paths: symbolizing a drained batch
//! of a cached process, folding a profile of 10k stacks, rendering its
//! flame graph, and one refresh of `bpfprof top` with an interval of 10k
//! stacks. Run with `cargo bench -p profiler`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use profiler::{
    Batch, Frame, FrameKind, Profile, RawSample, RawStack, RawStacks, StackSite, Symbolizer,
    TopBench, folded, svg,
};
use profiler_common::StackKey;

#[inline(never)]
fn leaf_a() -> u64 {
    black_box(1)
}

#[inline(never)]
fn leaf_b() -> u64 {
    black_box(2)
}

/// A drained batch of 1000 samples of this process, over 100 distinct
/// stacks of real addresses (so symbolization has work to do).
fn batch() -> Batch {
    let me = std::process::id();
    let functions = [
        leaf_a as *const () as u64,
        leaf_b as *const () as u64,
        batch as *const () as u64,
    ];
    let on_cpu = (0..1000u64)
        .map(|i| RawSample {
            stacks: RawStacks {
                key: StackKey {
                    tgid: me,
                    tid: me,
                    user_stack_id: (i % 100) as i64,
                    ..StackKey::default()
                },
                user_image: Some(0),
                user: RawStack::Frames(
                    (0..8)
                        .map(|d| functions[((i + d) % 3) as usize] + 1 + (i % 100) % 16)
                        .collect(),
                ),
                kernel: RawStack::Failed(14),
            },
            count: 1,
        })
        .collect();
    Batch {
        on_cpu,
        ..Batch::default()
    }
}

/// A profile of 10,000 distinct stacks, 12 frames deep.
fn big_profile() -> Profile {
    let mut p = Profile::default();
    p.name_process(1, || "app".into());
    let frames: Vec<u32> = (0..200)
        .map(|i| {
            p.frames.intern(Frame {
                name: format!("function_{i}"),
                module: Some("app".into()),
                kind: FrameKind::User,
            })
        })
        .collect();
    for i in 0..10_000usize {
        let stack: Vec<u32> = (0..12)
            .map(|d| frames[(i * 7 + d * 13 + i / (d + 1)) % 200])
            .collect();
        p.add(
            StackSite {
                tgid: 1,
                tid: 1,
                pcs: vec![0; stack.len()],
                lines: vec![0; stack.len()],
                frames: stack,
            },
            1 + (i % 5) as u64,
        );
    }
    p
}

fn hot_paths(c: &mut Criterion) {
    let mut symbolizer = Symbolizer::default();
    symbolizer.remember(std::process::id());
    c.bench_function("symbolize a batch of 1000 samples (cached process)", |b| {
        b.iter(|| {
            let mut profile = Profile::default();
            symbolizer.add_batch(batch(), &mut profile);
            black_box(profile.on_cpu.len())
        })
    });
    let profile = big_profile();
    c.bench_function("fold 10k stacks", |b| {
        b.iter(|| black_box(folded::fold(&profile).len()))
    });
    let stacks = folded::fold(&profile);
    let path = std::env::temp_dir().join("bpfprof-bench.svg");
    c.bench_function("render an SVG of 10k stacks", |b| {
        b.iter(|| {
            let style = svg::GraphStyle {
                title: "bench".into(),
                subtitle: None,
                count_name: "samples",
                palette: Default::default(),
            };
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
            svg::write(&mut file, &stacks, style, 0.1).unwrap()
        })
    });
    let _ = std::fs::remove_file(path);
    // The window is full after a few rounds: each refresh then also takes
    // the oldest interval away, as a long-running view does.
    let mut top = TopBench::new(99);
    c.bench_function("top: count in an interval of 10k stacks and draw", |b| {
        b.iter(|| top.refresh(&profile))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = hot_paths
}
criterion_main!(benches);
