"""2:1 off-CPU: sleep_long sleeps 20 ms, sleep_short 10 ms, in turn.
Argument: seconds to run."""
import sys
import time


def sleep_long():
    time.sleep(0.02)


def sleep_short():
    time.sleep(0.01)


def driver(seconds):
    end = time.time() + seconds
    while time.time() < end:
        sleep_long()
        sleep_short()


driver(float(sys.argv[1]))
