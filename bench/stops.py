"""A stop (SIGTERM, Ctrl-C) that comes while `bench run` is still starting (importing torch, reading
its flags) is held here rather than killing the process before it has a row to write: the run takes
it over and records itself `interrupted` (bench/runner.py). Only the `bench run` process holds;
`import bench` from a user's program never touches its signals."""
import os
import signal

_held, _saved = [], {}


class Interrupted(Exception):
    pass


def exception(signum):
    """What a stop raises in the run it ends: Ctrl-C as Python raises it, SIGTERM as Interrupted."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Interrupted("interrupted by SIGTERM")


def hold():
    for sig in (signal.SIGTERM, signal.SIGINT):
        if sig == signal.SIGINT and signal.getsignal(sig) is not signal.default_int_handler:
            continue  # started with Ctrl-C ignored (a sweep's child): it stays ignored
        _saved[sig] = signal.signal(sig, lambda signum, frame: _held.append(signum))


def take():
    """The signals held so far, for the run to record; the handlers are back as they were."""
    for sig, handler in _saved.items():
        signal.signal(sig, handler)
    _saved.clear()
    taken = list(_held)
    _held.clear()
    return taken


def release():
    """Where no run will record them: the handlers back and each held stop delivered now."""
    for signum in take():
        os.kill(os.getpid(), signum)
