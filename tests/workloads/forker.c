/* wl-forker: forks; the parent burns in parent_work, the child in
 * child_work, for the same time; the parent waits for the child. */
#include <sys/wait.h>
#include <unistd.h>
#include "common.h"

__attribute__((noinline)) void burn(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        SPIN(100000);
}

__attribute__((noinline)) void child_work(double seconds) { burn(seconds); }
__attribute__((noinline)) void parent_work(double seconds) { burn(seconds); }

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    pid_t pid = fork();
    if (pid == 0) {
        child_work(seconds);
        return 0;
    }
    parent_work(seconds);
    waitpid(pid, NULL, 0);
    return 0;
}
