//! bpfprof's BPF programs. They only record ids, times and counts;
//! everything that names or formats lives in userspace. Failures are
//! counted in `ERRORS`, never logged.
//!
//! - `on_cpu`: stack sampling on the CPU clock (`on_cpu_sample`).
//! - `off_cpu`: blocked time from `sched_switch`, wakers from `sched_waking`.
//! - `process`: the fork follower and the exec/first-sample announcements.
//! - `reuse`: off-CPU stack ids reused while a thread blocks at one site.
//! - `user_stack`: the walk of user stacks and their maps; `unwind`: its
//!   steps, by unwind table or frame pointer.
//! - `kernel_stack`: kernel stacks (the kernel's unwinder) and their maps.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod kernel_stack;
mod maps;
mod off_cpu;
mod on_cpu;
mod process;
mod reuse;
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
