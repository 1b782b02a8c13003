/* wl-jit: copies a spin loop into anonymous executable memory, as a JIT
 * would, prints its address and size, then runs it forever. With argument
 * "map", it also writes /tmp/perf-PID.map naming the code jit_spin_loop. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const unsigned char code[] = {0xeb, 0xfe}; /* 1: jmp 1b */

int main(int argc, char **argv) {
    size_t size = 4096;
    unsigned char *jit = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (jit == MAP_FAILED)
        return 1;
    memcpy(jit, code, sizeof code);
    mprotect(jit, size, PROT_READ | PROT_EXEC);
    if (argc > 1 && strcmp(argv[1], "map") == 0) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/perf-%d.map", getpid());
        FILE *map = fopen(path, "w");
        fprintf(map, "%lx %zx jit_spin_loop\n", (unsigned long)jit, sizeof code);
        fclose(map);
    }
    printf("%lx %zx\n", (unsigned long)jit, sizeof code);
    fflush(stdout);
    ((void (*)(void))jit)();
    return 0;
}
