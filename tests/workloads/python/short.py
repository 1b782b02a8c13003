"""A process that lives 200 ms, all of it in short_lived_python."""
import time


def short_lived_python():
    end = time.time() + 0.2
    total = 0
    while time.time() < end:
        for i in range(1000):
            total += i
    return total


short_lived_python()
