"""A sweep's edges: what another process does between two of its steps (a claim recorded meanwhile, a
temporary renamed after the glob), the environment it is given (mount points, claim settings, file
systems) and the settings it groups its cells by."""
import contextlib
import dataclasses
import errno
import functools
import json
import os
import socket
import sys
from datetime import datetime, timezone

import pytest

from bench import claims, isolate, results, sweep
from bench.config import FIELDS, BenchError, RunConfig
from bench.row import base_row

from .conftest import TINY_SWEEP, bench, write


def record(res, cell, run_id, status):
    """A run row for CELL, written here rather than trained (a test's stand-in for a run)."""
    row = base_row(cell.cfg, run_id, "cpu", 1, datetime.now(timezone.utc))
    results.write(res, "runs", run_id, [{**row, "status": status}])


def one_cell(tmp_path):
    s = write(tmp_path, TINY_SWEEP.format(epochs=1).replace("seeds = [0, 1]", "seeds = [0]")
              .replace("inplace = [true, false]", "inplace = [true]"))
    [cell] = sweep.expand(*sweep.load(s), check_gpu=False)
    return cell


# --- bench/isolate.py -----------------------------------------------------------------------------

def test_a_time_limit_stop_leaves_the_seeds_after_it_interrupted_not_started(tmp_path, monkeypatch):
    """Seeds 0, 1, 2 in one child; the parent's limit runs out during seed 0 and the child stops on
    SIGTERM, recording seed 0 interrupted (written here before the child starts: the parent reads it
    after the child is gone, either way). Seed 0 is the time limit's; seeds 1 and 2 never started, so
    they are `interrupted`, which --retry-interrupted runs again, not a timeout each that it would not."""
    monkeypatch.setattr(isolate, "command", lambda *a: [sys.executable, "-c", "import time; time.sleep(600)"])
    monkeypatch.setattr(isolate, "GRACE_S", 0)
    cfg = RunConfig(model="resnet9", model_kwargs={"width": 0.125}, device="cpu", epochs=1, time_limit_s=0.1)
    now = datetime.now(timezone.utc)
    row = {**base_row(cfg, "r0", "cpu", 1, now, 0, 0, "s", "sid"), "finished_at": now}
    results.write(tmp_path, "runs", "r0", [{**row, "status": "interrupted", "error": "stopped by SIGTERM"}])
    rows, processes = isolate.run_seeds(cfg, [0, 1, 2], None, tmp_path, ["r0", "r1", "r2"], sweep="s",
                                        sweep_run_id="sid")
    assert processes == 1 and [r["status"] for r in rows] == ["timeout", "interrupted", "interrupted"], rows
    assert "exceeded the time limit of 0.1 s" in rows[0]["error"]
    assert all("not started" in r["error"] for r in rows[1:]), [r["error"] for r in rows]
    on_disk = results.read(tmp_path, "runs").set_index("run_id").status
    assert on_disk.to_dict() == {"r0": "timeout", "r1": "interrupted", "r2": "interrupted"}
    assert [sweep._retry(False, True, [s]) for s in on_disk] == [False, True, True]


# --- bench/results.py -----------------------------------------------------------------------------

def test_a_temporary_gone_between_the_glob_and_its_stat_is_passed_over(tmp_path, monkeypatch):
    """Another process renames a temporary into place (its write finished) just after the glob
    listed it: the cleaning goes on to the next file, instead of a FileNotFoundError at the sweep's start."""
    d = tmp_path / "runs"
    d.mkdir()
    renamed, left = (d / f".{n}.parquet.{pid}@{results._HOST}.tmp" for n, pid in (("a", 11111), ("b", 22222)))
    for p in (renamed, left):
        p.write_bytes(b"PAR1 half")

    def writer_finishes(pid):  # called between the glob and the stat: where the race is
        if pid == 11111:
            os.replace(renamed, d / "a.parquet")
        return False
    monkeypatch.setattr(results, "_pid_alive", writer_finishes)
    assert results.clean_temporaries(tmp_path) == [left] and not left.exists()
    assert (d / "a.parquet").exists()


# --- bench/claims.py ------------------------------------------------------------------------------

def test_a_mount_point_with_utf8_and_a_space_is_found(tmp_path, monkeypatch):
    """/proc/mounts writes a name's UTF-8 bytes as they are and a space as \\040: the NFS mount at
    `mnt données` (local locks: flock is this machine's) is the one holding the results, not `/`."""
    monkeypatch.delenv("BENCH_CLAIMS", raising=False)
    monkeypatch.delenv("BENCH_CLAIM_STALE_S", raising=False)
    point = tmp_path.resolve() / "mnt données"
    (point / "results").mkdir(parents=True)
    mounts = tmp_path / "mounts"
    mounts.write_bytes(b"/dev/sda1 / ext4 rw,relatime 0 0\n"
                       b"server:/export " + os.fsencode(point).replace(b" ", b"\\040")
                       + b" nfs4 rw,vers=4.2,local_lock=flock 0 0\n")
    assert claims.mount_of(point / "results", mounts) == ("nfs4", "rw,vers=4.2,local_lock=flock")
    assert claims.mode(point / "results", mounts)[0] == "file"
    assert claims.mount_of(tmp_path, mounts) == ("ext4", "rw,relatime")
    assert claims.unescape(b"a\\134b\\011c\\040d") == b"a\\b\tc d"


@pytest.mark.parametrize("code", [errno.EPERM, errno.EOPNOTSUPP], ids=["EPERM", "EOPNOTSUPP"])
def test_a_file_system_without_hard_links_is_one_line_not_a_traceback(tmp_path, monkeypatch, code):
    """A stale claim is broken through a hard link; where none can be made, the sweep stops with a
    BenchError (one line: what failed and what to do) rather than the OSError's traceback."""
    monkeypatch.setenv("BENCH_CLAIMS", "file")
    monkeypatch.delenv("BENCH_CLAIM_STALE_S", raising=False)
    locks = tmp_path / ".locks"
    locks.mkdir()
    claim = locks / "cell.claim"  # this host's, by a pid that is gone: stale at once
    claim.write_text(json.dumps({"host": socket.gethostname(), "pid": 2 ** 22 + 1, "start": 5, "nonce": "gone"}))

    def no_links(src, dst, *a, **k):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(os, "link", no_links)
    with pytest.raises(BenchError, match="cannot take over the stale claim .*hard-linking it failed") as e:
        with claims.claim(tmp_path, "cell"):
            pass
    assert "\n" not in str(e.value) and "BENCH_CLAIMS=flock" in str(e.value)
    assert json.loads(claim.read_text())["nonce"] == "gone"  # left as it was


@pytest.mark.parametrize("value", ["5m", "30", "nan"])
def test_a_bad_claim_stale_setting_stops_the_sweep_before_anything(value, tmp_path):
    """BENCH_CLAIM_STALE_S is read where a claim may be stale, midway through a sweep: "5m" was a
    ValueError there, and 30 s (one heartbeat) let another host take over a live claim. Both fail at
    the start, in one line that names the variable, the value and the least one allowed."""
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    p = bench("sweep", s, "--results", tmp_path / "r", "--dry-run", env={"BENCH_CLAIM_STALE_S": value}, check=2)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "BENCH_CLAIM_STALE_S must be a number of seconds >= 60" in lines[0], p.stderr
    assert repr(value) in lines[0] and not (tmp_path / "r").exists()


def test_a_bad_claim_stale_setting_stops_status_too(tmp_path, monkeypatch):
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    p = bench("sweep", s, "--status", tmp_path / "r", env={"BENCH_CLAIM_STALE_S": "5m"}, check=2)
    assert len(p.stderr.strip().splitlines()) == 1 and "BENCH_CLAIM_STALE_S" in p.stderr, p.stderr
    monkeypatch.setenv("BENCH_CLAIM_STALE_S", "120")
    assert claims.stale_s() == 120
    monkeypatch.delenv("BENCH_CLAIM_STALE_S")
    assert claims.stale_s() == claims.STALE_S


# --- bench/sweep.py -------------------------------------------------------------------------------

OTHER_VALUE = {"recipe": "dawn", "device": "auto", "eval_batch_size": 500, "time_limit_s": 900.0}


def test_settings_the_key_leaves_out_keep_cells_in_separate_processes(tmp_path):
    """A group's process runs every seed with its first cell's cfg: two [[cells]] of one configuration,
    seed 0 with a 60 s limit and seed 1 with 3600 s, ran seed 1 under 60 s. So any setting outside the
    configuration key splits the group."""
    assert set(OTHER_VALUE) == {n for n, f in FIELDS.items() if not f.metadata["key"]}
    s = write(tmp_path, '[base]\nmodel = "resnet9"\ndevice = "cpu"\n[[cells]]\nseeds = [0]\ntime_limit_s = 60\n'
                        '[[cells]]\nseeds = [1]\ntime_limit_s = 3600\n[[cells]]\nseeds = [2]\ntime_limit_s = 60\n')
    cells = sweep.expand(*sweep.load(s), check_gpu=False)
    groups = sweep.groups_of(cells, False)
    assert [[c.cfg.seed for c in g] for g in groups] == [[0, 2], [1]]
    assert [g[0].cfg.time_limit_s for g in groups] == [60, 3600]
    base = cells[0]
    for name, value in OTHER_VALUE.items():
        other = sweep.Cell(1, {}, dataclasses.replace(base.cfg, seed=1, **{name: value}))
        assert getattr(other.cfg, name) != getattr(base.cfg, name)
        assert dataclasses.replace(other.cfg, seed=0).key() == base.cfg.key()  # one configuration
        assert sweep.groups_of([base, other], False) == [[base], [other]], name
    same = sweep.Cell(1, {}, dataclasses.replace(base.cfg, seed=1))
    assert sweep.groups_of([base, same], False) == [[base, same]]  # a configuration's seeds still share one


@pytest.mark.parametrize("mode", ["flock", "file"])
def test_a_cell_recorded_meanwhile_is_let_go_at_once(tmp_path, monkeypatch, mode):
    """Not held until its group's process ends: meanwhile --status showed it running and another
    sweep with --retry-failed skipped it."""
    monkeypatch.setenv("BENCH_CLAIMS", mode)
    cell, res = one_cell(tmp_path), tmp_path / "r"
    record(res, cell, "run-0", "ok")
    retry = functools.partial(sweep._retry, True, False)
    with contextlib.ExitStack() as stack:
        lock, why = sweep._claim(stack, res, cell, retry, {})
        assert lock is None and why == "recorded meanwhile by another sweep"
        assert claims.holder(res, cell.claim) is None
        with claims.claim(res, cell.claim) as c:
            assert c is not None


def test_a_retry_does_not_repeat_another_sweeps_try_of_the_same_round(tmp_path, monkeypatch):
    """Two machines run one sweep with --retry-failed: the cell that failed before both started is
    retried once, by whichever claims it first; the other finds a run recorded since it planned and skips it."""
    monkeypatch.setenv("BENCH_CLAIMS", "file")
    cell, res = one_cell(tmp_path), tmp_path / "r"
    record(res, cell, "run-0", "crashed")
    seen = sweep.status_by_key(res)  # what both planned from
    retry = functools.partial(sweep._retry, True, False)
    with contextlib.ExitStack() as stack:
        lock, why = sweep._claim(stack, res, cell, retry, seen)
        assert lock is not None and why is None  # the failure both saw: retried
    record(res, cell, "run-1", "crashed")  # the other machine's retry, which failed too
    with contextlib.ExitStack() as stack:
        lock, why = sweep._claim(stack, res, cell, retry, seen)
        assert lock is None and why == "recorded meanwhile by another sweep"
        assert claims.holder(res, cell.claim) is None


def test_stop_after_forecasts_a_group_by_its_optimizer_steps():
    """--stop-after starts no group that would end past it. Forecast as the mean run so far, the
    lesson's batch-256 cell after the batch-512 baseline (twice the steps, launch-bound on a GPU)
    was due at half its time and was killed at the budget's end, its minutes lost."""
    base = sweep.Cell(0, {}, RunConfig(batch_size=512, epochs=10))
    half = [sweep.Cell(i, {}, dataclasses.replace(base.cfg, batch_size=256, seed=i)) for i in (0, 1)]
    work = [100.0, sweep._steps(base.cfg)]  # one baseline run took 100 s
    assert sweep.expected_s([base], work) == pytest.approx(100)
    assert sweep.expected_s(half, work) == pytest.approx(400)  # two runs of twice the steps
    subset = sweep.Cell(0, {}, dataclasses.replace(base.cfg, limit_train=10_000))
    assert sweep.expected_s([subset], work) == pytest.approx(20, rel=0.03)  # whole batches: 20 of 98
    assert sweep.expected_s(half, [0.0, 0]) == 0  # nothing measured yet: the first group always starts
