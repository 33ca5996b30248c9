"""Cell claims (bench/claims.py): one holder at a time across processes, in both mechanisms;
stale file claims are taken over; the mechanism follows the file system."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from bench import claims
from bench.config import BenchError

from .conftest import ROOT

HOLD = """
import sys, time
from pathlib import Path
from bench import claims
d, go, hold = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
with claims.claim(d, "cell") as c:
    print("got" if c is not None else "busy", flush=True)
    if c is not None:
        time.sleep(hold)
"""


def holders(tmp_path, mode, n=4, hold=3.0):
    """Start n processes that race for one cell at the same instant; their answers."""
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_CLAIMS": mode}
    procs = [subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "r"), str(go), str(hold)],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    for p in procs:  # every one waits at the line before any starts
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    return [p.communicate(timeout=120)[0].strip() for p in procs]


@pytest.mark.parametrize("mode", ["flock", "file"])
def test_one_holder_among_racing_processes(tmp_path, mode):
    answers = holders(tmp_path, mode)
    assert sorted(answers) == ["busy", "busy", "busy", "got"], answers
    with claims.claim(tmp_path / "r", "cell") as c:  # released by its holder: free again
        assert c is not None


@pytest.mark.parametrize("mode", ["flock", "file"])
def test_holder_is_named_while_held_and_none_after(tmp_path, mode, monkeypatch):
    monkeypatch.setenv("BENCH_CLAIMS", mode)
    r = tmp_path / "r"
    assert claims.holder(r, "cell") is None
    with claims.claim(r, "cell") as c:
        assert c is not None
        h = claims.holder(r, "cell")
        assert h["host"] == socket.gethostname() and h["pid"] == os.getpid() and not h.get("stale")
        assert (c.fds != ()) == (mode == "flock")  # an flock must be inherited by the run's process
    assert claims.holder(r, "cell") is None


def test_a_dead_holder_on_this_machine_is_stale_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CLAIMS", "file")
    monkeypatch.setenv("BENCH_CLAIM_STALE_S", "3600")  # so only the dead-pid rule can free it
    go = tmp_path / "go"
    go.touch()
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "r"), str(go), "600"], stdout=subprocess.PIPE,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.stdout.readline().strip() == "ready" and p.stdout.readline().strip() == "got"
    with claims.claim(tmp_path / "r", "cell") as c:
        assert c is None  # alive: held
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert claims.holder(tmp_path / "r", "cell")["stale"]
    with claims.claim(tmp_path / "r", "cell") as c:
        assert c is not None
        assert json.loads((tmp_path / "r" / ".locks" / "cell.claim").read_text())["pid"] == os.getpid()


def test_a_claim_from_another_machine_is_stale_when_its_heartbeat_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CLAIMS", "file")
    monkeypatch.setenv("BENCH_CLAIM_STALE_S", "300")
    locks = tmp_path / ".locks"
    locks.mkdir()
    f = locks / "cell.claim"
    f.write_text(json.dumps({"host": "node-elsewhere", "pid": 1, "start": 5, "nonce": "theirs"}))
    with claims.claim(tmp_path, "cell") as c:
        assert c is None  # fresh heartbeat: held, whatever pid 1 is here
    old = time.time() - 400
    os.utime(f, (old, old))
    with claims.claim(tmp_path, "cell") as c:
        assert c is not None and json.loads(f.read_text())["nonce"] != "theirs"
    assert not f.exists() and not list(locks.glob("*broken*"))


@pytest.mark.parametrize("fstype,options,expected", [
    ("ext4", "rw,relatime", "flock"),
    ("nfs4", "rw,vers=4.2,local_lock=none", "flock"),
    ("nfs", "rw,vers=3,local_lock=flock", "file"),
    ("nfs", "rw,vers=3,nolock", "file"),
    ("lustre", "rw,flock,lazystatfs", "flock"),
    ("lustre", "rw,localflock", "file"),
    ("lustre", "rw,lazystatfs", "file"),
    ("fuse.sshfs", "rw", "file"),
    ("gpfs", "rw", "file"),
])
def test_mechanism_follows_the_file_system(tmp_path, monkeypatch, fstype, options, expected):
    monkeypatch.delenv("BENCH_CLAIMS", raising=False)
    (tmp_path / "shared" / "results").mkdir(parents=True)
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/vda / ext4 rw 0 0\nserver:/x {tmp_path}/shared {fstype} {options} 0 0\n")
    assert claims.mode(tmp_path / "shared" / "results" / "new", mounts)[0] == expected
    assert claims.mode(tmp_path / "elsewhere", mounts)[0] == "flock"


def test_bench_claims_forces_the_mechanism(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CLAIMS", "file")
    assert claims.mode(tmp_path) == ("file", "BENCH_CLAIMS")
    monkeypatch.setenv("BENCH_CLAIMS", "lockd")
    with pytest.raises(BenchError, match="BENCH_CLAIMS must be flock, file or auto"):
        claims.mode(tmp_path)
