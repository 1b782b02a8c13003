/* wl-pingpong: two processes pinned to CPU 0 pass a byte through two pipes
 * N times (argv[1], default 200000) and print the seconds it took: about
 * two context switches per round trip. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200000;
    int a[2], b[2]; pipe(a); pipe(b);
    cpu_set_t s; CPU_ZERO(&s); CPU_SET(0, &s); sched_setaffinity(0, sizeof s, &s);
    struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
    char c = 0;
    if (fork() == 0) { for (long i = 0; i < n; i++) { read(a[0], &c, 1); write(b[1], &c, 1); } return 0; }
    for (long i = 0; i < n; i++) { write(a[1], &c, 1); read(b[0], &c, 1); }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.3f\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
