"""Run one configuration in a child process (torchrun for world size > 1) and make sure it lands
as exactly one run row, whatever happens to the child.

The child records its own failures (OOM, divergence, SIGTERM, its time limit). What it cannot
record (a SIGKILL, a hard crash, a hang that ignores SIGTERM) the parent records from the
outside as `crashed` or `timeout`, with the last lines of the child's output. The child dies
with the parent (PR_SET_PDEATHSIG), so a killed sweep leaves no orphan training behind.
"""
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import datetime, timezone

from . import results

GRACE_S = 120  # beyond the child's own time limit, for setup and writing its row


def _die_with_parent():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def command(cfg, run_id, data, results_dir, save=None, sweep=None):
    args = ["-m", "bench", "run", "--config-json", json.dumps(cfg.to_dict()), "--run-id", run_id,
            "--results", str(results_dir), "--no-progress-bar"]
    if data:
        args += ["--data", str(data)]
    if save:
        args += ["--save", str(save)]
    if sweep:
        args += ["--sweep", sweep]
    if cfg.world_size > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", str(cfg.world_size)] + args
    return [sys.executable] + args


def run(cfg, run_id, data, results_dir, save=None, sweep=None, log_path=None, on_line=None, env=None,
        pass_fds=()):
    """Run the child; returns its run row (as written, or as recorded here on its behalf).
    `pass_fds` lets the child share the caller's cell lock, so it is held until the child is gone."""
    cmd = command(cfg, run_id, data, results_dir, save, sweep)
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    if cfg.world_size > 1:  # torchrun otherwise sets 1 thread per process, with a banner saying so
        child_env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // cfg.world_size)))
    tail = deque(maxlen=40)
    log = open(log_path, "w") if log_path else None
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=child_env, preexec_fn=_die_with_parent, pass_fds=tuple(pass_fds))

    def pump():
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            if log:
                log.write(line)
                log.flush()
            if on_line:
                on_line(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    limit = cfg.time_limit_s + GRACE_S if cfg.time_limit_s else None
    timed_out = False
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop(proc)
    except BaseException:  # the parent is being interrupted: let the child record itself
        _stop(proc)
        raise
    finally:
        reader.join(timeout=10)
        if log:
            log.close()
    row = results.read_one(results_dir, "runs", run_id)
    if row is not None and len(row):
        out = row.iloc[0].to_dict()
        if timed_out and out.get("status") == "interrupted":
            out.update(status="timeout", error=f"exceeded the time limit of {cfg.time_limit_s:g} s")
            results.write(results_dir, "runs", run_id, [out])
        return out
    status = "timeout" if timed_out else "crashed"
    rc = proc.returncode
    why = (f"exceeded the time limit of {cfg.time_limit_s:g} s and did not stop on SIGTERM" if timed_out else
           f"the run process ended with {_describe(rc)} without recording a result")
    error = why + ("\n" + "\n".join(tail) if tail else "")
    row = failure_row(cfg, run_id, status, error, sweep, time.monotonic() - t0, results_dir)
    results.write(results_dir, "runs", run_id, [row])
    return row


def _stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _describe(rc):
    if rc is not None and rc < 0:
        name = signal.Signals(-rc).name
        hint = " (the system's out-of-memory killer sends SIGKILL)" if -rc == signal.SIGKILL else ""
        return f"signal {name}{hint}"
    return f"exit code {rc}"


def failure_row(cfg, run_id, status, error, sweep=None, wall_s=None, results_dir=None):
    """A run row recorded from outside the run, with the epochs the child managed to write."""
    from .runner import base_row

    device = "cuda" if cfg.device == "cuda" else "cpu"
    if cfg.device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    now = datetime.now(timezone.utc)
    row = base_row(cfg, run_id, device, cfg.world_size, now, sweep)
    row.update(status=status, error=error[-4000:], finished_at=now, wall_time_s=wall_s)
    if results_dir is not None:
        epochs = results.read_one(results_dir, "epochs", run_id)
        if epochs is not None and len(epochs):
            row.update(epochs_completed=int(epochs["epoch"].max()), final_acc=float(epochs["test_acc"].iloc[-1]),
                       best_acc=float(epochs["test_acc"].max()), train_time_s=float(epochs["elapsed_s"].max()))
            hit = epochs[epochs["test_acc"] >= cfg.target]
            if len(hit):
                first = hit.iloc[0]
                row.update(reached_target=True, epoch_reached=int(first["epoch"]),
                           time_to_target_s=float(first["elapsed_s"]), wall_time_to_target_s=float(first["wall_s"]))
    return row
