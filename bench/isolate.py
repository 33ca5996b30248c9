"""Run one configuration's seeds in a child process (torchrun for world size > 1) and make sure
each seed lands as exactly one run row, whatever happens to the child.

The child trains its seeds one after another (bench/runner.py) and records its own failures (OOM,
divergence, SIGTERM, its time limit). What it cannot record (a SIGKILL, a hard crash, a hang that
ignores SIGTERM) the parent records from the outside as `crashed` or `timeout`, with the last
lines of the child's output, and starts a fresh child for the seeds that were not run. The child
dies with the parent (PR_SET_PDEATHSIG), so a killed sweep leaves no orphan training behind.
"""
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from datetime import datetime, timezone

from . import ranks, results, summary
from .config import usable_cpus
from .row import base_row, new_run_id

GRACE_S = 120  # beyond the child's own time limits, for setup and writing its rows


def _die_with_parent():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def command(cfg, seeds, run_ids, data, results_dir, save=None, sweep=None, sweep_run_id=None):
    args = ["-m", "bench", "run", "--config-json", json.dumps(cfg.to_dict()), "--seeds", ",".join(map(str, seeds)),
            "--run-ids", ",".join(run_ids), "--results", str(results_dir), "--no-progress-bar"]
    for flag, value in (("--data", data), ("--save", save), ("--sweep", sweep), ("--sweep-run-id", sweep_run_id)):
        if value:
            args += [flag, str(value)]
    if cfg.world_size > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", str(cfg.world_size)] + args
    return [sys.executable] + args


def run(cfg, run_id, data, results_dir, save=None, sweep=None, log_path=None, on_line=None, env=None,
        pass_fds=()):
    """One seed (cfg.seed) in a child; its run row."""
    rows, _ = run_seeds(cfg, [cfg.seed], data, results_dir, [run_id], save, sweep, log_path=log_path,
                        on_line=on_line, env=env, pass_fds=pass_fds)
    return rows[0]


def run_seeds(cfg, seeds, data, results_dir, run_ids=None, save=None, sweep=None, sweep_run_id=None,
              log_path=None, on_line=None, env=None, pass_fds=()):
    """(every seed's run row in order, child processes started): a new child is started for the
    seeds a crashed one left, until each seed has a row."""
    run_ids = list(run_ids or [new_run_id(cfg, s) for s in seeds])
    rows, processes, todo = {}, 0, list(zip(seeds, run_ids))
    while todo:
        processes += 1
        got = _child(cfg, todo, data, results_dir, save, sweep, sweep_run_id, log_path, on_line, env, pass_fds,
                     append=processes > 1)
        rows.update(got)
        todo = [(s, r) for s, r in todo if r not in rows]
    return [rows[r] for r in run_ids], processes


def _child(cfg, todo, data, results_dir, save, sweep, sweep_run_id, log_path, on_line, env, pass_fds, append):
    """Start one child for the seeds in `todo`; {run_id: row} for the seeds it settled. A seed the
    child was training when it died is recorded here; the seeds after it are left for a new child."""
    seeds, ids = [s for s, _ in todo], [r for _, r in todo]
    cmd = command(cfg, seeds, ids, data, results_dir, save, sweep, sweep_run_id)
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    if cfg.world_size > 1:  # torchrun otherwise sets 1 thread per process, with a banner saying so
        child_env.setdefault("OMP_NUM_THREADS", str(max(1, usable_cpus() // cfg.world_size)))
    tail, reports = deque(maxlen=40), []
    log = open(log_path, "a" if append else "w") if log_path else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=child_env, preexec_fn=_die_with_parent, pass_fds=tuple(pass_fds))

    def pump():
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            rep = ranks.parse(tail[-1])
            if rep:
                reports.append(rep)
            if log:
                log.write(line)
                log.flush()
            if on_line:
                on_line(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    limit = (cfg.time_limit_s * len(seeds) + GRACE_S) if cfg.time_limit_s else None
    timed_out = False
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop(proc)
    except BaseException:  # the parent is being interrupted: let the child record itself
        try:
            _stop(proc)
        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
            proc.kill()
            proc.wait()
        # no row for a seed the child had not recorded (one still starting, say): it stays pending, and
        # the same command runs it again, as the sweep's interrupt line says
        raise
    finally:
        reader.join(timeout=10)
        if log:
            log.close()
    out, previous = {}, None
    for i, (seed, run_id) in enumerate(todo):
        row = results.read_one(results_dir, "runs", run_id)
        if row is not None and len(row):
            r = row.iloc[0].to_dict()
            previous = dict(r)  # as the child recorded it: the time limit's rewrite of r must not hide why it stopped
            if timed_out and r.get("status") == "interrupted":
                r.update(status="timeout", error=f"exceeded the time limit of {cfg.time_limit_s:g} s")
                results.write(results_dir, "runs", run_id, [{k: r.get(k) for k in results.new_row("runs")}])
            elif ranks.amend(r, reports):  # another rank failed first: its reason, not rank 0's view of it
                results.write(results_dir, "runs", run_id, [{k: r.get(k) for k in results.new_row("runs")}])
            out[run_id] = r
            continue
        if previous is not None and previous.get("status") in ("crashed", "interrupted"):
            rest = todo[i:]  # the child recorded its failure and stopped: these seeds never started
        else:  # this is the seed the child was training when it died, unrecorded
            status = "timeout" if timed_out else "crashed"
            why = ("exceeded the time limit and did not stop on SIGTERM" if timed_out else
                   f"the run process ended with {_describe(proc.returncode)} without recording a result")
            # why last, as a traceback ends with its exception: where readers look, and what the
            # error's 4000-character cut keeps
            out[run_id] = failure_row(cfg, seed, run_id, status, "\n".join([*tail, why]), sweep,
                                      results_dir, sweep_run_id)
            results.write(results_dir, "runs", run_id, [out[run_id]])
            rest = todo[i + 1:]
        stopped = timed_out or (previous or {}).get("status") == "interrupted" or proc.returncode == 130
        if stopped:  # stopped on purpose (a time limit, an interrupt): the rest are not retried
            for s2, r2 in rest:
                out[r2] = failure_row(cfg, s2, r2, "interrupted", f"not started: the process stopped before "
                                      f"seed {s2}", sweep, results_dir, sweep_run_id)
                results.write(results_dir, "runs", r2, [out[r2]])
        break
    return out


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


def failure_row(cfg, seed, run_id, status, error, sweep=None, results_dir=None, sweep_run_id=None):
    """A run row recorded from outside the run, with the epochs the child managed to write. Its clocks are
    those epochs' (the child's lifetime would add its start-up, setup and any seeds trained before)."""
    device = "cuda" if cfg.device == "cuda" else "cpu"
    if cfg.device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    now = datetime.now(timezone.utc)
    row = base_row(cfg, run_id, device, cfg.world_size, now, seed, None, sweep, sweep_run_id)
    row.update(status=status, error=error[-4000:], finished_at=now)
    if results_dir is not None:
        epochs = results.read_one(results_dir, "epochs", run_id)
        if epochs is not None and len(epochs):
            from .workload import get
            wl = get(cfg.workload)
            s = summary.summarize(epochs, cfg.target, wl.quality, wl.higher_is_better)
            row.update(epochs_completed=s["epochs_completed"], final_acc=s["final"], best_acc=s["best"],
                       train_time_s=float(epochs["elapsed_s"].max()), wall_time_s=float(epochs["wall_s"].max()),
                       reached_target=s["reached_target"],
                       epoch_reached=s["epoch_reached"], time_to_target_s=s["time_to_target_s"],
                       wall_time_to_target_s=s["wall_time_to_target_s"])
    return row
