"""A Python stack of a known depth: `level` calls itself DEPTH times, then
spins. Arguments: DEPTH SECONDS."""
import sys
import time


def spin(seconds):
    end = time.time() + seconds
    total = 0
    while time.time() < end:
        for i in range(1000):
            total += i
    return total


def level(depth, seconds):
    if depth == 0:
        return spin(seconds)
    result = level(depth - 1, seconds)
    return result


level(int(sys.argv[1]), float(sys.argv[2]))
