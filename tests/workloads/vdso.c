/* wl-vdso: built -O2 -fomit-frame-pointer. main -> read_clock, which calls
 * clock_gettime in a loop: most samples land in the vDSO, whose unwind
 * table is read from the process's memory. */
#include "common.h"

__attribute__((noinline)) void read_clock(void) {
    struct timespec ts;
    for (int i = 0; i < 1000; i++)
        clock_gettime(CLOCK_MONOTONIC, &ts);
    __asm__ volatile("");
}

int main(int argc, char **argv) {
    double end = now() + seconds_arg(argc, argv);
    while (now() < end)
        read_clock();
    return 0;
}
