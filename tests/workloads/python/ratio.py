"""75/25: rounds of random length, hot_a always three times hot_b's work,
both through the same `work`, so their shares are 75% and 25% exactly.
Argument: seconds to run."""
import random
import sys
import time


# Every iteration costs the same: `total += i * i` grew past one digit of
# CPython's ints sooner in long loops than in short ones, which made
# hot_a's iterations dearer than hot_b's (up to 75.8% where 75% was meant).
def work(units):
    total = 0
    for i in range(units * 1000):
        total ^= i
    return total


def hot_a(units):
    work(3 * units)
    return units


def hot_b(units):
    work(units)
    return units


def driver(seconds):
    end = time.time() + seconds
    while time.time() < end:
        units = random.randint(1, 8)
        hot_a(units)
        hot_b(units)


driver(float(sys.argv[1]))
