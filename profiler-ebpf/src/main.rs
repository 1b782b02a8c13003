//! bpfprof's BPF programs. They only record ids, times and counts;
//! everything that names or formats lives in userspace. Failures are
//! counted in `ERRORS`.
//!
//! Modules, each using only those listed before it:
//! - `errors`: the loss counters; `target`: which processes are recorded;
//!   `events`: announcements of processes to userspace.
//! - `store`: the two map sets records go to; `by_set` and `with_set!`
//!   pick one.
//! - `unwind`: one step of a user-stack walk, by unwind table or frame
//!   pointer; `python`: the Python frames of an eval-loop activation;
//!   `user_stack` and `kernel_stack`: the walks and their scratch stacks;
//!   `stacks`: both stacks of a task, as `StackIds`.
//! - `reuse`: off-CPU stack ids reused while a thread blocks at one site.
//! - The programs: `on_cpu` (stack sampling on the CPU clock), `off_cpu`
//!   (blocked time from `sched_switch`, wakers from `sched_waking`),
//!   `process` (the fork follower and exec announcements).
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod errors;
mod events;
mod kernel_stack;
mod off_cpu;
mod on_cpu;
mod process;
mod python;
mod reuse;
mod stacks;
mod store;
mod target;
mod unwind;
mod user_stack;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
