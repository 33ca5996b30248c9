"""Axis effects (pairs of groups that differ in one setting), rank gaps, and contended runs.

Each effect has ONE speed number: time to target when both groups have runs that reached it,
training throughput otherwise; `speed_metric` says which. "B over A" names B: B is the pair's
second value in sort order, and every summary says "B = <value>". A difference is tested with
report_stats.compare (bootstrap of the ratio of medians); one drawn from contended runs says so.
"""
import json
import math

import pandas as pd

from .report_fmt import context_label
from .report_stats import compare, diff_ci95

# A run shares its machine when other processes used over 10% of the host's CPU time during it,
# or the hypervisor stole over 5%: its times measure the neighbours as much as the configuration.
CONTENDED_OTHER_CPU = 0.10
CONTENDED_STEAL = 0.05
CONTENTION_RULE = (f"A run is marked contended when other processes used more than {CONTENDED_OTHER_CPU:.0%} "
                   f"of the host's CPU time during it (other_cpu_frac) or CPU steal exceeded "
                   f"{CONTENDED_STEAL:.0%} (cpu_steal_frac); runs recorded before these columns existed are "
                   "not marked (unknown).")
SKIP_AXES = ("dataset", "target", "train_images")


def contended_mask(runs):
    def col(c):
        return pd.to_numeric(runs[c], errors="coerce") if c in runs else pd.Series(math.nan, index=runs.index)
    return ((col("other_cpu_frac") > CONTENDED_OTHER_CPU) | (col("cpu_steal_frac") > CONTENDED_STEAL)).fillna(False)


def _values(runs, gid, col, reached_only):
    g = runs[(runs["group_id"] == gid) & (runs["status"] == "ok")]
    if reached_only:
        g = g[g["reached_target"].fillna(False).astype(bool)]
    return pd.to_numeric(g[col], errors="coerce").dropna().tolist()


def speed(runs, ga, gb):
    """B's speed over A's: >1 means B is faster. Time to target if both reached it, else throughput."""
    ta, tb = (_values(runs, g, "time_to_target_s", True) for g in (ga, gb))
    if ta and tb:
        c = compare(tb, ta)  # A's time over B's: a speed-up, like the throughput ratio
        metric = "time to target"
    else:
        c = compare(*(_values(runs, g, "train_images_per_s", False) for g in (ga, gb)))
        metric = "throughput"
    # a side with no finished run (out of memory, crashed) is not a single run: there is nothing to compare
    verdict = c["verdict"] if c["n_a"] and c["n_b"] else "empty"
    return {"speed_b_over_a": c["ratio"], "speed_lo": c["lo"], "speed_hi": c["hi"], "verdict": verdict,
            "speed_metric": metric}


def _setting_table(runs, config_columns):
    runs = runs.drop_duplicates("group_id").set_index("group_id")
    kw = runs["model_kwargs"].map(lambda s: json.loads(s) if isinstance(s, str) else {})
    cols = {c: _as_declared(c, runs[c]) for c in config_columns if c != "model_kwargs"}
    for k in sorted({k for d in kw for k in d}):
        cols[f"model_kwargs.{k}"] = kw.map(lambda d, k=k: d.get(k))
    cols["hardware_key"] = runs["hardware_key"]
    cols["code_hash"] = runs["code_hash"]
    return pd.DataFrame(cols).astype(object).map(lambda v: json.dumps(v, default=str))


def _as_declared(name, col):
    """An int setting read back as float (a column with nulls from older rows) shows as declared:
    `tta_views: B = 6`, not 6.0."""
    from .config import FIELDS
    f = FIELDS.get(name)
    if f is None or "int" not in str(f.type) or "float" in str(f.type):
        return col
    return pd.Series([int(v) if isinstance(v, float) and v.is_integer() else v for v in col], index=col.index,
                     dtype=object)


def _distinct_contexts(effects, table):
    """Pairs on one axis whose contexts read alike get the settings that tell their A groups apart."""
    if effects.empty:
        return effects
    for _, idx in effects.groupby(["axis", "context"]).groups.items():
        if len(idx) < 2:
            continue
        a = table.loc[list(effects.loc[idx, "group_a"])]
        # settings every one of them recorded (older rows lack newer columns), the first few
        differ = [c for c in a.columns if c not in ("hardware_key", "code_hash") and a[c].nunique() > 1
                  and not a[c].isin(["null", "NaN"]).any()][:4]
        for i in idx if differ else ():  # alike A sides (one axis with 3 values): nothing to add
            g = effects.at[i, "group_a"]
            effects.at[i, "context"] += " · " + ", ".join(f"{c} {json.loads(table.at[g, c])}" for c in differ)
    return effects


def axis_effects(runs, board, config_columns):
    """Pairs of groups that differ in exactly one setting (hardware and code equal)."""
    if board.empty:
        return pd.DataFrame()
    b = board.set_index("group_id")
    table = _setting_table(runs, config_columns)
    out, ids = [], list(table.index)
    for i, x0 in enumerate(ids):
        for y0 in ids[i + 1:]:
            diff = [c for c in table.columns if table.at[x0, c] != table.at[y0, c]]
            if len(diff) != 1 or diff[0] in ("hardware_key", "code_hash") + SKIP_AXES:
                continue
            axis = diff[0]
            x, y = sorted([x0, y0], key=lambda g: str(table.at[g, axis]))
            bx, by = b.loc[x], b.loc[y]
            e = {"axis": axis, "a": json.loads(table.at[x, axis]), "b": json.loads(table.at[y, axis]),
                 "context": context_label(bx), "group_a": x, "group_b": y,
                 "runs_a": int(bx["runs"]), "runs_b": int(by["runs"]),
                 "contended_runs": int(bx["contended_runs"] + by["contended_runs"]),
                 "acc_diff_b_minus_a": by["mean_final_acc"] - bx["mean_final_acc"],
                 "acc_ci95": diff_ci95(*(_values(runs, g, "final_acc", False) for g in (x, y))),
                 "mem_ratio_b_over_a": _ratio(_mem(by), _mem(bx))}
            e.update(speed(runs, x, y))
            out.append(e)
    effects = _distinct_contexts(pd.DataFrame(out), table)
    if len(effects):
        effects["summary"] = effects.apply(summary_line, axis=1)
    return effects


def rank_gaps(runs, board):
    """{group_id: compare() of its time to target against the rank above it (same task: data set, train
    images, target)}."""
    out = {}
    if board.empty:
        return out
    ranked = board[board["ranked"]].sort_values("median_time_to_target_s")
    for _, g in ranked.groupby("task"):
        ids = list(g["group_id"])
        for above, gid in zip(ids, ids[1:]):
            out[gid] = compare(*(_values(runs, x, "time_to_target_s", True) for x in (above, gid)))
    return out


def _nz(v):
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _mem(row):
    v = row["peak_gpu_mem_bytes"]
    return v if pd.notna(v) else row["peak_host_rss_bytes"]


def _ratio(a, b):
    try:
        return float(a) / float(b) if float(b) else math.nan
    except (TypeError, ValueError):
        return math.nan


def speed_words(e):
    s = e["speed_b_over_a"]
    if s is None or math.isnan(s):
        return "speed n/a" + (": no finished run on a side" if e["verdict"] == "empty" else "")
    words = f"{s:.2f}x faster" if s >= 1 else f"{1 / s:.2f}x slower"
    interval = "" if math.isnan(e["speed_lo"]) else f", 95% CI {e['speed_lo']:.2f}-{e['speed_hi']:.2f}x"
    verdict = {"noise": ": within noise", "differs": "", "untested": ": untested, a single run on a side"}[e["verdict"]]
    return f"B {words} by {e['speed_metric']}{interval}{verdict}"


def accuracy_words(e):
    d, ci = e["acc_diff_b_minus_a"], _nz(e["acc_ci95"])  # nan: a single run a side, no interval
    if d is None or (isinstance(d, float) and math.isnan(d)):
        return "accuracy n/a"
    single = min(e["runs_a"], e["runs_b"]) < 2  # a single run has no interval of its own
    if abs(d) <= max(ci, 0.002):
        notes = ([f"±{ci * 100:.1f} pp"] if ci else []) + (["one side has a single run"] if single else [])
        return "same accuracy" + (f" ({'; '.join(notes)})" if notes else "")
    return f"{d * 100:+.1f} pp accuracy" + (" (one side has a single run: may be noise)" if single else "")


def summary_line(e):
    mem = e["mem_ratio_b_over_a"]
    mems = "" if math.isnan(mem) else f", {mem:.2f}x the peak memory"
    caveat = (f" [{e['contended_runs']} contended run(s): not a finding]" if e.get("contended_runs") else "")
    return f"{e['axis']}: B = {e['b']} vs A = {e['a']}: {speed_words(e)}; {accuracy_words(e)}{mems}{caveat}"
