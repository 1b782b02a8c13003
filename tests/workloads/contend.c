/* wl-contend: three "contender" threads spinning, all pinned to CPU 0:
 * each runs a third of the time and waits, runnable, the rest. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include "common.h"

#define THREADS 3

__attribute__((noinline)) void contend_spin(void) {
    for (;;)
        SPIN(100000);
}

static void *contender(void *arg) {
    (void)arg;
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(0, &cpus);
    sched_setaffinity(0, sizeof cpus, &cpus);
    prctl(PR_SET_NAME, "contender");
    contend_spin();
    return NULL;
}

int main(void) {
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, contender, NULL);
    pthread_join(threads[0], NULL);
    return 0;
}
