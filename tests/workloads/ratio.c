/* wl-ratio: main -> run_workload -> hot_a (75% of the CPU) / hot_b (25%). */
#include "common.h"

#define UNIT 100000

__attribute__((noinline)) void hot_a(long units) { SPIN(3 * units); }
__attribute__((noinline)) void hot_b(long units) { SPIN(units); }

/* Each round is of a random length (hot_a's three times hot_b's): with
 * rounds of one fixed length, a machine on which a round lasts about a
 * whole fraction of the sampling period puts the samples in step with the
 * rounds, and they land in one function more often than its share. */
__attribute__((noinline)) void run_workload(double seconds) {
    double end = now() + seconds;
    unsigned long random = 88172645463325252UL;
    while (now() < end) {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        long units = UNIT / 2 + (long)(random % UNIT);
        hot_a(units);
        hot_b(units);
    }
}

int main(int argc, char **argv) {
    run_workload(seconds_arg(argc, argv));
    return 0;
}
