"""Sweeps: a TOML file's base configuration x axes (cartesian product) - exclusions, x seeds.

    [sweep]                      # all optional
    name = "smoke"
    seeds = [0, 1]               # or: repeats = 2  (seeds 0..repeats-1)
    time_limit_s = 900           # per run
    data = "path"                # relative to this file; --data and $BENCH_DATA also work

    [base]                       # any `bench run` setting; `recipe` starts from a named one
    model = "resnet9"            # a user's "FILE.py:fn" is found from the current directory, not this file's
    model_kwargs = { width = 0.25 }

    [axes]                       # setting -> values; "model_kwargs.KEY" reaches a model keyword
    precision = ["bf16", "fp32"]
    "model_kwargs.width" = [0.25, 0.5]

    [[exclude]]                  # cells matching every key here are left out (each value must be
                                 # one of its axis'; an axis value or [[cells]] block listed twice,
                                 # or an axis the config key ignores, is refused: it would run fewer)
    precision = "fp32"
    "model_kwargs.width" = 0.5

    [[cells]]                    # explicit cells, run first and in this order (then the axes'
    precision = "fp16"           # product, without repeating a cell); `seeds` overrides [sweep]'s
    seeds = [0, 1, 2]            # with no [axes] the cells are the list: an empty [[cells]] is [base]

At least one of [base], [axes] and [[cells]] must say what to run (bench/sweep_file.py). A configuration's
seeds run one after another in one child process (bench.isolate): data, compilation and autotuning are
paid once; `--isolate-seeds` gives every run its own process. A cell is done when a run row with its
config_key and status "ok" exists; done cells are skipped, failed ones retried only with --retry-failed.
A cell is claimed, held by the child that runs it, so concurrent sweeps (and --shard i/N on N machines
sharing RESULTS) never run a cell twice at once (bench/claims.py); the claim dies with its holder.
`--shard I/N` takes every N-th configuration with all its seeds. Each invocation that runs anything
writes its device-time account to RESULTS/sweeps/<sweep_run_id>.parquet, one stopped by a signal too.
`--slurm` and `--status` are bench/slurm.py's.
"""
import contextlib
import functools
import json
import math
import os
import re
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

from . import claims, isolate, results
from .config import BenchError
from .row import new_run_id
from .sweep_file import Cell, expand, load, parse_shard  # noqa: F401 - the sweep's file side, named here too
from .ui import SweepProgress, console, print_matrix, say  # noqa: F401 - print_matrix: slurm's too

def status_by_key(results_dir, warn=say):
    runs = results.read(results_dir, "runs", warn=warn)
    out = {}
    for key, status in zip(runs.get("config_key", []), runs.get("status", [])):
        out.setdefault(key, []).append(status)
    return out


def statuses(seen, cell):
    """The statuses recorded for CELL (from status_by_key), under any spelling of its numbers (Cell.keys)."""
    return [s for k in cell.keys for s in seen.get(k, [])]


def main(a):
    t_invocation = time.monotonic()
    started = datetime.now(timezone.utc)
    for flag, value in (("--time-limit", a.time_limit), ("--stop-after", a.stop_after)):
        if value is not None and not 0 < value < math.inf:  # NaN too
            raise BenchError(f"{flag} must be a positive finite number of seconds, got {value:g}")
    claims.stale_s()  # else a bad value fails at the first claim, after the data is loaded
    path, meta, base, axes, exclude, explicit = load(a.file, a.set)
    import torch
    have_gpu = torch.cuda.is_available()
    cells = expand(path, meta, base, axes, exclude, explicit, check_gpu=True if a.dry_run else have_gpu)
    if a.time_limit is not None:
        for c in cells:
            c.cfg.time_limit_s = a.time_limit
    name = meta.get("name", path.stem)
    if a.shard:
        i, n = parse_shard(a.shard)
        cells = shard_cells(cells, i, n, a.isolate_seeds)
    source = a.data or (str((path.parent / meta["data"]).resolve()) if meta.get("data") else None)

    seen = status_by_key(a.results) if Path(a.results, "runs").is_dir() else {}
    state = {}
    for c in cells:
        st = statuses(seen, c)
        state[c.cfg.key()] = "done" if "ok" in st else (f"failed ({st[-1]})" if st else "pending")
    retry = functools.partial(_retry, a.retry_failed, a.retry_interrupted)
    todo = [c for c in cells if state[c.cfg.key()] == "pending" or retry(statuses(seen, c))]
    title = (f"sweep {name}: {len(cells)} runs ({len(cells) - len(todo)} already recorded, {len(todo)} to run)"
             + (f", shard {a.shard}" if a.shard else "") + (f", with {' '.join(a.set)}" if a.set else ""))
    if not a.dry_run and todo:
        from . import data as data_mod
        source = data_mod.resolve_source(source)
        ds = data_mod.load(source, warn=say)  # fail early on bad data, and fill the cache for the children
        from .workload import get as workload
        for c in todo:  # a setting the data cannot meet is bad input, not a crashed cell in each child
            workload(c.cfg.workload).check_data(c.cfg, ds)
        del ds
    print_matrix(cells, state, title)
    if a.dry_run:
        return 0
    if not cells:  # more shards (or array tasks) than configurations: this one has none
        say(f"sweep {name}: shard {a.shard} has no cells (shard i of N takes every N-th configuration)")
        return 0
    if not todo:
        failed = sum(v.startswith("failed") for v in state.values())
        say(f"sweep {name}: nothing to do; every cell is recorded in {a.results}"
            + (f" ({failed} failed; --retry-failed runs them again)" if failed else ""))
        return 0
    results_dir = Path(a.results)
    for removed in results.clean_temporaries(results_dir):
        say(f"removed a temporary file left by a killed run: {removed}")
    (results_dir / ".locks").mkdir(parents=True, exist_ok=True)
    (results_dir / "logs").mkdir(parents=True, exist_ok=True)
    account = Account(name, " ".join([str(a.file)] + [f"--set {x}" for x in a.set]), a.shard, a.isolate_seeds, started, t_invocation)
    prev = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _run_cells(todo, name, source, results_dir, retry, a.isolate_seeds, account, a.stop_after, seen)
    except KeyboardInterrupt as e:  # the child of the cell that ran has recorded itself interrupted
        term = isinstance(e, Terminated)
        say(f"sweep {name}: interrupted by {'SIGTERM' if term else 'SIGINT (Ctrl-C)'}; what ran is recorded in "
            f"{results_dir}, and the same command goes on (--retry-interrupted runs the cut-short cells again)")
        return 128 + (signal.SIGTERM if term else signal.SIGINT)
    finally:
        # however the sweep ended, its device time is accounted for; a second signal cannot cut that short
        prev_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            account.write(results_dir, todo[0].cfg)
        finally:
            signal.signal(signal.SIGINT, prev_int)
            signal.signal(signal.SIGTERM, prev)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM raised as Ctrl-C is, to take Ctrl-C's path: the child stops and records its run, the
    claim goes, the account is written. Its default action ended the sweep with none of that."""


def _on_sigterm(signum, frame):
    raise Terminated()


def groups_of(todo, isolate_seeds):
    """Cells that run in one process: a configuration's seeds together (first appearance order);
    with isolate_seeds, each cell alone."""
    if isolate_seeds:
        return [[c] for c in todo]
    groups = {}
    for c in todo:  # every setting, not the key's alone: the process runs all its seeds with the first cell's
        # cfg, and the settings the key leaves out (time_limit_s, device, eval_batch_size, recipe) change the run
        groups.setdefault(json.dumps({**c.cfg.to_dict(), "seed": 0}, sort_keys=True, default=str), []).append(c)
    return list(groups.values())


def shard_cells(cells, i, n, isolate_seeds=False):
    """Shard I of N: every N-th group of groups_of(cells), so a configuration's seeds stay in one
    shard (and one process)."""
    return [c for k, g in enumerate(groups_of(cells, isolate_seeds)) if k % n == i for c in g]


def _retry(failed, interrupted, statuses):
    """Whether a cell with these recorded run statuses runs again: never once a run is ok; with
    --retry-failed after any failure; with --retry-interrupted only when every run was stopped from
    outside (a signal or preemption), never after the configuration itself failed."""
    if not statuses or "ok" in statuses:
        return False
    return failed or (interrupted and set(statuses) == {"interrupted"})


def _claim(stack, results_dir, cell, retry, seen):
    """The cell's claim, held until STACK closes, or None when another sweep holds it or recorded it
    meanwhile: a run recorded since SEEN (the statuses this sweep was planned from) was another sweep's
    try at it, which a retry must not repeat (several machines, a requeued Slurm task)."""
    with contextlib.ExitStack() as held:
        c = held.enter_context(claims.claim(results_dir, cell.claim))
        if c is None:
            return None, "being run by another sweep"
        st = statuses(status_by_key(results_dir, warn=None), cell)
        if "ok" in st or (st and not retry(st)) or len(st) > len(statuses(seen, cell)):
            return None, "recorded meanwhile by another sweep"  # let go now: --status must not show it running
        stack.enter_context(held.pop_all())
    return c, None


def expected_s(group, work):
    """--stop-after's forecast of a group's seconds: its optimizer steps at the seconds per step of the
    groups run so far, (seconds, steps) in `work` (batch 256 takes about twice batch 512's time); 0 first."""
    return sum(_steps(c.cfg) for c in group) * work[0] / work[1] if work[1] else 0.0


def _steps(cfg):
    return cfg.epochs * math.ceil((cfg.limit_train or 50_000) / cfg.batch_size)


def _run_cells(todo, name, source, results_dir, retry, isolate_seeds, account, stop_after, seen):
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    done, durations, work = 0, [], [0.0, 0]  # work: the seconds and steps of the groups run so far
    live = console.is_terminal
    with SweepProgress(len(todo), live=live) as progress:
        for group in groups_of(todo, isolate_seeds):
            elapsed = time.monotonic() - account.t0
            expected = expected_s(group, work)
            if stop_after is not None and elapsed + expected > stop_after:
                say(f"sweep {name}: --stop-after {stop_after:g} s: {len(todo) - done} run(s) left for the next "
                    f"invocation (the next group would end at about {elapsed + expected:.0f} s)")
                break
            with contextlib.ExitStack() as stack:
                claimed, fds = [], []
                for cell in group:
                    lock, why = _claim(stack, results_dir, cell, retry, seen)
                    if lock is None:
                        done += 1
                        counts["skipped"] += 1
                        say(f"[{done}/{len(todo)}] {_desc(cell)}: {why}; skipped")
                        progress.advance(counts["ok"], counts["failed"], len(todo) - done)
                    else:
                        claimed.append(cell)
                        fds.extend(lock.fds)
                if not claimed:
                    continue
                cfg, seeds = claimed[0].cfg, [c.cfg.seed for c in claimed]
                run_ids = [new_run_id(c.cfg) for c in claimed]
                if not live:
                    say(f"[{done + 1}/{len(todo)}] {_desc(claimed[0])}: starting "
                        + (f"runs {', '.join(run_ids)} (seeds {seeds}) in one process" if len(seeds) > 1
                           else f"run {run_ids[0]}"))
                progress.start_cell(done + 1, len(todo), _desc(claimed[0])
                                    + (f" (+{len(claimed) - 1} more seeds)" if len(claimed) > 1 else ""))
                t0 = time.monotonic()
                try:
                    rows, processes = isolate.run_seeds(
                        cfg, seeds, source, results_dir, run_ids, sweep=name, sweep_run_id=account.sweep_run_id,
                        log_path=results_dir / "logs" / f"{results.safe_name(run_ids[0])}.log",
                        on_line=progress.child_line, pass_fds=fds)
                except KeyboardInterrupt:  # its child recorded its runs as it stopped: their time counts too
                    account.add(_recorded(results_dir, run_ids), 1)
                    raise
            account.add(rows, processes)
            durations.append((time.monotonic() - t0) / len(rows))
            work[0], work[1] = work[0] + time.monotonic() - t0, work[1] + sum(_steps(c.cfg) for c in claimed)
            for cell, row in zip(claimed, rows):
                done += 1
                status = row.get("status")
                counts["ok" if status == "ok" else "failed"] += 1
                left = len(todo) - done
                eta_s = left * sum(durations) / len(durations)
                eta = f", ETA {eta_s / 60:.1f} min" if left else ""
                acc, ttt = row.get("final_acc"), row.get("time_to_target_s")
                say(f"[{done}/{len(todo)}] {_desc(cell)}: {status}"
                    + (f", final {_quality(row)} {acc:.4f}" if isinstance(acc, float) and acc == acc else "")
                    + (f", time to target {ttt:.1f} s" if isinstance(ttt, float) and ttt == ttt else "")
                    + ("" if status == "ok" else f" ({_reason(row.get('error'))})")
                    + f" [{counts['ok']} ok, {counts['failed']} failed, {left} left{eta}]")
                progress.advance(counts["ok"], counts["failed"], left, eta_s)
    say(f"sweep {name}: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped in "
        f"{(time.monotonic() - account.t0) / 60:.1f} min; results in {results_dir}")


def _quality(row):
    """What final_acc holds: the test accuracy, or another workload's metric (a GAN's FD, a distance)."""
    q = row.get("quality")
    return q if isinstance(q, str) and q != "test_acc" else "acc"


def _recorded(results_dir, run_ids):
    found = (results.read_one(results_dir, "runs", r) for r in run_ids)
    return [df.iloc[0].to_dict() for df in found if df is not None and len(df)]


def _reason(error):
    """The line of a failed run's error that says why: the last exception line (torch's errors may end
    with hints after it), else the last line (a run recorded from outside ends with why)."""
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    named = [x for x in lines if re.match(r"(?:\w+\.)*\w*(?:Error|Exception|Interrupt|Interrupted|Diverged|Unsupported|"
                                          r"Exit|Timeout): ", x)]  # "torch._dynamo.exc.Unsupported: ..."
    return (named or lines or ["-"])[-1][:160]


def _desc(cell):
    return ", ".join(f"{k}={v}" for k, v in cell.axes.items())


class Account:
    """Where one invocation's device time went: training clocks against wall time."""

    def __init__(self, sweep, sweep_file, shard, isolate_seeds, started, t0):
        self.sweep, self.sweep_file, self.shard, self.isolate_seeds = sweep, sweep_file, shard, isolate_seeds
        self.started, self.t0 = started, t0
        self.sweep_run_id = results.safe_name(f"{sweep}-{started:%Y%m%dT%H%M%S}-{os.urandom(3).hex()}")
        self.rows, self.processes = [], 0

    def add(self, rows, processes):
        self.rows += rows
        self.processes += processes

    def row(self, cfg):
        from .config import resolve_device
        from .measure import fingerprint

        def total(col):
            return float(sum(v for r in self.rows if isinstance(v := r.get(col), (int, float)) and v == v))

        wall = time.monotonic() - self.t0
        row = results.new_row("sweeps")
        row.update(fingerprint(resolve_device(cfg), cfg.world_size))
        train, ev, setup = total("train_time_s"), total("eval_time_s"), total("setup_time_s")
        row.update(sweep_run_id=self.sweep_run_id, schema_version=results.SCHEMA_VERSION, sweep=self.sweep,
                   sweep_file=self.sweep_file, shard=self.shard, isolate_seeds=self.isolate_seeds,
                   started_at=self.started, finished_at=datetime.now(timezone.utc), wall_s=wall,
                   runs=len(self.rows), ok_runs=sum(r.get("status") == "ok" for r in self.rows),
                   processes=self.processes, train_time_s=train, eval_time_s=ev, setup_time_s=setup,
                   other_time_s=wall - train - ev - setup, efficiency=train / wall if wall > 0 else None)
        return row

    def write(self, results_dir, cfg):
        """Nothing for an invocation that ran nothing (every cell was done or claimed elsewhere)."""
        if not self.rows:
            return None
        row = self.row(cfg)
        results.write(results_dir, "sweeps", self.sweep_run_id, [row])
        say(f"device time: {row['wall_s']:.0f} s wall, {row['train_time_s']:.0f} s timed training "
            f"({row['efficiency'] * 100:.0f}%), {row['eval_time_s']:.0f} s evaluation, {row['setup_time_s']:.0f} s "
            f"setup, {row['other_time_s']:.0f} s start-up and other; {row['processes']} process(es) for "
            f"{row['runs']} runs")
        return row
