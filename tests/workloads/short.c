/* wl-short: burns 40 ms (or argv[1] seconds) in short_lived_work, then exits. */
#include "common.h"

__attribute__((noinline)) void short_lived_work(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        SPIN(10000);
}

int main(int argc, char **argv) {
    short_lived_work(argc > 1 ? atof(argv[1]) : 0.04);
    return 0;
}
