"""Cell claims: at most one process anywhere runs a sweep cell at a time.

    with claims.claim(results_dir, key) as c:
        if c is None:            # someone else runs it
            ...
        isolate.run(..., pass_fds=c.fds)   # the child keeps the claim alive as long as it lives

Two mechanisms, chosen per results directory (`mode`):

- "flock": an flock on RESULTS/.locks/<key>.lock. The kernel drops it when the last holder dies,
  so a killed sweep never leaves a claim behind. Safe where flock is shared between machines:
  local file systems, NFS (Linux emulates flock with NFS byte-range locks, which the server
  arbitrates) unless mounted with local_lock=flock/all or nolock, and Lustre mounted with `-o flock`.
- "file": an atomic create (O_CREAT|O_EXCL) of RESULTS/.locks/<key>.claim holding the holder's
  host, pid and the pid's start time; the holder touches it every HEARTBEAT_S. A claim is stale,
  and taken over, when its holder is on this host and gone, or its heartbeat is older than
  BENCH_CLAIM_STALE_S (default STALE_S, at least 2 x HEARTBEAT_S). Used wherever flock is local to a
  machine or unknown (Lustre without `-o flock`, NFS with local locks, CIFS, FUSE, GPFS, BeeGFS, ...).

BENCH_CLAIMS=flock|file forces one (set it alike on every machine sharing the directory).
"""
import contextlib
import fcntl
import json
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HEARTBEAT_S = 30
STALE_S = 300
# file systems whose flock is the machine's own (and so is right: one machine uses them)
LOCAL_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "tmpfs", "ramfs", "overlay", "jfs",
            "reiserfs", "bcachefs", "nilfs2", "hfsplus", "apfs"}


@dataclass
class Claim:
    fds: tuple = ()              # what the child must inherit (pass_fds)
    release: callable = field(default=lambda: None, repr=False)


def mode(results_dir, mounts="/proc/mounts"):
    """("flock" | "file", why): the claim mechanism for this directory."""
    stale_s()  # checked here too, whatever the mode: a bad value fails --status and a sweep's first claim
    forced = os.environ.get("BENCH_CLAIMS", "auto")
    if forced in ("flock", "file"):
        return forced, "BENCH_CLAIMS"
    if forced != "auto":
        from .config import BenchError  # imported here: this module stays light (no torch) for its tests
        raise BenchError(f"BENCH_CLAIMS must be flock, file or auto, got {forced!r}")
    fstype, options = mount_of(results_dir, mounts)
    return mode_for_fs(fstype, options)


def stale_s():
    """BENCH_CLAIM_STALE_S in seconds, else STALE_S. Under two heartbeats, a live holder's claim would go
    stale between its heartbeats and another host would take it over: refused, as is what is not a number."""
    raw = os.environ.get("BENCH_CLAIM_STALE_S")
    if raw is None:
        return STALE_S
    try:
        v = float(raw)
    except ValueError:
        v = float("nan")
    if not v >= 2 * HEARTBEAT_S:  # NaN too
        from .config import BenchError
        raise BenchError(f"BENCH_CLAIM_STALE_S must be a number of seconds >= {2 * HEARTBEAT_S} (twice the claims' "
                         f"{HEARTBEAT_S} s heartbeat), got {raw!r}; set it so, or unset it for {STALE_S} s")
    return v


def mode_for_fs(fstype, options):
    opts = set(options.split(","))
    if fstype in ("nfs", "nfs4"):
        local = {"local_lock=flock", "local_lock=all", "nolock"} & opts
        return ("file", f"nfs mounted with {sorted(local)[0]}: flock is local") if local else \
            ("flock", "nfs: flock is a server-arbitrated byte-range lock")
    if fstype == "lustre":
        return ("flock", "lustre mounted with -o flock") if "flock" in opts else \
            ("file", "lustre without -o flock: flock is local or off")
    if fstype in LOCAL_FS:
        return "flock", f"{fstype}: a local file system"
    return "file", f"{fstype or 'unknown'}: flock is not known to be shared between machines"


def mount_of(path, mounts="/proc/mounts"):
    """(fstype, options) of the mount holding `path` (its nearest existing ancestor)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    p = str(p.resolve())
    best = ("", "", "")
    try:
        lines = Path(mounts).read_bytes().splitlines()
    except OSError:
        return "", ""
    for line in lines:
        parts = [os.fsdecode(unescape(x)) for x in line.split()]
        if len(parts) < 4:
            continue
        point = parts[1]
        inside = p == point or p.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):  # the last, longest match is the visible mount
            best = (point, parts[2], parts[3])
    return best[1], best[2]


def unescape(field):
    """A /proc/mounts field's bytes: the kernel writes a space, tab, newline and backslash as \\NNN (octal)
    and every other byte as it is, UTF-8 names included, so only those escapes are decoded, on bytes."""
    return re.sub(rb"\\([0-3][0-7]{2})", lambda m: bytes([int(m[1], 8)]), field)


@contextlib.contextmanager
def claim(results_dir, key):
    """Yields a Claim, or None when another process holds the cell."""
    locks = Path(results_dir) / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    kind, _ = mode(results_dir)
    c = _flock(locks / f"{key}.lock") if kind == "flock" else _file_claim(locks / f"{key}.claim")
    try:
        yield c
    finally:
        if c is not None:
            c.release()


def holder(results_dir, key):
    """Who holds the cell now: {"host", "pid", ...} (empty when unknown), or None if nobody.
    A stale file claim is returned with "stale": True (the next sweep takes it over)."""
    locks = Path(results_dir) / ".locks"
    kind, _ = mode(results_dir)
    if kind == "file":
        path = locks / f"{key}.claim"
        info = _read(path)
        if info is None and not path.exists():
            return None
        return {**(info or {}), "stale": _stale(path, info)}
    try:
        f = open(locks / f"{key}.lock")
    except FileNotFoundError:
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(locks / f"{key}.lock") or {}
        fcntl.flock(f, fcntl.LOCK_UN)
        return None


def me():
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid()),
            "since": time.time(), "nonce": uuid.uuid4().hex}


# --- flock ----------------------------------------------------------------------------------------

def _flock(path):
    f = open(path, "a+")
    for attempt in range(5):  # a `--status` probe holds the lock for microseconds: try again briefly
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            time.sleep(0.02)
    else:
        f.close()
        return None
    f.truncate(0)
    f.write(json.dumps(me()))  # for `--status`: who runs it
    f.flush()
    return Claim(fds=(f.fileno(),), release=f.close)


# --- claim files ----------------------------------------------------------------------------------

def _file_claim(path):
    for _ in range(3):  # a stale claim broken here, then ours
        info = me()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not _break_if_stale(path):
                return None
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(info))
            f.flush()
            os.fsync(f.fileno())
        return _held(path, info["nonce"])
    return None


def _held(path, nonce):
    stop = threading.Event()

    def beat():
        while not stop.wait(HEARTBEAT_S):
            if (_read(path) or {}).get("nonce") == nonce:
                with contextlib.suppress(OSError):
                    os.utime(path)

    t = threading.Thread(target=beat, daemon=True, name="claim-heartbeat")
    t.start()

    def release():
        stop.set()
        if (_read(path) or {}).get("nonce") == nonce:  # never remove a claim that is no longer ours
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return Claim(fds=(), release=release)


def _break_if_stale(path):
    """Remove the claim at `path` if it is stale; True if it is gone (by us or its holder).
    Two breakers cannot both succeed: each first hard-links the claim to a name made from the
    stale holder's nonce, which only one link can take; the winner checks that the file it linked
    is still that holder's before removing it."""
    info = _read(path)
    if info is None and not path.exists():
        return True
    if not _stale(path, info):
        return False
    tag = (info or {}).get("nonce") or f"unreadable-{_mtime(path)}"
    marker = path.with_name(f"{path.name}.broken-{tag}")
    try:
        os.link(path, marker)
    except FileExistsError:
        return False  # another process is breaking it
    except FileNotFoundError:
        return True   # its holder let go meanwhile
    except OSError as e:  # EPERM, ENOTSUP: a rename instead could move a live claim that replaced the stale one
        from .config import BenchError
        raise BenchError(f"cannot take over the stale claim {path}: hard-linking it failed ({e.strerror}: the file "
                         "system has no hard links, or the claim is another user's); remove it by hand once its "
                         "holder is gone, or set BENCH_CLAIMS=flock if flock is shared between the machines") from None
    try:
        if (_read(marker) or {}).get("nonce") != (info or {}).get("nonce"):
            return False  # the claim was replaced by a live one meanwhile: leave it
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return True
    finally:
        marker.unlink()


def _stale(path, info):
    if info and info.get("host") == socket.gethostname():
        if _start_time(info.get("pid")) != info.get("start"):
            return True   # its holder on this machine is gone (or the pid is another process now)
    age = _fs_now(path.parent) - _mtime(path)
    return age > stale_s()


def _fs_now(d):
    """The file system's clock (a shared server's, on NFS), so heartbeats from other machines
    compare without trusting their clocks to agree with ours."""
    probe = d / f".clock.{socket.gethostname()}.{os.getpid()}.{threading.get_ident()}"
    try:
        probe.touch()
        return probe.stat().st_mtime
    except OSError:
        return time.time()
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _mtime(path):
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _read(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _start_time(pid):
    """A process's start time in clock ticks since boot (None if there is no such process): with
    the pid it names one process, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, TypeError, IndexError):
        return None
