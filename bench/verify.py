"""`bench verify`: the harness's compliance checker for results directories.

Checks every file is readable parquet of a known schema version with its required fields, and
that each run's numbers agree with each other and with its epoch file (the newer invariants are
data: ROW_RULES and EPOCH_RULES, each a name and a predicate giving the problem or None). Prints
one line per problem and exits 1 if there is any.
"""
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import columns, summary
from .config import BenchError
from .results import KINDS, SCHEMA_VERSION, STATUSES, safe_name
from .ui import say

REQUIRED = {
    "runs": ["run_id", "schema_version", "status", "config_key", "dataset", "model", "model_kwargs", "precision",
             "inplace", "batch_size", "world_size", "epochs", "target", "seed", "reached_target", "started_at",
             "device_name"],
    "epochs": ["run_id", "epoch", "elapsed_s", "test_acc"],
    "inference": ["infer_id", "latency_p50_ms", "top1_acc"],
    "maxbatch": ["maxbatch_id", "max_batch"],
    "sweeps": ["sweep_run_id", "wall_s", "runs", "ok_runs", "train_time_s", "eval_time_s", "setup_time_s",
               "efficiency"],
}
# required columns a row may leave empty: an epoch of a workload judged by another metric (a GAN's FD)
# has no test accuracy
NULLABLE = {"epochs": {"test_acc"}}
EPS = 1e-6


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def check_dir(d):
    """[(path, problem)] for one results directory, plus counts."""
    d = Path(d)
    problems, counts = [], {k: 0 for k in KINDS}
    if not d.is_dir():
        return [(str(d), "not a directory")], counts
    tables = {k: {} for k in KINDS}
    for kind in KINDS:
        for p in sorted((d / kind).glob("*")):
            if p.name.startswith((".", "_")) or p.is_dir():
                continue
            try:
                table = pq.read_table(p)
                df = table.to_pandas()
            except Exception as e:
                problems.append((str(p), f"unreadable ({type(e).__name__}: {str(e)[:120]})"))
                continue
            counts[kind] += 1
            missing = [c for c in REQUIRED[kind] if c not in df.columns]
            if missing:
                problems.append((str(p), f"missing required columns: {', '.join(missing)}"))
                continue
            unknown = sorted(set(df.columns) - set(columns.names(kind)))
            if unknown:
                problems.append((str(p), f"columns not in the schema (bench/columns.py): {', '.join(unknown)}"))
            empty = [c for c in REQUIRED[kind] if c not in NULLABLE.get(kind, ()) and df[c].isna().any()]
            if empty:  # a required value that is missing is as unusable as a missing column
                problems.append((str(p), f"required columns without a value: {', '.join(empty)}"))
            wrong = _wrong_types(table.schema, kind)
            if wrong:  # the checks below compare values: a string where a number belongs breaks them
                problems.append((str(p), f"columns of the wrong type: {', '.join(wrong)}"))
                continue
            problems += [(str(p), m) for m in _negatives(df, kind)]
            if "schema_version" in df.columns:
                bad = [v for v in df["schema_version"].unique() if _num(v) is None or not 0 < int(v) <= SCHEMA_VERSION]
                if bad:
                    problems.append((str(p), f"unknown schema version {bad[0]} (this harness knows 1..{SCHEMA_VERSION})"))
            tables[kind][p] = df
    for p, df in tables["runs"].items():
        if len(df) != 1:
            problems.append((str(p), f"a run file holds {len(df)} rows, expected 1"))
            continue
        r = df.iloc[0].to_dict()
        if p.stem != safe_name(r["run_id"]):
            problems.append((str(p), f"file name does not match run_id {r['run_id']!r}"))
        problems += [(str(p), m) for m in check_run(r, _epochs_for(d, r["run_id"], tables["epochs"]))]
    runs_by_sweep = {}
    for df in tables["runs"].values():
        if len(df) == 1 and "sweep_run_id" in df.columns and isinstance(df.iloc[0]["sweep_run_id"], str) \
                and df.iloc[0]["sweep_run_id"]:
            runs_by_sweep.setdefault(df.iloc[0]["sweep_run_id"], []).append(df.iloc[0].to_dict())
    for p, df in tables["sweeps"].items():
        for _, r in df.iterrows():
            problems += [(str(p), m) for m in check_sweep(r.to_dict(), runs_by_sweep.get(r["sweep_run_id"]))]
    summarised = {r for df in tables["sweeps"].values() for r in df["sweep_run_id"]}
    for sid, rs in sorted(runs_by_sweep.items()):
        if sid not in summarised:
            say(f"note: {len(rs)} run(s) name sweep call {sid}, which has no row in {d / 'sweeps'} (a sweep "
                "stopped before its summary, or recorded elsewhere): the report's device-time board lacks it")
    run_ids = {df.iloc[0]["run_id"] for df in tables["runs"].values() if len(df)}
    for p, df in tables["epochs"].items():
        ids = set(df["run_id"])
        if not ids <= run_ids:
            say(f"note: {p}: epochs of a run with no run row (a run killed before it could record itself)")
    for p in sorted(d.glob("*/.*.tmp")):
        say(f"note: {p}: temporary file (an interrupted write; invisible to readers, removed by the next sweep)")
    return problems, counts


# integers and floats are one sort: pandas turns an integer column with nulls into floats, so a
# file edited and saved with pandas holds nothing wrong for that
_SORTS = (pa.types.is_boolean, lambda t: pa.types.is_integer(t) or pa.types.is_floating(t), pa.types.is_timestamp,
          lambda t: pa.types.is_string(t) or pa.types.is_large_string(t))


def _wrong_types(schema, kind):
    """Columns holding another sort of value than declared (an all-null column holds none)."""
    declared = columns.by_name(kind)
    out = []
    for f in schema:
        want = declared[f.name].type if f.name in declared else None
        if want is None or pa.types.is_null(f.type) or f.type == want:
            continue
        if not any(sort(want) and sort(f.type) for sort in _SORTS):
            out.append(f"{f.name} is {f.type}, declared {want}")
    return out


def _negatives(df, kind):
    """Durations (unit s) and sizes (unit B) below zero: no clock or memory reading can give one."""
    out = []
    for c in columns.KINDS[kind]:
        if c.unit in ("s", "B") and c.name in df.columns:
            low = df[c.name].min()
            if _num(low) is not None and low < 0:
                out.append(f"{c.name} {low:g} is negative")
    return out


def _epochs_for(d, run_id, epoch_tables):
    return epoch_tables.get(d / "epochs" / f"{safe_name(run_id)}.parquet")


def _higher_is_better(name):
    from . import workload
    try:
        return workload.get(name or "classify").higher_is_better
    except KeyError:  # rows of a workload this checkout lacks: assume an accuracy
        return True


def check_run(r, epochs):
    out = []
    status = r.get("status")
    if status not in STATUSES:
        out.append(f"status {status!r} is not one of {', '.join(STATUSES)}")
    # the run's quality metric: test accuracy (a fraction), or another workload's (a GAN's FD)
    quality = r.get("quality") or "test_acc"
    higher = _higher_is_better(r.get("workload"))
    for c in ("final_acc", "best_acc", "target") if quality == "test_acc" else ():
        v = _num(r.get(c))
        if v is not None and not 0 <= v <= 1:
            out.append(f"{c} {v} is outside [0, 1]")
    ttt, wall, train = (_num(r.get(c)) for c in ("time_to_target_s", "wall_time_s", "train_time_s"))
    if ttt is not None and wall is not None and ttt > wall + EPS:
        out.append(f"time_to_target_s {ttt:.3f} > wall_time_s {wall:.3f}")
    if train is not None and wall is not None and train > wall + EPS:
        out.append(f"train_time_s {train:.3f} > wall_time_s {wall:.3f}")
    if ttt is not None and train is not None and ttt > train + EPS:
        out.append(f"time_to_target_s {ttt:.3f} > train_time_s {train:.3f}")
    if bool(r.get("reached_target")) != (ttt is not None):
        out.append("reached_target disagrees with time_to_target_s")
    out += [m for m in (rule(r) for _, rule in ROW_RULES) if m]
    finished = status == "ok"
    if epochs is None:
        if finished:
            out.append("finished run has no epoch file")
        return out
    epochs = epochs.sort_values("epoch")
    accs = list(epochs[quality]) if quality in epochs.columns else []
    if quality == "test_acc" and any(not 0 <= a <= 1 for a in accs):
        out.append("an epoch's test_acc is outside [0, 1]")
    best, final = _num(r.get("best_acc")), _num(r.get("final_acc"))
    top = (max if higher else min)(accs) if accs else None
    if accs and best is not None and abs(best - top) > EPS:
        what = "accuracy" if quality == "test_acc" else quality
        out.append(f"best_acc {best} is not the best epoch's {what} {top}")
    if accs and final is not None and abs(final - accs[-1]) > EPS:
        out.append(f"final_acc {final} is not the last epoch's accuracy {accs[-1]}")
    done = _num(r.get("epochs_completed"))
    if done is not None and int(done) != len(accs):
        out.append(f"epochs_completed {int(done)} but the epoch file has {len(accs)} epochs")
    out += [m for m in (rule(r, epochs, accs) for _, rule in EPOCH_RULES) if m]
    target = _num(r.get("target"))
    if target is not None and accs:
        s = summary.summarize(epochs, target, quality, higher)
        if s["reached_target"] != bool(r.get("reached_target")):
            out.append("reached_target disagrees with the epoch accuracies")
        elif s["reached_target"] and _num(r.get("epoch_reached")) is not None \
                and int(r["epoch_reached"]) != s["epoch_reached"]:
            out.append(f"epoch_reached {int(r['epoch_reached'])} but the first epoch at target is {s['epoch_reached']}")
    return out


def _keys_of_row(r):
    """The configuration keys that the row's own settings may hash to (RunConfig.key's recipe,
    from the columns). The row holds less than the configuration did: a float column holds 8.0
    where the configuration (and so its key) may have held 8, and tta_views and fused are what ran
    rather than the setting's null; every such reading is tried."""
    import hashlib
    import itertools
    import json

    import models
    from .config import FIELDS, KEY_FIELDS, NEW_FIELD_DEFAULTS
    from .fast import TTA_VIEWS
    d = {}
    for k in KEY_FIELDS:
        v = r[k] if k in r else FIELDS[k].default  # a column added later: its rows ran the default
        d[k] = None if _num(v) is None else (v.item() if hasattr(v, "item") else v)
    kwargs = json.loads(r["model_kwargs"])
    user = isinstance(r.get("model_source_hash"), str) and r["model_source_hash"]
    if not user and r["model"] not in models.registered():
        raise KeyError(r["model"])  # a reference row written outside the harness (airbench94): its own key
    d["model_kwargs"] = kwargs if user else models.keyed_kwargs(r["model"], kwargs)
    if user:
        d.update(model=r["model"], model_source_hash=r["model_source_hash"])
    whole = [k for k, v in d.items() if isinstance(v, float) and v.is_integer()][:10]
    # with tta off the column says 1 view, whatever view count the setting held: each is tried
    readings = [[("tta_views", v) for v in dict.fromkeys([d["tta_views"], None, *TTA_VIEWS])],
                [("fused", v) for v in dict.fromkeys([d["fused"], None])]]
    readings += [[(k, d[k]), (k, int(d[k]))] for k in whole]
    for choice in itertools.product(*readings):
        one = {**d, **dict(choice)}
        for k, v in NEW_FIELD_DEFAULTS.items():
            if one.get(k) == v and type(one.get(k)) is type(v):
                one.pop(k)
        yield hashlib.sha256(json.dumps(one, sort_keys=True).encode()).hexdigest()[:16]


def _key_rule(r):
    """A row whose settings were edited after it ran keeps the old key: a resumed sweep and the
    report's grouping would file its numbers under a configuration that did not produce them."""
    if not isinstance(r.get("config_key"), str) or _num(r.get("schema_version")) != SCHEMA_VERSION:
        return None  # an older schema's keys hashed fewer fields, by rules this checkout no longer has
    try:
        if r["config_key"] in _keys_of_row(r):
            return None
    except (KeyError, TypeError, ValueError):  # a model this checkout lacks, a malformed kwargs column
        return None
    return f"config_key {r['config_key']} is not the hash of the row's settings"


def _clock_at_target_rule(name, col):
    """`name` is the `col` clock of the epoch that reached the target, never another time; a run that
    reached it names that epoch (without one, no time of it could be checked)."""
    def rule(r, epochs, accs):
        t, at = _num(r.get(name)), _num(r.get("epoch_reached"))
        if t is None or col not in epochs.columns:
            return None
        if at is None:
            return f"{name} {t:.3f} but no epoch_reached names the epoch it is the time of"
        hit = epochs[epochs["epoch"] == at]
        if hit.empty or abs(float(hit[col].iloc[0]) - t) <= 1e-6 * max(t, 1):
            return None
        return f"{name} {t:.3f} is not epoch {int(at)}'s {col} {float(hit[col].iloc[0]):.3f}"
    return rule


# (what is checked, predicate -> the problem or None): one rule per invariant, so each can be read,
# tested and mutated alone
ROW_RULES = [("config_key hashes the settings", _key_rule)]
EPOCH_RULES = [
    ("a finished run has epochs", lambda r, e, accs: "status ok but the epoch file has no epochs"
     if r.get("status") == "ok" and e.empty else None),
    ("time to target is its epoch's time", _clock_at_target_rule("time_to_target_s", "elapsed_s")),
    ("wall time to target is its epoch's wall time", _clock_at_target_rule("wall_time_to_target_s", "wall_s")),
    ("no epoch ends after the training clock", lambda r, e, accs: f"an epoch's elapsed_s {e['elapsed_s'].max():.3f} "
     f"> train_time_s {r['train_time_s']:.3f}" if not e.empty and _num(r.get("train_time_s")) is not None
     and e["elapsed_s"].max() > r["train_time_s"] + EPS else None),
]


def check_sweep(r, runs):
    """A sweep's account against itself and against the run rows it names (where they are here)."""
    out = []
    wall, train, ev, setup, eff = (_num(r.get(c)) for c in ("wall_s", "train_time_s", "eval_time_s", "setup_time_s",
                                                            "efficiency"))
    if None in (wall, train, ev, setup):
        return ["a sweep row without its clocks"]
    if train + ev + setup > wall * (1 + 1e-9) + 1e-6:
        out.append(f"train {train:.1f} + eval {ev:.1f} + setup {setup:.1f} s exceed the wall time {wall:.1f} s")
    if eff is None or abs(eff - train / wall) > 1e-9:
        out.append(f"efficiency {eff} is not train_time_s / wall_s = {train / wall:.6f}")
    if int(r["ok_runs"]) > int(r["runs"]):
        out.append(f"ok_runs {int(r['ok_runs'])} > runs {int(r['runs'])}")
    if runs is not None:
        if len(runs) != int(r["runs"]):
            out.append(f"runs {int(r['runs'])} but {len(runs)} run rows name this sweep run")
        else:
            summed = sum(_num(x.get("train_time_s")) or 0.0 for x in runs)
            if abs(summed - train) > 1e-6 * max(train, 1):
                out.append(f"train_time_s {train:.3f} is not the sum of its runs' ({summed:.3f})")
    return out


def main(a):
    total = 0
    for d in a.results:
        if not Path(d).is_dir():
            raise BenchError(f"results directory not found: {d}")
        if not any((Path(d) / kind).is_dir() for kind in KINDS):  # an empty one that a writer made passes
            raise BenchError(f"no results in {d}: expected parquet files under {d}/runs (or epochs, inference, "
                             "maxbatch, sweeps); give the directory that `bench run --results` or a sweep wrote")
        problems, counts = check_dir(d)
        for path, msg in problems:
            print(f"{path}: {msg}")
        total += len(problems)
        say(f"{d}: {counts['runs']} runs, {counts['epochs']} epoch files, {counts['inference']} inference, "
            f"{counts['maxbatch']} maxbatch, {counts['sweeps']} sweep files; {len(problems)} problem(s)")
    return 1 if total else 0
