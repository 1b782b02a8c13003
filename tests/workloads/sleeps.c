/* wl-sleeps: main -> sleep_long (20 ms) / sleep_short (10 ms), alternating:
 * off-CPU time splits 2:1 between them. */
#include "common.h"

__attribute__((noinline)) void sleep_long(void) { RAW_SLEEP_MS(20); }
__attribute__((noinline)) void sleep_short(void) { RAW_SLEEP_MS(10); }

int main(int argc, char **argv) {
    double end = now() + seconds_arg(argc, argv);
    while (now() < end) {
        sleep_long();
        sleep_short();
    }
    return 0;
}
