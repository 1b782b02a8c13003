//! wl-rust-nofp: a Rust release build without frame pointers (the
//! default): main -> outer -> middle -> leaf, which spins. Built by
//! tests/build.rs with rustc -O.
use std::hint::black_box;
use std::time::{Duration, Instant};

#[inline(never)]
fn leaf(seed: u64) -> u64 {
    let mut x = seed;
    for i in 0..5_000_000u64 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(black_box(i));
    }
    x
}

#[inline(never)]
fn middle(seed: u64) -> u64 {
    black_box(leaf(seed)) ^ 1
}

#[inline(never)]
fn outer(seed: u64) -> u64 {
    black_box(middle(seed)) ^ 3
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1e9);
    let end = Instant::now() + Duration::from_secs_f64(seconds.min(1e6));
    let mut seed = 0;
    while Instant::now() < end {
        seed = black_box(outer(seed));
    }
}
