// wl-cpp: all its time in profiling::Worker::spin(), a mangled C++ name.
#include <ctime>

static volatile unsigned long sink;

namespace profiling {
struct Worker {
    __attribute__((noinline)) void spin() {
        unsigned long x = sink;
        for (long i = 0; i < 100000; i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
        sink = x;
    }
};
} // namespace profiling

int main() {
    profiling::Worker worker;
    for (;;)
        worker.spin();
}
