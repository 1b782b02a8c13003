/* wl-stacks: 2^levels distinct stacks (argv[2], default 14: 16384).
 * walk(n, bits) descends `levels` levels, through left() or right() by each
 * bit of `bits`, and spins at the bottom; main visits every `bits` in turn,
 * forever (or argv[1] seconds). */
#include "common.h"

__attribute__((noinline)) void walk(int n, unsigned bits);

__attribute__((noinline)) void left(int n, unsigned bits) { walk(n, bits); }
__attribute__((noinline)) void right(int n, unsigned bits) { walk(n, bits); }

__attribute__((noinline)) void walk(int n, unsigned bits) {
    if (n == 0) {
        SPIN(2000);
        return;
    }
    if (bits & 1)
        left(n - 1, bits >> 1);
    else
        right(n - 1, bits >> 1);
}

int main(int argc, char **argv) {
    double end = now() + seconds_arg(argc, argv);
    int levels = argc > 2 ? atoi(argv[2]) : 14;
    unsigned mask = (1u << levels) - 1;
    for (unsigned bits = 0; now() < end; bits = (bits + 1) & mask)
        walk(levels, bits);
    return 0;
}
