"""Sweeps on Slurm, and the state of any sweep from its results directory.

`bench sweep FILE --slurm` writes an sbatch script for a job array of N tasks: task i runs
`bench sweep FILE --shard i/N` into one results directory, with the same Python that submitted it
and the data passed explicitly. A cell with world_size > 1 runs through torchrun inside its task, on
the task's GPUs (--gpus-per-task defaults to the largest world size). Cells are claimed in
RESULTS/.locks (bench/claims.py), so a requeued task, a resubmitted array or two arrays at once
never run a cell twice; a requeued task (SLURM_RESTART_COUNT > 0) runs again the cells its first
attempt left interrupted.

The script is written here rather than through submitit: it is a plain file a user can read, edit
and resubmit by hand, it needs nothing installed beyond Slurm, and the compute nodes need no
pickled callables or network access.

`bench sweep FILE --status RESULTS` reads runs and claims: done, running (and where), failed,
pending, whoever runs the cells.
"""
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import claims, sweep
from .config import BenchError
from .ui import say

SLURM_ONLY = ("array", "partition", "gpus_per_task", "time", "sbatch_arg")


def handles(a):
    """Whether this `bench sweep` call is ours (--slurm or --status). A task's SIGTERM (scancel,
    preemption, time limit) needs nothing here: a sweep stops on it as on Ctrl-C (bench/sweep.py),
    its run records itself `interrupted` and its claim is released, so a requeue or another task
    picks the cell up."""
    if getattr(a, "slurm", False) or getattr(a, "status", None) is not None:
        return True
    given = [f"--{k.replace('_', '-')}" for k in SLURM_ONLY if getattr(a, k, None) is not None]
    if given:
        raise BenchError(f"{given[0]} goes with --slurm")
    return False


def main(a):
    if a.slurm and a.status is not None:
        raise BenchError("--slurm submits and --status reports: give one of them")
    return submit(a) if a.slurm else status(a)


# --- submitting -----------------------------------------------------------------------------------

def submit(a):
    if a.shard:
        raise BenchError("--slurm makes its own shards (one per array task): leave out --shard")
    if getattr(a, "stop_after", None) is not None:  # a task stops at Slurm's own --time, not at ours
        raise BenchError("--stop-after does not reach Slurm's array tasks: leave it out and give the job a "
                         "time with --time (e.g. --time 1:00:00); a later submission resumes the sweep")
    path, meta, base, axes, exclude, explicit = sweep.load(a.file, a.set)
    cells = _cells(path, meta, base, axes, exclude, explicit)
    for c in cells if a.time_limit is not None else ():  # as each task sets it, before it groups its cells
        c.cfg.time_limit_s = a.time_limit
    groups = len(sweep.groups_of(cells, a.isolate_seeds))  # one task a process group: its seeds share a process
    n = groups if a.array is None else a.array
    if n < 1:
        raise BenchError(f"--array must be at least 1, got {n}")
    if n > groups:  # a task beyond the last configuration has nothing to run but still queues and starts
        say(f"--array {n} is more tasks than the sweep's {groups} configuration(s): submitting {groups}")
        n = groups
    gpus = _gpus_per_task(cells, a.gpus_per_task)
    if a.time_limit is not None and not 0 < a.time_limit < math.inf:  # NaN too
        raise BenchError(f"--time-limit must be a positive finite number of seconds, got {a.time_limit}")
    name = meta.get("name", path.stem)
    results_dir = Path(a.results).absolute()
    data = _data(a.data or (str((path.parent / meta["data"]).resolve()) if meta.get("data") else None))
    text = script(name, path.absolute(), results_dir, data, n, gpus, a)
    print(text, end="")
    if a.dry_run:
        say(f"to submit it yourself: {submit_by_hand(results_dir)}")
        return 0
    sbatch = shutil.which("sbatch")
    if not sbatch:
        raise BenchError("sbatch not found: run this on a Slurm login node (or use --dry-run to print the script)")
    (results_dir / "logs").mkdir(parents=True, exist_ok=True)  # Slurm writes the task logs there
    out = results_dir / "slurm" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.sbatch"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    proc = subprocess.run([sbatch, "--parsable", str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        why = ((proc.stderr or proc.stdout).strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise BenchError(f"sbatch refused the job: {why} (script kept at {out})")
    job = proc.stdout.strip().split(";")[0]
    say(f"submitted batch job {job}: an array of {n} task(s) for sweep {name}; script {out}")
    say(f"follow it with: {status_command('bench', a.file, a.results, a.set)}")
    return 0


def _cells(path, meta, base, axes, exclude, explicit):
    """The sweep's cells, checked as on a machine with GPUs: a login node has none, and the tasks
    check the GPUs they get themselves. (LOCAL_WORLD_SIZE=1 stands in for one GPU a process.)"""
    saved = os.environ.get("LOCAL_WORLD_SIZE")
    os.environ["LOCAL_WORLD_SIZE"] = "1"
    try:
        return sweep.expand(path, meta, base, axes, exclude, explicit, check_gpu=True)
    finally:
        if saved is None:
            del os.environ["LOCAL_WORLD_SIZE"]
        else:
            os.environ["LOCAL_WORLD_SIZE"] = saved


def _gpus_per_task(cells, asked):
    on_gpu = [c.cfg.world_size for c in cells if c.cfg.device != "cpu"]
    need = max(on_gpu, default=0)
    if asked is None:
        return need
    if asked < 0:  # else "fewer than the largest world size (0)" for a CPU sweep, which reads as nonsense
        raise BenchError(f"--gpus-per-task must be 0 or more, got {asked}")
    if asked < need:
        raise BenchError(f"--gpus-per-task {asked} is fewer than the largest world size of a GPU cell ({need}); "
                         f"a cell's processes run on one node's GPUs")
    return asked


def _data(source):
    """The data as the tasks must see it: an absolute path (their working directory may differ)."""
    from .data import resolve_source
    source = resolve_source(source)
    if source in ("download", "cifar10"):
        say("note: the tasks will download CIFAR-10; compute nodes often have no internet: pass --data")
        return source
    p = Path(source).expanduser()
    if not p.exists():
        raise BenchError(f"data not found: {source} (pass --data PATH; the tasks read it from there)")
    return str(p.absolute())


def script(name, file, results_dir, data, n, gpus, a):
    q = shlex.quote
    head = [f"--job-name=bench-{name}", f"--array=0-{n - 1}", f"--output={results_dir}/logs/slurm-%A_%a.out",
            f"--chdir={os.getcwd()}", "--ntasks=1", "--requeue", "--open-mode=append"]
    if a.partition:
        head.append(f"--partition={a.partition}")
    if a.time:
        head.append(f"--time={a.time}")
    if gpus:
        head.append(f"--gpus-per-task={gpus}")
    head += a.sbatch_arg or []
    env = {"BENCH_DATA": data, **{k: os.environ[k] for k in ("PYTHONPATH", "BENCH_CACHE", "BENCH_CLAIMS",
                                                                 "BENCH_CLAIM_STALE_S") if k in os.environ}}
    cmd = [sys.executable, "-m", "bench", "sweep", str(file), "--results", str(results_dir), "--data", data]
    if a.time_limit is not None:
        cmd += ["--time-limit", f"{a.time_limit:g}"]
    if a.isolate_seeds:
        cmd += ["--isolate-seeds"]
    for x in a.set:
        cmd += ["--set", x]
    lines = ["#!/bin/bash",
             f"# Sweep {name} as a Slurm job array, written by `bench sweep --slurm`. Task i of {n} runs shard i/{n};",
             "# cells are claimed in the results directory, so no cell runs twice, whatever overlaps.",
             f"# Progress: {status_command(f'{q(sys.executable)} -m bench', file, results_dir, a.set)}",
             f"# By hand: {submit_by_hand(results_dir)}",
             *[f"#SBATCH {_quoted(h)}" for h in head],
             "set -euo pipefail",
             *[f"export {k}={q(v)}" for k, v in env.items()],
             f"retry={'--retry-failed' if a.retry_failed else '--retry-interrupted' if a.retry_interrupted else ''}",
             "# a requeued task (preemption, node failure) runs again the cells it left interrupted",
             'if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ] && [ -z "$retry" ]; then retry=--retry-interrupted; fi',
             " ".join(q(c) for c in cmd) + f' --shard "$SLURM_ARRAY_TASK_ID/{n}" $retry']
    lines[-1] = "exec " + lines[-1]
    return "\n".join(lines) + "\n"


def _quoted(directive):
    """sbatch splits an #SBATCH line at whitespace unless the value is in double quotes: a sweep
    name or results path with a space made sbatch refuse the script ("Invalid directive")."""
    flag, eq, value = directive.partition("=")
    return f'{flag}="{value}"' if eq and any(c.isspace() for c in value) and '"' not in value else directive


def submit_by_hand(results_dir):
    """Slurm creates no folder for --output: a task whose log folder is missing fails to start
    (JobLaunchFailure), with no log and nothing recorded, so a script submitted by hand needs it made."""
    return f"mkdir -p {shlex.quote(str(results_dir / 'logs'))} && sbatch FILE (Slurm creates no folder for the task logs)"


def status_command(bench, file, results_dir, sets):
    """With the sweep's --set: they change the cells' keys, and a status without them counts
    other cells (a shortened sweep showed as pending however far it had got)."""
    q = shlex.quote
    return " ".join([bench, "sweep", q(str(file)), "--status", q(str(results_dir))] + [f"--set {q(x)}" for x in sets])


# --- status ---------------------------------------------------------------------------------------

def status(a):
    path, meta, base, axes, exclude, explicit = sweep.load(a.file, a.set)
    cells = _cells(path, meta, base, axes, exclude, explicit)
    results_dir = Path(a.status or a.results)
    name = meta.get("name", path.stem)
    seen = sweep.status_by_key(results_dir) if (results_dir / "runs").is_dir() else {}
    state, counts = {}, {"done": 0, "running": 0, "failed": 0, "pending": 0}
    for c in cells:
        state[c.cfg.key()], kind = _state(results_dir, c.claim, sweep.statuses(seen, c))
        counts[kind] += 1
    mode, why = claims.mode(results_dir)
    sweep.print_matrix(cells, state, f"sweep {name} in {results_dir}: " +
                       ", ".join(f"{v} {k}" for k, v in counts.items()))
    say(f"claims: {mode} ({why})")
    if counts["failed"]:
        # after a scancel, --retry-failed would run the cells that failed on their own again too
        cut = sum(set(sweep.statuses(seen, c)) == {"interrupted"} for c in cells)
        say(f"{counts['failed']} cell(s) failed; --retry-failed runs them again (with --slurm too)"
            + (f"; --retry-interrupted runs only the {cut} stopped from outside" if cut else ""))
    print(json.dumps({"sweep": name, "results": str(results_dir), "cells": len(cells), **counts, "claims": mode}))
    return 0


def _state(results_dir, claim, statuses):
    """(text, kind) for one cell: its runs first (an ok row is final), then its claim."""
    if "ok" in statuses:
        return "done", "done"
    who = claims.holder(results_dir, claim) if (results_dir / ".locks").is_dir() else None
    if who is not None and not who.get("stale"):
        where = f" on {who['host']} pid {who['pid']}" if "host" in who else ""
        return f"running{where}", "running"
    stale = f"; stale claim by {who.get('host')} pid {who.get('pid')}" if who else ""
    if statuses:
        return f"failed ({statuses[-1]}){stale}", "failed"
    return f"pending{stale}", "pending"
