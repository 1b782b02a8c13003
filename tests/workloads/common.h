/* Shared by the workloads: a clock, and CPU work the compiler cannot fold. */
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Seconds to run: the first argument, or (almost) forever. */
static double seconds_arg(int argc, char **argv) {
    return argc > 1 ? atof(argv[1]) : 1e9;
}

/* A dependent multiply-add chain: fixed cost per iteration, no shortcut. */
#define SPIN(iterations)                                          \
    do {                                                          \
        unsigned long x_ = sink;                                  \
        for (long i_ = 0; i_ < (iterations); i_++)                \
            x_ = x_ * 6364136223846793005UL + 1442695040888963407UL; \
        sink = x_;                                                \
    } while (0)

/* Raw system calls, as macros: the C library's wrappers have no frame
 * pointer, which would hide the caller of the function that makes the
 * call, and a helper function would show up as its own (inlined) frame. */
#include <sys/syscall.h>

#define RAW_SYSCALL3(nr, a, b, c)                                          \
    ({                                                                     \
        long ret_;                                                         \
        __asm__ volatile("syscall"                                         \
                         : "=a"(ret_)                                      \
                         : "a"((long)(nr)), "D"((long)(a)), "S"((long)(b)), \
                           "d"((long)(c))                                  \
                         : "rcx", "r11", "memory");                        \
        ret_;                                                              \
    })

#define RAW_SLEEP_MS(ms)                                                   \
    do {                                                                   \
        struct timespec ts_ = {(ms) / 1000, ((ms) % 1000) * 1000000L};     \
        RAW_SYSCALL3(SYS_nanosleep, &ts_, 0, 0);                           \
    } while (0)
