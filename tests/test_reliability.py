"""Faults through the real code paths, real signals, concurrent sweeps, hostile files."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench import results

from .conftest import ROOT, TINY, TINY_SWEEP, bench, write


def run_rows(results_dir):
    return pd.read_parquet(Path(results_dir) / "runs")


def all_files_readable(results_dir):
    for kind in ("runs", "epochs"):
        for p in (Path(results_dir) / kind).glob("*.parquet"):
            pq.read_table(p)  # raises on a corrupt file


# --- injected faults --------------------------------------------------------------------------

def test_oom_is_recorded_and_the_sweep_goes_on(small_data, tmp_path):
    s = write(tmp_path, TINY_SWEEP.format(epochs=2))
    p = bench("sweep", s, "--results", tmp_path / "r", "--data", small_data, env={"BENCH_FAULT": "oom:3"}, check=0)
    runs = run_rows(tmp_path / "r")
    assert len(runs) == 4 and set(runs.status) == {"oom"}, "every cell ran although each one failed"
    assert runs.error.str.contains("OutOfMemoryError").all() and runs.error.str.contains("oom:3").all()
    assert (runs.fault == "oom:3").all()
    assert p.stderr.count(": oom") == 4
    assert bench("verify", tmp_path / "r").returncode == 0


def test_nan_loss_is_recorded_as_diverged(small_data, tmp_path):
    p = bench("run", *TINY, "--data", small_data, "--results", tmp_path, env={"BENCH_FAULT": "nan:14"})
    assert p.returncode == 1
    r = run_rows(tmp_path).iloc[0]
    # step 14 is in epoch 2 (12 steps an epoch): epoch 1 finished and was kept
    assert r.status == "diverged" and "non-finite training loss in 10 of 12 steps of epoch 2" in r.error
    assert r.epochs_completed == 2 and len(pd.read_parquet(tmp_path / "epochs")) == 2


def test_hang_is_recorded_as_timeout(small_data, tmp_path):
    # no bound on the process's own time: on a busy machine its start alone can take a minute;
    # a hang that the limit did not stop would end in bench()'s timeout, and the row says why it ended
    p = bench("run", *TINY, "--time-limit", "15", "--data", small_data, "--results", tmp_path,
              env={"BENCH_FAULT": "hang:5"}, timeout=540)
    assert p.returncode == 1
    r = run_rows(tmp_path).iloc[0]
    assert r.status == "timeout" and "time limit of 15 s" in r.error


def test_crash_is_recorded_with_its_traceback(small_data, tmp_path):
    bench("run", *TINY, "--data", small_data, "--results", tmp_path, env={"BENCH_FAULT": "crash:2"})
    r = run_rows(tmp_path).iloc[0]
    assert r.status == "crashed" and "injected crash" in r.error and "Traceback" in r.error


def test_bad_fault_spec_is_bad_input(small_data, tmp_path):
    p = bench("run", *TINY, "--data", small_data, "--results", tmp_path, env={"BENCH_FAULT": "meteor:1"})
    assert p.returncode == 2 and "BENCH_FAULT" in p.stderr and not (tmp_path / "runs").exists()


# --- signals ----------------------------------------------------------------------------------

def start(args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "bench", *map(str, args)], cwd=ROOT, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for(cond, timeout=480, step=0.2):  # wide: tiny epochs take a minute when other processes keep the cores busy
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if cond():
            return True
        time.sleep(step)
    return False


def epochs_written(d):
    return len(list((Path(d) / "epochs").glob("*.parquet"))) if (Path(d) / "epochs").is_dir() else 0


def test_sigterm_mid_run_records_interrupted_with_its_epochs(small_data, tmp_path):
    proc = start(["run", *TINY, "--epochs", "30", "--data", small_data, "--results", tmp_path, "--no-progress-bar"])
    assert wait_for(lambda: epochs_written(tmp_path) and len(pd.read_parquet(tmp_path / "epochs")) >= 2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    r = run_rows(tmp_path).iloc[0]
    ep = pd.read_parquet(tmp_path / "epochs")
    assert r.status == "interrupted" and "SIGTERM" in r.error
    assert r.epochs_completed == len(ep) >= 2 and r.final_acc == ep.test_acc.iloc[-1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl_c"])
def test_an_interrupted_sweep_keeps_its_account(sig, small_data, tmp_path):
    """SIGTERM to the sweep, or Ctrl-C (SIGINT to its process group, as a terminal sends it) while a
    cell trains: one line says so, the run records itself interrupted, and the device-time account
    of what ran is written."""
    s = write(tmp_path, TINY_SWEEP.format(epochs=30).replace("inplace = [true, false]", "inplace = [true]"))
    res = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "sweep", s, "--results", res, "--data", small_data],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True,  # a terminal's SIGINT disposition, as test_cli's Ctrl-C test
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert wait_for(lambda: epochs_written(res))
    if sig == signal.SIGTERM:
        proc.send_signal(sig)
    else:
        os.killpg(proc.pid, sig)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig and "Traceback" not in out, (proc.returncode, out[-3000:])
    name = "SIGTERM" if sig == signal.SIGTERM else "SIGINT"
    assert out.count("sweep tiny: interrupted") == 1 and f"sweep tiny: interrupted by {name}" in out, out[-3000:]
    runs = run_rows(res)
    assert list(runs.status) == ["interrupted"] and name in runs.error.iloc[0]
    sweeps = pd.read_parquet(res / "sweeps")
    assert len(sweeps) == 1 and sweeps.runs.iloc[0] == 1, out[-3000:]
    assert sweeps.sweep_run_id.iloc[0] == runs.sweep_run_id.iloc[0]
    assert sweeps.train_time_s.iloc[0] == pytest.approx(runs.train_time_s.iloc[0]) and runs.train_time_s.iloc[0] > 0
    assert "device time:" in out


def test_a_child_stopped_before_its_first_row_leaves_its_seeds_pending(tmp_path, monkeypatch, request):
    """The sweep is stopped while its child is still starting (importing torch, say): nothing ran, so no
    row is written and the same command runs those seeds again (an interrupted row would need
    --retry-interrupted). A second Ctrl-C while the child is being stopped does not hang the sweep."""
    import threading

    from bench import isolate
    from bench.config import RunConfig
    monkeypatch.setattr(isolate, "command", lambda *a: [sys.executable, "-c", "import signal, time; "
                                                         "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
    # Ctrl-C at a terminal: a test run started in the background (`cmd &` in a script) inherits SIGINT ignored
    prev = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, prev))
    for delay in (1.0, 1.5):  # Ctrl-C, then another while the child (deaf to SIGTERM) is being stopped
        threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)).start()
    cfg = RunConfig(model="resnet9", model_kwargs={"width": 0.125}, device="cpu", epochs=1)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        isolate._child(cfg, [(0, "r0"), (1, "r1")], None, tmp_path, None, "s", "sid", None, None, None, (), False)
    assert time.monotonic() - t0 < 20  # not the 30 s SIGTERM grace
    assert results.read(tmp_path, "runs").empty


def test_sigkill_of_a_run_is_recorded_by_the_sweep(small_data, tmp_path):
    """SIGKILL the training process itself: the sweep records it as crashed, no file is corrupt."""
    s = write(tmp_path, TINY_SWEEP.format(epochs=30).replace("seeds = [0, 1]", "seeds = [0]")
              .replace("inplace = [true, false]", "inplace = [true]"))
    proc = start(["sweep", s, "--results", tmp_path / "r", "--data", small_data])
    assert wait_for(lambda: epochs_written(tmp_path / "r"))
    child = subprocess.run(["pgrep", "-f", "--", "--sweep tiny"], capture_output=True, text=True).stdout.split()
    assert child, "the run's own process"
    for pid in child:
        os.kill(int(pid), signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    r = run_rows(tmp_path / "r").iloc[0]
    assert r.status == "crashed" and "SIGKILL" in r.error and r.epochs_completed >= 1, out
    assert " (the run process ended with signal SIGKILL" in out, out  # why, not the run's last output
    all_files_readable(tmp_path / "r")


def test_sigkill_of_the_sweep_then_resume(small_data, tmp_path):
    # 20 epochs (about 0.3 s each here) so that the kill lands while the second cell trains, not after
    s = write(tmp_path, TINY_SWEEP.format(epochs=20))
    res = tmp_path / "r"
    proc = start(["sweep", s, "--results", res, "--data", small_data])
    # kill it while the second cell is training
    assert wait_for(lambda: (res / "runs").is_dir() and len(list((res / "runs").glob("*.parquet"))) >= 1
                    and epochs_written(res) >= 2)
    proc.kill()  # SIGKILL to the sweep alone, not to its child
    proc.communicate(timeout=120)
    # the orphaned run dies with its parent (PR_SET_PDEATHSIG) and records itself
    assert wait_for(lambda: subprocess.run(["pgrep", "-f", "--", "--sweep tiny"]).returncode != 0, 300)
    all_files_readable(res)
    before = run_rows(res)
    assert "interrupted" in set(before.status) and (before.status == "ok").sum() >= 1
    p = bench("sweep", s, "--results", res, "--data", small_data, "--retry-failed", check=0)
    runs = run_rows(res)
    ok = runs[runs.status == "ok"]
    assert len(ok) == 4 and ok.config_key.nunique() == 4, p.stderr
    all_files_readable(res)
    assert bench("verify", res).returncode == 0


def test_stale_temporaries_are_invisible_and_cleaned(small_data, tmp_path):
    """A write cut short by SIGKILL leaves `.NAME.PID.tmp`; this test stands one in for it."""
    res = tmp_path / "r"
    (res / "runs").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = res / "runs" / f".x.parquet.{dead.pid}.tmp"
    stale.write_bytes(b"PAR1 half a file")
    assert results.read(res, "runs").empty
    assert bench("verify", res).returncode == 0
    s = write(tmp_path, TINY_SWEEP.format(epochs=1).replace("seeds = [0, 1]", "seeds = [0]")
              .replace("inplace = [true, false]", "inplace = [true]"))
    p = bench("sweep", s, "--results", res, "--data", small_data, check=0)
    assert not stale.exists() and "removed a temporary file" in p.stderr


# --- concurrency ------------------------------------------------------------------------------

def test_two_sweeps_into_one_directory(small_data, tmp_path):
    s = write(tmp_path, TINY_SWEEP.format(epochs=1).replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    res = tmp_path / "r"
    a = start(["sweep", s, "--results", res, "--data", small_data])
    b = start(["sweep", s, "--results", res, "--data", small_data])
    out_a, _ = a.communicate(timeout=600)
    out_b, _ = b.communicate(timeout=600)
    runs = run_rows(res)
    assert len(runs) == 6 and runs.config_key.nunique() == 6 and set(runs.status) == {"ok"}, out_a + out_b
    assert runs.run_id.nunique() == 6
    all_files_readable(res)
    rep = bench("report", res, "--out", tmp_path / "rep", check=0)
    board = pd.read_csv(tmp_path / "rep" / "leaderboard.csv")
    assert board.runs.sum() == 6, rep.stderr


def test_a_cell_spelt_another_way_is_the_same_claim(small_data, tmp_path):
    """`div = 10` and `div = 10.0` are one cell with two config keys: while one sweep holds it, another
    that spells it the other way must skip it, not run it beside the first."""
    from bench import claims, sweep

    s = write(tmp_path, TINY_SWEEP.format(epochs=1).replace("seeds = [0, 1]", "seeds = [0]")
              .replace("inplace = [true, false]", "inplace = [true]"))
    res = tmp_path / "r"
    [cell] = sweep.expand(*sweep.load(s), check_gpu=False)
    [other] = sweep.expand(*sweep.load(s, ["div=10.0"]), check_gpu=False)
    assert cell.cfg.key() != other.cfg.key() and cell.claim == other.claim
    with claims.claim(res, cell.claim) as held:
        assert held is not None
        p = bench("sweep", s, "--set", "div=10.0", "--results", res, "--data", small_data, check=0)
    assert "being run by another sweep; skipped" in p.stderr, p.stderr
    assert results.read(res, "runs").empty


# --- readers ----------------------------------------------------------------------------------

def test_readers_survive_bad_files(tmp_path, small_data):
    res = tmp_path / "r"
    bench("run", *TINY, "--epochs", "1", "--data", small_data, "--results", res, check=0)
    good = next((res / "runs").glob("*.parquet"))
    blob = good.read_bytes()
    (res / "runs" / "truncated.parquet").write_bytes(blob[: len(blob) // 2])
    (res / "runs" / "notes.parquet").write_text("this is not parquet")
    old = pd.read_parquet(good).drop(columns=["wall_time_to_target_s", "energy_j", "clock", "fault"])
    old["schema_version"] = 0
    old["run_id"] = "older-run"
    pq.write_table(pa.Table.from_pandas(old, preserve_index=False), res / "runs" / "older-run.parquet")
    warnings = []
    df = results.read(res, "runs", warn=warnings.append)
    assert set(df.run_id) == {old.run_id.iloc[0], pd.read_parquet(good).run_id.iloc[0]}
    assert any("truncated.parquet" in w for w in warnings) and any("notes.parquet" in w for w in warnings)
    assert df.loc[df.run_id == "older-run", "wall_time_to_target_s"].isna().all()
    p = bench("report", res, "--out", tmp_path / "rep", check=0)
    assert "truncated.parquet" in p.stderr and "notes.parquet" in p.stderr
    assert "truncated.parquet" in (tmp_path / "rep" / "leaderboard.md").read_text()
    v = bench("verify", res)
    assert v.returncode == 1
    assert "truncated.parquet: unreadable" in v.stdout and "notes.parquet: unreadable" in v.stdout
    assert "older-run.parquet: unknown schema version 0" in v.stdout


def test_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    p = bench("report", tmp_path / "empty", "--out", tmp_path / "rep", check=2)  # an error, and nothing written
    assert "no run results in" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "rep").exists()
    p = bench("report", tmp_path / "nowhere")
    assert p.returncode == 2 and "results directory not found" in p.stderr
    assert results.read(tmp_path / "empty", "runs").empty


# --- security ---------------------------------------------------------------------------------

def test_names_cannot_leave_the_results_directory(tmp_path):
    for evil in ("../../escape", "/etc/passwd", "..", ".hidden", "a/../../b"):
        p = results.write(tmp_path / "r", "runs", evil, [{**results.new_row("runs"), "run_id": evil}])
        assert p.resolve().parent == (tmp_path / "r" / "runs").resolve()
        assert not p.name.startswith(".")
    assert not (tmp_path / "escape.parquet").exists()


def test_checkpoints_refuse_code(tmp_path):
    import torch

    from bench.config import BenchError
    from bench.infer import load_checkpoint

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "cifar-bench-checkpoint/1", "x": Payload()}, evil)
    with pytest.raises(BenchError, match="is not a cifar-bench checkpoint"):
        load_checkpoint(str(evil))
    assert not (tmp_path / "pwned").exists()


def test_no_shell_with_user_strings():
    for p in list((ROOT / "bench").glob("*.py")) + list((ROOT / "models").glob("*.py")):
        text = p.read_text()
        assert "shell=True" not in text and "os.system(" not in text, p


WRITER = """
import os, sys
from bench import results
rows = [{**results.new_row("runs"), "run_id": "r", "error": os.urandom(1000).hex()}
        for _ in range(20000)]   # ~40 MB, incompressible
# Build the table once: converting 20,000 dicts takes ~25x longer than writing them, and a kill that
# lands in the conversion proves nothing. Each loop is then spent in the write, where a kill tears files.
table = results._table(rows, results.KINDS["runs"])
results._table = lambda rows, schema: table
while True:
    results.write(sys.argv[1], "runs", "big", rows)
"""


def test_a_write_killed_midway_is_never_visible(tmp_path):
    """A process keeps rewriting a large result file: a reader that reads it over and over while it
    does never sees a partial file, nor after a SIGKILL at a random moment, many times over."""
    import random
    rng = random.Random(0)
    target = tmp_path / "runs" / "big.parquet"

    def whole(when):
        try:
            n = len(pq.read_table(target))
        except Exception as e:  # a torn file does not parse
            raise AssertionError(f"{when}: a partial file is visible ({e})") from None
        assert n == 20000, f"{when}: a partial file is visible ({n} rows)"

    for i in range(6):
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=ROOT)
        try:
            assert wait_for(target.exists, 60)
            deadline = time.monotonic() + rng.uniform(0.3, 1.2)
            while time.monotonic() < deadline:
                whole(f"kill {i}, while writing")
        finally:
            p.kill()
            p.wait()
        whole(f"kill {i}")
        assert results.read(tmp_path, "runs").shape[0] == 20000


TERM_WHILE_RECORDING = """
import os, signal, sys
from bench import cli, results
write = results.write
def write_after_sigterm(results_dir, kind, *a, **k):
    if kind == "runs":  # the moment a killed sweep's PDEATHSIG can land: the run row is being recorded
        os.kill(os.getpid(), signal.SIGTERM)
    return write(results_dir, kind, *a, **k)
results.write = write_after_sigterm
sys.exit(cli.main(sys.argv[1:]))
"""


def test_sigterm_while_the_run_is_recorded_still_records_it(small_data, tmp_path):
    """A real SIGTERM delivered while the finished run writes its row: the row is written, not lost,
    and the stop is not forgotten either: the next seed does not train but is recorded interrupted."""
    args = ["run", *TINY, "--epochs", "1", "--seeds", "0,1", "--data", small_data, "--results", tmp_path,
            "--no-progress-bar"]
    p = subprocess.run([sys.executable, "-c", TERM_WHILE_RECORDING, *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "Traceback" not in p.stderr, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    r = run_rows(tmp_path).sort_values("seed")
    assert list(r.status) == ["ok", "interrupted"] and list(r.epochs_completed) == [1, 0]
    assert r.error.iloc[1] == "interrupted by SIGTERM"
    all_files_readable(tmp_path)


@pytest.mark.parametrize("sig,rc", [(signal.SIGTERM, 1), (signal.SIGINT, 130)])
def test_a_stop_while_bench_run_imports_torch_is_recorded(sig, rc, small_data, tmp_path):
    """The real command, stopped while it still imports torch (its shared library is mapped, its
    modules not yet all loaded): before bench/stops.py the process died there with no row at all."""
    cmd = [sys.executable, "-m", "bench", "run", *TINY, "--data", small_data, "--results", tmp_path,
           "--no-progress-bar"]
    p = subprocess.Popen(list(map(str, cmd)), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{p.pid}/maps")
    assert wait_for(lambda: "libtorch" in maps.read_text(), 120, step=0.002), "torch never loaded"
    p.send_signal(sig)
    out, err = p.communicate(timeout=300)
    assert p.returncode == rc and "Traceback" not in err, (p.returncode, err[-2000:])
    r = run_rows(tmp_path)
    assert list(r.status) == ["interrupted"] and r.epochs_completed.iloc[0] == 0, err[-2000:]


def test_sigterm_while_the_last_run_is_recorded_still_stops_the_caller(small_data, tmp_path):
    """The last (only) seed: its row is written whole and says ok, but the command exits as a stopped
    one (143), so a shell script that ran it stops too; it exited 0, as if nothing had asked it to."""
    args = ["run", *TINY, "--epochs", "1", "--data", small_data, "--results", tmp_path, "--no-progress-bar"]
    p = subprocess.run([sys.executable, "-c", TERM_WHILE_RECORDING, *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 143 and "Traceback" not in p.stderr, (p.returncode, p.stderr[-2000:])
    assert "stopped after the last run was recorded" in p.stderr
    assert list(run_rows(tmp_path).status) == ["ok"]


STOP_WHILE_THE_ROW_IS_BUILT = """
import os, signal, sys, time
from bench import cli, measure
fingerprint = measure.fingerprint
def stopped_fingerprint(*a, **k):  # the row's fingerprint (it imports torchvision) is built before training
    if os.environ["STOP"] == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    else:
        time.sleep(3)  # the time limit's watchdog fires here
    return fingerprint(*a, **k)
measure.fingerprint = stopped_fingerprint
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("stop,args,status,reason", [
    ("sigterm", [], "interrupted", "interrupted by SIGTERM"),
    ("time limit", ["--time-limit", "0.5"], "timeout", "exceeded the time limit of 0.5 s"),
])
def test_a_stop_while_the_row_is_built_is_recorded(stop, args, status, reason, small_data, tmp_path):
    """A real SIGTERM, or the time limit's, while the run's row is being built (before training
    starts): the run is recorded with its status, one line says so, and no traceback."""
    cmd = ["run", *TINY, *args, "--data", small_data, "--results", tmp_path, "--no-progress-bar"]
    p = subprocess.run([sys.executable, "-c", STOP_WHILE_THE_ROW_IS_BUILT, *map(str, cmd)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "STOP": stop})
    assert p.returncode == 1 and "Traceback" not in p.stderr, (p.returncode, p.stderr[-2000:])
    assert f"run {status} ({reason}) after 0 epochs" in p.stderr, p.stderr[-2000:]
    r = run_rows(tmp_path)
    assert list(r.status) == [status] and list(r.error) == [reason] and r.epochs_completed.iloc[0] == 0


SETUP_FAILS = """
import sys
import torch
from bench import cli, runner
def busy(device):
    raise RuntimeError("CUDA error: all CUDA-capable devices are busy or unavailable (the test's fault)")
runner.resolve_device = lambda cfg: "cuda"  # a GPU that is seen (this machine may have none) ...
torch.cuda.set_device = busy                # ... but will not open
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_process_whose_gpu_will_not_open_records_its_run(small_data, tmp_path):
    """The process's own setup (its GPU, its process group) fails before any seed starts: the run is
    recorded crashed with the reason, as any crash is, and one line says so, without a traceback."""
    cmd = ["run", *TINY, "--data", small_data, "--results", tmp_path, "--no-progress-bar"]
    p = subprocess.run([sys.executable, "-c", SETUP_FAILS, *map(str, cmd)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 1 and "Traceback" not in p.stderr, (p.returncode, p.stderr[-2000:])
    assert "run crashed (RuntimeError: CUDA error: all CUDA-capable devices are busy or unavailable (the " \
           "test's fault)) after 0 epochs" in p.stderr, p.stderr[-2000:]
    r = run_rows(tmp_path)
    assert list(r.status) == ["crashed"] and r.error.iloc[0].endswith("busy or unavailable (the test's fault)")
    assert r.device.iloc[0] == "cuda" and r.epochs_completed.iloc[0] == 0


# --- one rank of a DDP run fails ----------------------------------------------------------------

RANK_FAULT = '''import os
import torch.nn as nn


class Net(nn.Module):
    """Trains on every rank; on rank 1 its third training step raises."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Linear(8, 10)
        self.calls = 0

    def forward(self, x):
        self.calls += self.training
        if self.training and os.environ.get("RANK") == "1" and self.calls == 3:
            raise RuntimeError("rank 1 lost its data (the test's fault)")
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def net():
    return Net()
'''


def test_a_crash_on_one_rank_is_recorded_with_that_ranks_reason(small_data, tmp_path):
    """Rank 0 only sees its peer vanish (gloo: "Connection closed by peer"); the row must say why
    the run failed, which only rank 1 knew."""
    model = write(tmp_path, RANK_FAULT, "rankfault.py")
    p = bench("run", "--model", f"{model}:net", "--batch-size", "50", "--epochs", "2", "--device", "cpu",
              "--world-size", "2", "--seeds", "0,1", "--data", small_data, "--results", tmp_path / "r", timeout=900)
    runs = run_rows(tmp_path / "r")
    assert p.returncode == 1 and sorted(runs.seed) == [0, 1], p.stderr
    for r in runs.itertuples():
        assert r.status == "crashed" and r.world_size == 2
        assert "rank 1 failed first" in r.error, r.error
        assert r.error.splitlines()[-1].endswith("rank 1 lost its data (the test's fault)"), r.error
    # seed 1 runs in a fresh torchrun started by the parent, never in one nested inside the dying rank 0
    assert "run in a fresh process" not in p.stderr, p.stderr


def test_a_ddp_runs_peak_host_memory_is_its_largest_ranks(small_data, tmp_path):
    """Rank 1 holds 1.5 GiB that rank 0 does not: the row's peak must be rank 1's, not rank 0's."""
    model = write(tmp_path, RANK_FAULT.replace('raise RuntimeError("rank 1 lost its data (the test\'s fault)")',
                                               "self.held = __import__('torch').ones(3 * 2**27)"), "rankmem.py")
    p = bench("run", "--model", f"{model}:net", "--batch-size", "50", "--epochs", "1", "--device", "cpu",
              "--world-size", "2", "--data", small_data, "--results", tmp_path / "r", timeout=900)
    runs = run_rows(tmp_path / "r")
    assert p.returncode == 0 and list(runs.status) == ["ok"], p.stderr
    assert runs.peak_host_rss_bytes.iloc[0] > 1.5 * 2**30, runs.peak_host_rss_bytes.iloc[0]


def test_a_hang_on_one_rank_is_recorded_as_the_time_limit_by_rank_0(small_data, tmp_path):
    """Rank 1 sleeps in its third step; each rank's time limit fires, rank 1's first. Only ranks still in
    step may meet in a collective: one in the recording would wait for a rank that left."""
    model = write(tmp_path, RANK_FAULT.replace('raise RuntimeError("rank 1 lost its data (the test\'s fault)")',
                                               "__import__('time').sleep(3600)"), "rankhang.py")
    p = bench("run", "--model", f"{model}:net", "--batch-size", "50", "--epochs", "2", "--device", "cpu",
              "--world-size", "2", "--time-limit", "10", "--data", small_data, "--results", tmp_path / "r", timeout=600)
    r = run_rows(tmp_path / "r").iloc[0]
    assert p.returncode == 1 and r.status == "timeout", r.error
    assert "without recording a result" not in r.error and "time limit of 10 s" in r.error.splitlines()[-1], r.error


def test_the_rank_that_failed_first_gives_the_row_its_status_unless_every_rank_said_the_same():
    from bench import ranks

    def rep(rank, t, status, error):
        return rank, {"run_id": "r", "t": t, "status": status, "error": error}

    def amended(status, reports):
        row = {"run_id": "r", "status": status, "error": "rank 0's view"}
        return ranks.amend(row, reports), row["status"], row["error"].splitlines()[-1]

    oom_on_1 = [rep(0, 2.0, "interrupted", "SIGTERM"), rep(1, 1.0, "oom", "CUDA out of memory")]
    assert amended("interrupted", oom_on_1) == (True, "oom", "CUDA out of memory")
    assert amended("crashed", [rep(0, 1.0, "crashed", "own bug"), rep(1, 2.0, "crashed", "peer gone")])[0] is False
    assert amended("timeout", [rep(0, 2.0, "timeout", "t"), rep(1, 1.0, "timeout", "t")])[0] is False
    # rank 1 hit the time limit and left; rank 0, in a collective, only saw it go
    assert amended("crashed", [rep(0, 2.0, "crashed", "peer gone"), rep(1, 1.0, "timeout", "limit")])[1] == "timeout"
    assert amended("diverged", [rep(0, 2.0, "diverged", "nan"), rep(1, 1.0, "diverged", "nan")])[0] is False
    assert amended("ok", oom_on_1)[0] is False and amended("crashed", [])[0] is False
    # a report line survives the pipe's relay and any other line is not one
    import contextlib
    import io
    with contextlib.redirect_stderr(io.StringIO()) as err:
        ranks.report(1, "r", "crashed", "x" * 5000)
    line = err.getvalue().rstrip("\n")
    assert len(line) < 4096 and ranks.parse(line)[0] == 1 and ranks.parse("rank 1 failed: oops") is None
