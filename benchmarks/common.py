"""Helpers shared by the benchmark scripts: arguments, the fingerprint, and writing a result JSON."""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.config import BenchError  # noqa: E402
from bench.measure import fingerprint  # noqa: E402


def parser(doc, smoke=True, data=True, device=True):
    """The shared flags; smoke=False for a script with no tiny sizes of its own, data/device=False for
    one that reads no images or picks no device (its --help must not offer a flag it would ignore). DOC is the script's whole docstring: its first line alone stops
    mid-sentence, and the rest says what is timed and how to reproduce it."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if data:
        p.add_argument("--data", default=os.environ.get("BENCH_DATA"), help="CIFAR-10 source (default $BENCH_DATA)")
    if device:
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="default auto: cuda when a GPU is visible, else cpu")
    if smoke:
        p.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs, measures nothing")
    p.add_argument("--out", help="also write the figures as JSON here")
    return p


def ints(text):
    """argparse type of a comma-separated list of integers, so a typo is a usage error, not a traceback."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def positive(text):
    """argparse type of a count that must be at least 1 (0 would divide by zero or time nothing)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return n


def guard(main):
    """Runs MAIN; a BenchError is the user's input (no data there, unknown recipe): one line and exit
    2, as `bench` itself answers, not a traceback."""
    try:
        main()
    except BenchError as e:
        print(f"{Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
        sys.exit(2)


def device_of(name):
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def save(path, name, figures, device, args):
    """Figures with their fingerprint and the command that produced them."""
    if not path:
        return
    # every setting in force, defaults included: the command line alone does not say what a default was
    doc = {"benchmark": name, "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
           "settings": dict(vars(args)), "smoke": bool(getattr(args, "smoke", False)), "figures": figures,
           "fingerprint": fingerprint(device, 1)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1, default=str) + "\n")
