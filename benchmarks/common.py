"""Helpers shared by the benchmark scripts: arguments, the fingerprint, and writing a result JSON."""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import fingerprint  # noqa: E402


def parser(description, smoke=True):
    """The shared flags; smoke=False for a script with no tiny sizes of its own (its --help must not
    offer a flag it would ignore)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default=os.environ.get("BENCH_DATA"), help="CIFAR-10 source (default $BENCH_DATA)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    if smoke:
        p.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs, measures nothing")
    p.add_argument("--out", help="also write the figures as JSON here")
    return p


def device_of(name):
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def save(path, name, figures, device, args):
    """Figures with their fingerprint and the command that produced them."""
    if not path:
        return
    doc = {"benchmark": name, "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
           "smoke": bool(getattr(args, "smoke", False)), "figures": figures, "fingerprint": fingerprint(device, 1)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1, default=str) + "\n")
