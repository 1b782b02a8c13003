/* wl-qsort: main -> sort_once -> qsort (Debian's libc, no frame pointers)
 * -> ... -> compare, where the time goes. Only libc's unwind tables lead
 * from compare back to main. */
#include <stdlib.h>
#include "common.h"

#define N 4096

static int compare(const void *a, const void *b) {
    SPIN(200);
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

__attribute__((noinline)) void sort_once(int *values) {
    for (int i = 0; i < N; i++)
        values[i] = (i * 7919) % N;
    qsort(values, N, sizeof *values, compare);
    __asm__ volatile("");
}

int main(int argc, char **argv) {
    static int values[N];
    double end = now() + seconds_arg(argc, argv);
    while (now() < end)
        sort_once(values);
    return 0;
}
