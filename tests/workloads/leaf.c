/* wl-leaf: built -O2 with frame pointers, main -> caller -> hot_leaf. gcc
 * gives the leaf no frame, so a frame-pointer walk from inside it reads
 * caller's frame record and skips caller itself. */
#include "common.h"

__attribute__((noinline)) void hot_leaf(void) { SPIN(1000000); }
__attribute__((noinline)) void caller(void) { hot_leaf(); __asm__ volatile(""); }

int main(int argc, char **argv) {
    double end = now() + seconds_arg(argc, argv);
    while (now() < end)
        caller();
    return 0;
}
