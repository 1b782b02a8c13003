/* wl-stacks: 16384 distinct stacks. walk(n, bits) descends 14 levels,
 * through left() or right() by each bit of `bits`, and spins at the bottom;
 * main visits every `bits` in turn, forever (or argv[1] seconds). */
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
    for (unsigned bits = 0; now() < end; bits = (bits + 1) & 0x3fff)
        walk(14, bits);
    return 0;
}
