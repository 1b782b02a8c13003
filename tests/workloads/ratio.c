/* wl-ratio: main -> run_workload -> hot_a (75% of the CPU) / hot_b (25%). */
#include "common.h"

#define UNIT 100000

__attribute__((noinline)) void hot_a(void) { SPIN(3 * UNIT); }
__attribute__((noinline)) void hot_b(void) { SPIN(UNIT); }

__attribute__((noinline)) void run_workload(double seconds) {
    double end = now() + seconds;
    while (now() < end) {
        hot_a();
        hot_b();
    }
}

int main(int argc, char **argv) {
    run_workload(seconds_arg(argc, argv));
    return 0;
}
