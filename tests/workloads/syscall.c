/* wl-syscall: main -> do_reads -> read_zero, which enters the kernel
 * directly (no libc wrapper, whose missing frame pointer would hide
 * read_zero's caller): most of its time is kernel time under read(2). */
#include <fcntl.h>
#include <sys/syscall.h>
#include "common.h"

static char buffer[1 << 20];

__attribute__((noinline)) long read_zero(int fd, char *buf, unsigned long len) {
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(SYS_read), "D"(fd), "S"(buf), "d"(len)
                     : "rcx", "r11", "memory");
    return ret;
}

__attribute__((noinline)) void do_reads(int fd, double seconds) {
    double end = now() + seconds;
    while (now() < end)
        read_zero(fd, buffer, sizeof buffer);
}

int main(int argc, char **argv) {
    int fd = open("/dev/zero", O_RDONLY);
    if (fd < 0)
        return 1;
    do_reads(fd, seconds_arg(argc, argv));
    return 0;
}
