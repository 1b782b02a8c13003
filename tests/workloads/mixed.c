/* wl-mixed: one thread, 5 ms busy in busy_part then 5 ms asleep in
 * idle_part: its on-CPU plus off-CPU time is all of its wall time. */
#include "common.h"

__attribute__((noinline)) void busy_part(void) {
    double end = now() + 0.005;
    while (now() < end)
        SPIN(10000);
}

__attribute__((noinline)) void idle_part(void) { RAW_SLEEP_MS(5); }

int main(int argc, char **argv) {
    double end = now() + seconds_arg(argc, argv);
    while (now() < end) {
        busy_part();
        idle_part();
    }
    return 0;
}
