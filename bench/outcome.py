"""A run's status and error text from the exception that ended it (bench/runner.py records them)."""
import traceback

import torch

from . import stops


class Diverged(Exception):
    pass


def classify(exc):
    """(status, message) for an exception that ended a run."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text.lower() \
            or "can't allocate memory" in text:
        return "oom", text
    if isinstance(exc, Diverged):
        return "diverged", str(exc)
    if isinstance(exc, (stops.Interrupted, KeyboardInterrupt)):
        return "interrupted", str(exc) or "interrupted by SIGINT (Ctrl-C)"  # the CLI exits 130 on it
    tb = traceback.format_exc().strip().splitlines()
    return "crashed", "\n".join(tb[-12:])
