/* wl-spin: main -> spin_loop -> spin_leaf, all of its time in spin_leaf.
 * `wl-spin SECONDS PROGRAM ARGS...` then execs PROGRAM in the same pid. */
#include <unistd.h>

#include "common.h"

__attribute__((noinline)) void spin_leaf(void) { SPIN(100000); }

__attribute__((noinline)) void spin_loop(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        spin_leaf();
}

int main(int argc, char **argv) {
    spin_loop(seconds_arg(argc, argv));
    if (argc > 2) {
        execv(argv[2], argv + 2);
        return 127;
    }
    return 0;
}
