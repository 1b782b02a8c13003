/* wl-burst: runs PROGRAM (argv[1]) COUNT (argv[2]) times, one after
 * another, each as a fresh process (fork + exec), waiting for each. */
#include <sys/wait.h>
#include <unistd.h>
#include "common.h"

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    int count = atoi(argv[2]);
    for (int i = 0; i < count; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            execl(argv[1], argv[1], (char *)NULL);
            _exit(127);
        }
        waitpid(pid, NULL, 0);
    }
    return 0;
}
