"""Fault injection for tests, through the real code paths.

BENCH_FAULT=KIND:STEP makes a run misbehave at global training step STEP (0-based):
  oom:STEP    raise a real torch.OutOfMemoryError, as the CUDA allocator does
  nan:STEP    multiply that step's loss by NaN, so NaN gradients reach the weights
  hang:STEP   sleep forever, as a deadlocked collective or data stall would
  crash:STEP  raise a RuntimeError
The run then records what the harness really does with such a failure. Never set in production.
"""
import os
import time

import torch

from .config import BenchError

KINDS = ("oom", "nan", "hang", "crash")


def parse(spec=None):
    spec = os.environ.get("BENCH_FAULT", "") if spec is None else spec
    if not spec:
        return None
    kind, _, step = spec.partition(":")
    if kind not in KINDS or not step.isdigit():
        raise BenchError(f"BENCH_FAULT={spec!r} is not KIND:STEP with KIND one of {', '.join(KINDS)}")
    return kind, int(step)


def inject(fault, step, loss):
    """Called once per step with the step's loss; returns the loss to back-propagate."""
    kind, at = fault
    if step != at:
        return loss
    if kind == "oom":
        raise torch.OutOfMemoryError(f"CUDA out of memory (injected by BENCH_FAULT=oom:{at})")
    if kind == "nan":
        return loss * float("nan")
    if kind == "crash":
        raise RuntimeError(f"injected crash (BENCH_FAULT=crash:{at})")
    while True:  # hang
        time.sleep(1)
