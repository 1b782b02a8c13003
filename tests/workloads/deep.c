/* wl-deep: a native stack of a known depth: main -> descend, argv[1]
 * (default 40) levels deep, spinning at the bottom for argv[2] seconds.
 * Each level does work after its call, so none is a tail call. */
#include "common.h"

static double end;

__attribute__((noinline)) int descend(int depth) {
    if (depth == 0) {
        while (now() < end)
            SPIN(100000);
        return 0;
    }
    int below = descend(depth - 1);
    sink += below;
    return below + 1;
}

int main(int argc, char **argv) {
    int depth = argc > 1 ? atoi(argv[1]) : 40;
    end = now() + (argc > 2 ? atof(argv[2]) : 1e9);
    return descend(depth) < 0;
}
