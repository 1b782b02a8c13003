/* wl-ratio: main -> run_workload -> hot_a (75% of the CPU) / hot_b (25%). */
#include "common.h"

#define UNIT 100000

/* The two functions are one machine code but for the weight they read, and
 * start on the same alignment: at -O0, `SPIN(3 * units)` multiplied in
 * every iteration, which made hot_a's iterations slower than hot_b's by an
 * amount that depends on the CPU (78.5% where 75% was meant). */
long weight_a = 3, weight_b = 1;

__attribute__((noinline, aligned(64))) void hot_a(long units) {
    long iterations = units * weight_a;
    SPIN(iterations);
}

__attribute__((noinline, aligned(64))) void hot_b(long units) {
    long iterations = units * weight_b;
    SPIN(iterations);
}

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
