"""Four threads, each spinning in a function of its own (GIL or not, each
is on a CPU a quarter of the time). Argument: seconds to run."""
import sys
import threading
import time


def spin(seconds):
    end = time.time() + seconds
    total = 0
    while time.time() < end:
        for i in range(1000):
            total += i
    return total


def thread_north(seconds):
    spin(seconds)


def thread_south(seconds):
    spin(seconds)


def thread_east(seconds):
    spin(seconds)


def thread_west(seconds):
    spin(seconds)


seconds = float(sys.argv[1])
threads = [
    threading.Thread(target=f, args=(seconds,))
    for f in (thread_north, thread_south, thread_east, thread_west)
]
for t in threads:
    t.start()
for t in threads:
    t.join()
