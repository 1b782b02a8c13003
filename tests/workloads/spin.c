/* wl-spin: main -> spin_loop -> spin_leaf, all of its time in spin_leaf. */
#include "common.h"

__attribute__((noinline)) void spin_leaf(void) { SPIN(100000); }

__attribute__((noinline)) void spin_loop(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        spin_leaf();
}

int main(int argc, char **argv) {
    spin_loop(seconds_arg(argc, argv));
    return 0;
}
