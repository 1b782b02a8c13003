/* wl-omitfp: built -O2 -fomit-frame-pointer. main -> level1 -> level2 ->
 * level3 -> leaf, which spins. No function keeps a frame pointer: only the
 * unwind tables (.eh_frame) give the chain. */
#include "common.h"

__attribute__((noinline)) void leaf(void) { SPIN(1000000); }
/* The empty asm after each call keeps it a call, not a jump. */
__attribute__((noinline)) void level3(void) { leaf(); __asm__ volatile(""); }
__attribute__((noinline)) void level2(void) { level3(); __asm__ volatile(""); }
__attribute__((noinline)) void level1(void) { level2(); __asm__ volatile(""); }

int main(int argc, char **argv) {
    double end = now() + seconds_arg(argc, argv);
    while (now() < end)
        level1();
    return 0;
}
