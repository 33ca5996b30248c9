"""Checks, before any work, that every place a command will write can be written.

A run that trains for hours and then cannot write its row loses the result; so `bench run`,
`sweep`, `maxbatch` and `infer` call `check_writable` first, and a path that cannot be written
is one line and exit 2 with nothing written.

The check probes the file system rather than reading permission bits: root ignores the bits,
and a read-only mount, /proc or /sys refuse writes whatever the bits say. A probe is a
temporary entry created and removed at once in the directory (or in the nearest directory that
exists, when the target is still to be created), so a failed check leaves nothing behind and a
successful one creates nothing either.
"""
import os
import tempfile
from pathlib import Path

from .config import BenchError

RUN_SUBDIRS = ("runs", "epochs")
SWEEP_SUBDIRS = ("runs", "epochs", ".locks", "logs")


def check_writable(results_dir, save=None, subdirs=RUN_SUBDIRS, flag="--results"):
    """Raise BenchError unless RESULTS_DIR and its SUBDIRS, and the SAVE path, can be written."""
    results_dir = Path(results_dir)
    checked = set()
    for d in (results_dir, *(results_dir / s for s in subdirs)):
        where = _check_dir(d, flag)
        if where in checked:
            continue
        checked.add(where)
        _probe(where, flag, d)
    if save:
        _check_save(Path(save))


def _check_dir(d, flag):
    """The directory to probe for D: D itself when it exists, else its nearest existing ancestor."""
    if d.exists() or d.is_symlink():
        if not d.is_dir():
            raise BenchError(f"{flag} {d} is not a directory (a file is in the way); give a directory path")
        return d
    parent = _nearest_existing(d)
    if not parent.is_dir():
        raise BenchError(f"{flag} {d} cannot be created: {parent} is a file, not a directory; "
                         f"give another path")
    return parent


def _nearest_existing(p):
    p = Path(os.path.abspath(p))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe(where, flag, wanted):
    try:
        tmp = tempfile.mkdtemp(prefix=".bench-write-check-", dir=where)
        os.rmdir(tmp)
    except OSError as e:
        what = "cannot write to" if Path(where) == Path(wanted) else f"cannot create {wanted}: cannot write to"
        raise BenchError(f"{flag} {what} {where} ({e.strerror or e}); give a writable path") from None


def _check_save(save):
    if save.is_dir():
        raise BenchError(f"--save {save} is a directory; give a file path such as {save / 'model.pt'}")
    parent = save.parent
    _probe(_check_dir(parent, "--save"), "--save", parent)
