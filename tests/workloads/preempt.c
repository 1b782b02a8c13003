/* wl-preempt: main -> spin_here spins on CPU 0 while helper processes
 * preempt it there through different interrupts: "tick" sleeps 1 ms at a
 * time on CPU 0 (woken by the local timer interrupt), and "ipi-reader" on
 * CPU 0 is woken every 1 ms through a pipe by "ipi-writer" on CPU 1 (an
 * inter-processor interrupt). The spinner is preempted at the same few
 * user instructions with different kernel entry paths. The helpers are
 * separate processes, so `--pid` of the spinner records one thread. */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>
#include "common.h"

static void pin(int cpu) {
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(cpu, &cpus);
    sched_setaffinity(0, sizeof cpus, &cpus);
}

/* Forks a helper pinned to `cpu`, killed when the spinner exits; returns
 * 1 in the helper. */
static int helper(const char *name, int cpu) {
    if (fork() != 0)
        return 0;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    prctl(PR_SET_NAME, name);
    pin(cpu);
    return 1;
}

__attribute__((noinline)) void spin_here(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        SPIN(100000);
}

int main(int argc, char **argv) {
    int fds[2];
    char byte = 0;
    if (pipe(fds) != 0)
        return 1;
    if (helper("tick", 0))
        for (;;)
            RAW_SLEEP_MS(1);
    if (helper("ipi-reader", 0))
        for (;;)
            if (read(fds[0], &byte, 1) != 1)
                _exit(0);
    if (helper("ipi-writer", 1))
        for (;;) {
            RAW_SLEEP_MS(1);
            if (write(fds[1], &byte, 1) != 1)
                _exit(0);
        }
    pin(0);
    spin_here(seconds_arg(argc, argv));
    return 0;
}
