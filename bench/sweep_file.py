"""A sweep file, read and expanded into cells: [sweep], [base], [axes], [[exclude]], [[cells]]
(the format is described in bench/sweep.py). Every cell is validated here, so a bad file fails
before anything runs."""
import functools
import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .config import FIELDS, RECIPES, BenchError, RunConfig, validate

SWEEP_KEYS = {"name", "seeds", "repeats", "time_limit_s", "data"}
SWEEP_TYPES = {"name": (str, "a string"), "repeats": (int, "an integer"), "data": (str, "a path"),
               "time_limit_s": ((int, float), "a number of seconds")}  # seeds: checked by _seeds


@dataclass
class Cell:
    index: int
    axes: dict   # axis -> value, for display
    cfg: RunConfig

    @functools.cached_property
    def keys(self):
        """The keys the cell's rows may have been recorded under: cfg.key() first, then the same settings
        with their whole numbers spelt the other way (8 for 8.0 and back, in the float settings and the
        model's keywords). key() hashes a number as written, so `div = 8` and `div = 8.0` differ there;
        a resumed sweep must count the rows of either spelling as this cell's."""
        d = self.cfg.key_fields()
        top = [k for k, v in d.items() if k in FIELDS and "float" in str(FIELDS[k].type) and _whole(v)]
        kw = [k for k, v in d["model_kwargs"].items() if _whole(v)]
        out = {}
        for flips in itertools.product((False, True), repeat=len(top) + len(kw)):
            one = {**d, **{k: _respelt(d[k]) for k, f in zip(top, flips) if f}}
            one["model_kwargs"] = {**d["model_kwargs"],
                                   **{k: _respelt(d["model_kwargs"][k]) for k, f in zip(kw, flips[len(top):]) if f}}
            out.setdefault(self.cfg.key(one))
        return list(out)

    @functools.cached_property
    def claim(self):
        """The name the cell is claimed under (bench/claims.py): the least of its keys, so one cell spelt
        two ways (`div = 8` in one sweep, `8.0` in another) is one claim and never runs twice at once."""
        return min(self.keys)


def _whole(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer()


def _respelt(v):
    return float(v) if isinstance(v, int) else int(v)


def load(path, sets=()):
    """The file's sections; `sets` ("KEY=VALUE" from --set) override it: a [sweep] key (seeds,
    time_limit_s, ...) replaces the file's, any other setting is forced on every cell (see expand)."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"sweep file not found: {path}")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"{path}: invalid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"{path}: cannot read: {e}") from None
    unknown = set(doc) - {"sweep", "base", "axes", "exclude", "cells"}
    if unknown:
        raise BenchError(f"{path}: unknown section [{sorted(unknown)[0]}]; sections are [sweep], [base], "
                         f"[axes], [[exclude]], [[cells]]")
    for k, v in doc.items():  # `base = 3` or `cells = {...}` parse as TOML but are no sections
        table = k in ("sweep", "base", "axes")
        if not (isinstance(v, dict) if table else isinstance(v, list) and all(isinstance(x, dict) for x in v)):
            raise BenchError(f"{path}: {k} must be " + (f"a table, [{k}]" if table else f"tables, [[{k}]]")
                             + f", got {v!r}")
    meta = doc.get("sweep", {})
    bad = set(meta) - SWEEP_KEYS
    if bad:
        raise BenchError(f"{path}: unknown key {sorted(bad)[0]!r} in [sweep]; keys: {', '.join(sorted(SWEEP_KEYS))}")
    if not doc.keys() & {"base", "axes", "cells"}:  # else every cell silently is bench run's default
        raise BenchError(f"{path}: no [base], [axes] or [[cells]], so nothing says what to run; add one "
                         f"(e.g. [base] with model = \"resnet9\" and epochs = 10, as configs/smoke.toml has)")
    meta = dict(meta)
    for text in sets:
        key, value = parse_set(text)
        if key in SWEEP_KEYS:
            meta[key] = value
            if key in ("seeds", "repeats"):
                meta.pop("seeds" if key == "repeats" else "repeats", None)
                meta["set_seeds"] = True  # every cell's, a [[cells]] block's own seeds included
        elif key == "recipe":
            raise BenchError("--set cannot change the recipe (the file's cells are built on it): edit [base]")
        elif key == "seed":  # each cell takes its seed from the seeds list, which would override this
            raise BenchError(f"--set {text}: give the seeds as a list, e.g. --set seeds=[{value}]")
        else:
            _set({}, key, value, f"--set {text}")  # an unknown setting fails here, before anything runs
            meta.setdefault("set", {})[key] = value
    for key, (types, what) in SWEEP_TYPES.items():  # else a traceback later, or a number as the sweep's name
        if key in meta and (not isinstance(meta[key], types) or isinstance(meta[key], bool)):
            raise BenchError(f"{path}: [sweep] {key} must be {what}, got {meta[key]!r}")
    return path, meta, doc.get("base", {}), doc.get("axes", {}), doc.get("exclude", []), doc.get("cells", [])


def parse_set(text):
    """KEY=VALUE with VALUE a TOML value (2, 0.5, true, [0, 1], "x"); a bare word is a string."""
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise BenchError(f"--set takes KEY=VALUE (e.g. --set epochs=2), got {text!r}")
    try:
        return key, tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        if raw.strip().replace("-", "").replace("_", "").replace(".", "").isalnum():
            return key, raw.strip()
        raise BenchError(f"--set {text}: {raw.strip()!r} is not a value (quote a string, e.g. "
                         f"{key}='\"...\"')") from None


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
    """The recipe's (or the default's) model keywords belong to its own model only, and [base]'s
    to [base]'s model only: another model starts from its own defaults."""
    own = RECIPES.get(recipe, {})
    inherited = own.get("model_kwargs", RunConfig().model_kwargs) if model == own.get("model", "darknet") else {}
    base_model = base.get("model", own.get("model", "darknet"))
    return {**inherited, **(base.get("model_kwargs", {}) if model == base_model else {})}


def expand(path, meta, base, axes, exclude, explicit=(), check_gpu=None):
    """All cells of the sweep, validated; raises BenchError naming the first bad one. Explicit
    [[cells]] come first, in file order, then the axes' product; a cell is never listed twice."""
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
    seeds = _seeds(meta.get("seeds", list(range(meta.get("repeats", 1)))), f"{where}: [sweep] seeds")
    _check_distinct(where, axes, exclude, explicit, seeds)
    limit = meta.get("time_limit_s")
    points = []
    for spec in explicit:
        spec = dict(spec)
        own = spec.pop("seeds", seeds)
        points.append((spec, seeds if meta.get("set_seeds") else _seeds(own, f"{where}: [[cells]] seeds")))
    names = list(axes)
    # [[cells]] without [axes] are the whole list: [base] alone is a cell only if one of them is empty
    for combo in itertools.product(*(axes[k] for k in names)) if axes or not explicit else ():
        point = dict(zip(names, combo))
        if not any(all(point.get(k) == v for k, v in ex.items()) for ex in exclude):
            points.append((point, seeds))
    if not points:  # else the sweep ran nothing and said every cell was recorded
        raise BenchError(f"{where}: [[exclude]] leaves out every cell, so there is nothing to run")
    cells, seen = [], set()
    for point, point_seeds in points:
        recipe = point.get("recipe", base.get("recipe"))
        for seed in point_seeds:
            values = _start(recipe, base, where, point.get("model"))
            for k, v in point.items():
                if k != "recipe":
                    _set(values, k, v, f"{where} [axes]")
            for k, v in meta.get("set", {}).items():  # --set wins over [base], [axes] and [[cells]]
                _set(values, k, v, f"--set {k}")
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
            if cfg.key() not in seen:
                seen.add(cfg.key())
                forced = meta.get("set", {})  # the matrix and progress lines show what runs, not what --set replaced
                cells.append(Cell(len(cells), {**{k: forced.get(k, v) for k, v in point.items()}, "seed": seed}, cfg))
    return cells


def _check_distinct(where, axes, exclude, explicit, seeds):
    """Every axis value, [[cells]] block and [[exclude]] must make a difference: else the sweep
    silently runs fewer cells than the file lists (one run for a repeated value, or for an axis the
    configuration key ignores), or runs cells a mistyped exclusion was meant to leave out."""
    for k, vs in axes.items():
        if k in FIELDS and k != "recipe" and not FIELDS[k].metadata["key"] and len(vs) > 1:
            raise BenchError(f"{where}: axis {k!r} does not change what a run measures (it is not in the "
                             f"configuration key), so its cells would be one run; set it in [base]")
        if k == "seed" and len(seeds) > 1:
            raise BenchError(f"{where}: axis 'seed' and [sweep] seeds {seeds} both give seeds; use one")
        repeated = next((v for i, v in enumerate(vs) if _same(v, vs[:i])), None)
        if repeated is not None:
            raise BenchError(f"{where}: axis {k!r} lists {repeated!r} twice")
    repeated = next((c for i, c in enumerate(explicit) if _same(c, explicit[:i])), None)
    if repeated is not None:
        raise BenchError(f"{where}: [[cells]] {repeated!r} is listed twice")
    for ex in exclude:
        if ex and not all(_same(v, axes[k]) for k, v in ex.items()):
            k, v = next((k, v) for k, v in ex.items() if not _same(v, axes[k]))
            raise BenchError(f"{where}: [[exclude]] {k} = {v!r} matches no cell: axis {k!r} is "
                             f"{axes[k]!r}")


def _same(v, values):
    """v among values, a bool told apart from 1 and 0 (TOML keeps them apart, == does not)."""
    return any(v == x and (type(v) is bool) == (type(x) is bool) for x in values)


def _seeds(seeds, where):
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise BenchError(f"{where} must be a non-empty list of integers (or repeats = N)")
    return seeds


def parse_shard(text):
    try:
        i, n = (int(x) for x in text.split("/"))
        if n < 1 or not 0 <= i < n:
            raise ValueError
        return i, n
    except ValueError:
        raise BenchError(f"--shard must be I/N with 0 <= I < N (e.g. 0/4), got {text!r}") from None
