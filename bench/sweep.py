"""Sweeps: a TOML file's base configuration x axes (cartesian product) - exclusions, x seeds.

    [sweep]                      # all optional
    name = "smoke"
    seeds = [0, 1]               # or: repeats = 2  (seeds 0..repeats-1)
    time_limit_s = 900           # per run
    data = "path"                # relative to this file; --data and $BENCH_DATA also work

    [base]                       # any `bench run` setting; `recipe` starts from a named one
    model = "resnet9"
    model_kwargs = { width = 0.25 }

    [axes]                       # setting -> values; "model_kwargs.KEY" reaches a model keyword
    precision = ["bf16", "fp32"]
    "model_kwargs.width" = [0.25, 0.5]

    [[exclude]]                  # cells matching every key here are left out
    precision = "fp32"
    "model_kwargs.width" = 0.5

Every run is a child process (bench.isolate). A cell is done when a run row with its
config_key and status "ok" exists; done cells are skipped, failed ones retried only with
--retry-failed. A cell is claimed (bench/claims.py: an flock on RESULTS/.locks/<key>.lock, or a
claim file where flock is not shared between machines), so concurrent sweeps (and --shard i/N on
N machines sharing RESULTS) never run a cell twice at once; the claim dies with its holder.
"""
import itertools
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import claims, isolate, results
from .config import FIELDS, RECIPES, BenchError, RunConfig, validate
from .runner import new_run_id
from .ui import console, say

SWEEP_KEYS = {"name", "seeds", "repeats", "time_limit_s", "data"}


@dataclass
class Cell:
    index: int
    axes: dict   # axis -> value, for display
    cfg: RunConfig


def load(path):
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"sweep file not found: {path}")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"{path}: invalid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"{path}: cannot read: {e}") from None
    unknown = set(doc) - {"sweep", "base", "axes", "exclude"}
    if unknown:
        raise BenchError(f"{path}: unknown section [{sorted(unknown)[0]}]; sections are [sweep], [base], "
                         f"[axes], [[exclude]]")
    meta = doc.get("sweep", {})
    bad = set(meta) - SWEEP_KEYS
    if bad:
        raise BenchError(f"{path}: unknown key {sorted(bad)[0]!r} in [sweep]; keys: {', '.join(sorted(SWEEP_KEYS))}")
    return path, meta, doc.get("base", {}), doc.get("axes", {}), doc.get("exclude", [])


def _set(values, key, v, where):
    if key.startswith("model_kwargs."):
        values["model_kwargs"] = dict(values.get("model_kwargs", {}))
        values["model_kwargs"][key.split(".", 1)[1]] = list(v) if isinstance(v, tuple) else v
    elif key in FIELDS or key == "recipe":
        values[key] = v
    else:
        raise BenchError(f"{where}: unknown setting {key!r}; settings are {', '.join(FIELDS)} "
                         f"or model_kwargs.KEY")


def _start(recipe, base, where, model=None):
    """A cell's values before its axes: the recipe's, then [base] on top; `model` is the cell's own
    when an axis names one (its keywords start from that model's defaults)."""
    if recipe is not None and recipe not in RECIPES:
        raise BenchError(f"{where}: unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    if not isinstance(base.get("model_kwargs", {}), dict):
        raise BenchError(f"{where}: [base] model_kwargs must be a table, got {base['model_kwargs']!r}")
    start = dict(RECIPES.get(recipe, {}))
    for k, v in base.items():
        if k not in ("model_kwargs", "recipe"):
            _set(start, k, v, f"{where} [base]")
    start["model_kwargs"] = _model_kwargs(recipe, base, model or start.get("model", "darknet"))
    return start


def _model_kwargs(recipe, base, model):
    """The recipe's (or the default's) model keywords belong to its own model only: another model
    starts from its own defaults. [base] model_kwargs go on top either way."""
    own = RECIPES.get(recipe, {})
    inherited = own.get("model_kwargs", RunConfig().model_kwargs) if model == own.get("model", "darknet") else {}
    return {**inherited, **base["model_kwargs"]} if "model_kwargs" in base else dict(inherited)


def expand(path, meta, base, axes, exclude, check_gpu=None):
    """All cells of the sweep, validated; raises BenchError naming the first bad one."""
    where = str(path)
    _start(base.get("recipe"), base, where)
    for k, vs in axes.items():
        _set({}, k, None, f"{where} [axes]")
        if not isinstance(vs, list) or not vs:
            raise BenchError(f"{where}: axis {k!r} must be a non-empty list of values, got {vs!r}")
    for ex in exclude:
        for k in ex:
            if k not in axes:
                raise BenchError(f"{where}: [[exclude]] names {k!r}, which is not an axis")
    seeds = meta.get("seeds", list(range(meta.get("repeats", 1))))
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise BenchError(f"{where}: [sweep] seeds must be a non-empty list of integers (or repeats = N)")
    limit = meta.get("time_limit_s")
    cells = []
    names = list(axes)
    for combo in itertools.product(*(axes[k] for k in names)):
        point = dict(zip(names, combo))
        if any(all(point.get(k) == v for k, v in ex.items()) for ex in exclude):
            continue
        recipe = point.get("recipe", base.get("recipe"))
        for seed in seeds:
            values = _start(recipe, base, where, point.get("model"))
            for k, v in point.items():
                if k != "recipe":
                    _set(values, k, v, f"{where} [axes]")
            if "seed" not in point:
                values["seed"] = seed
            if limit is not None and "time_limit_s" not in values:
                values["time_limit_s"] = float(limit)
            desc = ", ".join(f"{k}={v}" for k, v in point.items()) or "base"
            values.pop("recipe", None)
            try:
                cfg = RunConfig(recipe=recipe, **values)
                validate(cfg, cuda_available=check_gpu)
            except (BenchError, TypeError) as e:
                raise BenchError(f"{where}: cell ({desc}, seed {seed}): {e}") from None
            cells.append(Cell(len(cells), {**point, "seed": seed}, cfg))
    return cells


def parse_shard(text):
    try:
        i, n = (int(x) for x in text.split("/"))
        if n < 1 or not 0 <= i < n:
            raise ValueError
        return i, n
    except ValueError:
        raise BenchError(f"--shard must be I/N with 0 <= I < N (e.g. 0/4), got {text!r}") from None


def status_by_key(results_dir, warn=say):
    runs = results.read(results_dir, "runs", warn=warn)
    out = {}
    for key, status in zip(runs.get("config_key", []), runs.get("status", [])):
        out.setdefault(key, []).append(status)
    return out


def print_matrix(cells, state, title):
    axes = list(cells[0].axes) if cells else []
    t = Table(title=title, title_justify="left")
    t.add_column("#", justify="right")
    for a in axes:
        t.add_column(a)
    t.add_column("state")
    for c in cells:
        t.add_row(str(c.index), *[str(c.axes[a]) for a in axes], state.get(c.cfg.key(), "pending"))
    console.print(t)


def main(a):
    from . import slurm
    if slurm.handles(a):  # --slurm submits a job array, --status reports (bench/slurm.py)
        return slurm.main(a)
    path, meta, base, axes, exclude = load(a.file)
    import torch
    have_gpu = torch.cuda.is_available()
    cells = expand(path, meta, base, axes, exclude, check_gpu=True if a.dry_run else have_gpu)
    if a.time_limit is not None:
        if a.time_limit <= 0:
            raise BenchError(f"--time-limit must be positive, got {a.time_limit}")
        for c in cells:
            c.cfg.time_limit_s = a.time_limit
    name = meta.get("name", path.stem)
    if a.shard:
        i, n = parse_shard(a.shard)
        cells = [c for c in cells if c.index % n == i]
    source = a.data or (str((path.parent / meta["data"]).resolve()) if meta.get("data") else None)

    seen = status_by_key(a.results) if Path(a.results, "runs").is_dir() else {}
    state = {}
    for c in cells:
        st = seen.get(c.cfg.key(), [])
        state[c.cfg.key()] = "done" if "ok" in st else (f"failed ({st[-1]})" if st else "pending")
    todo = [c for c in cells if state[c.cfg.key()] == "pending"
            or (a.retry_failed and state[c.cfg.key()].startswith("failed"))]
    title = (f"sweep {name}: {len(cells)} runs ({len(cells) - len(todo)} already recorded, {len(todo)} to run)"
             + (f", shard {a.shard}" if a.shard else ""))
    if not a.dry_run and todo:
        from . import data as data_mod
        source = data_mod.resolve_source(source)
        data_mod.load(source, warn=say)  # fail early on bad data, and fill the cache for the children
    print_matrix(cells, state, title)
    if a.dry_run:
        return 0
    if not todo:
        say(f"sweep {name}: nothing to do; every cell is recorded in {a.results}")
        return 0
    results_dir = Path(a.results)
    for removed in results.clean_temporaries(results_dir):
        say(f"removed a temporary file left by a killed run: {removed}")
    (results_dir / ".locks").mkdir(parents=True, exist_ok=True)
    (results_dir / "logs").mkdir(parents=True, exist_ok=True)
    return _run_cells(todo, name, source, results_dir, a.retry_failed)


def _run_cells(todo, name, source, results_dir, retry_failed):
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    t_sweep, durations = time.monotonic(), []
    live = console.is_terminal
    progress = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("ok {task.fields[ok]}  failed {task.fields[failed]}  left {task.fields[left]}"),
                        TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[current]}"),
                        console=console, disable=not live)
    with progress:
        task = progress.add_task("sweep", total=len(todo), ok=0, failed=0, left=len(todo), current="")
        for n, cell in enumerate(todo, 1):
            key = cell.cfg.key()
            desc = ", ".join(f"{k}={v}" for k, v in cell.axes.items())
            with claims.claim(results_dir, key) as c:
                if c is None:
                    counts["skipped"] += 1
                    say(f"[{n}/{len(todo)}] {desc}: being run by another sweep; skipped")
                    progress.update(task, advance=1, left=len(todo) - n)
                    continue
                st = status_by_key(results_dir, warn=None).get(key, [])
                if "ok" in st or (st and not retry_failed):
                    counts["skipped"] += 1
                    say(f"[{n}/{len(todo)}] {desc}: recorded meanwhile by another sweep; skipped")
                    progress.update(task, advance=1, left=len(todo) - n)
                    continue
                run_id = new_run_id(cell.cfg)
                if not live:
                    say(f"[{n}/{len(todo)}] {desc}: starting run {run_id}")
                t0 = time.monotonic()
                row = isolate.run(cell.cfg, run_id, source, results_dir, sweep=name,
                                  log_path=results_dir / "logs" / f"{results.safe_name(run_id)}.log",
                                  on_line=lambda line: progress.update(task, current=line.strip()[:70]),
                                  pass_fds=c.fds)
            status = row.get("status")
            counts["ok" if status == "ok" else "failed"] += 1
            durations.append(time.monotonic() - t0)
            left = len(todo) - n
            eta = f", ETA {left * sum(durations) / len(durations) / 60:.1f} min" if left else ""
            acc = row.get("final_acc")
            ttt = row.get("time_to_target_s")
            say(f"[{n}/{len(todo)}] {desc}: {status}"
                + (f", final acc {acc:.4f}" if isinstance(acc, float) and acc == acc else "")
                + (f", time to target {ttt:.1f} s" if isinstance(ttt, float) and ttt == ttt else "")
                + ("" if status == "ok" else f" ({(str(row.get('error') or '') or '-').splitlines()[0][:160]})")
                + f" [{time.monotonic() - t0:.0f} s; {counts['ok']} ok, {counts['failed']} failed, {left} left{eta}]")
            progress.update(task, advance=1, ok=counts["ok"], failed=counts["failed"], left=len(todo) - n)
    say(f"sweep {name}: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped in "
        f"{(time.monotonic() - t_sweep) / 60:.1f} min; results in {results_dir}")
    return 0
