/* wl-fsync: main -> flush_loop -> flush_file: writes 256 KiB to a file and
 * fsyncs it, again and again; the thread waits for the disk in D state. */
#include <fcntl.h>
#include <unistd.h>
#include "common.h"

static char block[256 * 1024];

__attribute__((noinline)) void flush_file(int fd) {
    RAW_SYSCALL3(SYS_lseek, fd, 0, SEEK_SET);
    RAW_SYSCALL3(SYS_write, fd, (long)block, sizeof block);
    RAW_SYSCALL3(SYS_fsync, fd, 0, 0);
}

__attribute__((noinline)) void flush_loop(int fd, double seconds) {
    double end = now() + seconds;
    for (unsigned long i = 0; now() < end; i++) {
        block[i % sizeof block] ^= 1; /* every write dirties the page cache */
        flush_file(fd);
    }
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return 1;
    flush_loop(fd, argc > 2 ? atof(argv[2]) : 1e9);
    close(fd);
    unlink(argv[1]);
    return 0;
}
