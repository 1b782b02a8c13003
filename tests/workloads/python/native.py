"""A C extension under its Python caller: compress_all hands zlib the
work, so its samples are in zlib's native code (deflate) below it.
Argument: seconds to run."""
import sys
import time
import zlib

DATA = bytes(range(256)) * 4096


def compress_all(seconds):
    end = time.time() + seconds
    while time.time() < end:
        zlib.compress(DATA, 9)


compress_all(float(sys.argv[1]))
