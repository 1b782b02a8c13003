/* wl-signal: built -O2 -fomit-frame-pointer. main -> work spins; a
 * profiling timer fires every millisecond and its handler spins in
 * in_handler for a while. A stack from inside the handler crosses the
 * signal frame (libc's __restore_rt) back into work and main. */
#include <signal.h>
#include <sys/time.h>
#include "common.h"

__attribute__((noinline)) void in_handler(void) { SPIN(1000000); }
__attribute__((noinline)) void handler(int sig) { (void)sig; in_handler(); __asm__ volatile(""); }
__attribute__((noinline)) void work(void) { SPIN(1000000); __asm__ volatile(""); }

int main(int argc, char **argv) {
    struct sigaction action = {.sa_handler = handler};
    sigaction(SIGPROF, &action, 0);
    struct itimerval every_ms = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_PROF, &every_ms, 0);
    double end = now() + seconds_arg(argc, argv);
    while (now() < end)
        work();
    return 0;
}
