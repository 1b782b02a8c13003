/* wl-samesite: main -> via_long -> middle -> wait_here (20 ms) and
 * main -> via_short -> middle -> wait_here (10 ms), alternating. Both
 * paths block with identical registers, frame record at bp, syscall and
 * arguments: only the return address two frames up tells them apart, so
 * stack reuse must be caught by its check walks, not trusted. */
#include "common.h"

__attribute__((noinline)) void wait_here(long ms) { RAW_SLEEP_MS(ms); }
__attribute__((noinline)) void middle(long ms) { wait_here(ms); }
__attribute__((noinline)) void via_long(void) { middle(20); }
__attribute__((noinline)) void via_short(void) { middle(10); }

int main(int argc, char **argv) {
    double end = now() + seconds_arg(argc, argv);
    while (now() < end) {
        via_long();
        via_short();
    }
    return 0;
}
