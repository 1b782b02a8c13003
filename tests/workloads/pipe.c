/* wl-pipe: "pipe-writer" (writer_thread -> wake_reader) writes a byte to a
 * pipe every 10 ms; "pipe-reader" (reader_thread -> wait_for_data) blocks
 * reading it: each of the reader's waits is ended by the writer. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/prctl.h>
#include <unistd.h>
#include "common.h"

static int fds[2];

__attribute__((noinline)) void wait_for_data(void) {
    char c;
    RAW_SYSCALL3(SYS_read, fds[0], (long)&c, 1);
}

__attribute__((noinline)) void wake_reader(void) {
    char c = 'x';
    RAW_SYSCALL3(SYS_write, fds[1], (long)&c, 1);
}

static void *reader_thread(void *arg) {
    (void)arg;
    prctl(PR_SET_NAME, "pipe-reader");
    for (;;)
        wait_for_data();
    return NULL;
}

static void *writer_thread(void *arg) {
    (void)arg;
    prctl(PR_SET_NAME, "pipe-writer");
    for (;;) {
        RAW_SLEEP_MS(10);
        wake_reader();
    }
    return NULL;
}

int main(void) {
    pthread_t reader, writer;
    if (pipe(fds) != 0)
        return 1;
    pthread_create(&reader, NULL, reader_thread, NULL);
    pthread_create(&writer, NULL, writer_thread, NULL);
    pthread_join(reader, NULL);
    return 0;
}
