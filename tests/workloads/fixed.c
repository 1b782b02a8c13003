/* wl-fixed: a fixed amount of CPU work (argv[1] rounds of fixed_work),
 * then exit: its wall time is the load's cost under a profiler. */
#include "common.h"

__attribute__((noinline)) void fixed_work(void) { SPIN(1000000); }

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 3000;
    for (long i = 0; i < rounds; i++)
        fixed_work();
    return 0;
}
