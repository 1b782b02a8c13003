/* wl-inline, built with -O2 -g: inline_helper is inlined into
 * outer_function, where all the time goes; DWARF says so. */
#include "common.h"

static inline __attribute__((always_inline)) void inline_helper(void) { SPIN(100000); }

__attribute__((noinline)) void outer_function(void) {
    for (int i = 0; i < 10; i++)
        inline_helper();
}

int main(int argc, char **argv) {
    double end = now() + seconds_arg(argc, argv);
    while (now() < end)
        outer_function();
    return 0;
}
