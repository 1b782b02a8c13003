/* wl-dlopen: runs main -> idle_spin for 300 ms, then dlopen()s
 * libwl-plugin.so (argv[1], a library without frame pointers) and calls
 * its plugin_outer from call_plugin for the rest of argv[2] seconds. The
 * library is mapped after profiling starts: its unwind table must be
 * picked up while running. */
#include <dlfcn.h>
#include <stdio.h>
#include "common.h"

__attribute__((noinline)) void idle_spin(void) { SPIN(100000); }
__attribute__((noinline)) void call_plugin(void (*outer)(void)) { outer(); __asm__ volatile(""); }

int main(int argc, char **argv) {
    double start = now();
    double end = start + (argc > 2 ? atof(argv[2]) : 1e9);
    while (now() < start + 0.3)
        idle_spin();
    void *library = dlopen(argv[1], RTLD_NOW);
    if (!library) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    void (*outer)(void) = (void (*)(void))dlsym(library, "plugin_outer");
    while (now() < end)
        call_plugin(outer);
    return 0;
}
