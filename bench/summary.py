"""Time to a quality threshold from a run's epoch rows: the one place that applies DAWNBench's
clock rule ("the end of the first epoch whose test accuracy is at or over the target; evaluation
excluded"). The runner, the isolate helper, `bench verify` and the report all call this."""
import math

import pandas as pd

KEYS = ("reached_target", "epoch_reached", "time_to_target_s", "wall_time_to_target_s", "final", "best")


def _rows(epoch_rows):
    df = epoch_rows if isinstance(epoch_rows, pd.DataFrame) else pd.DataFrame(list(epoch_rows))
    if df.empty:
        return df
    return df.sort_values("epoch", kind="stable").reset_index(drop=True)


def summarize(epoch_rows, target, higher_is_better=True, column="test_acc"):
    """reached_target, epoch_reached (1-based), time_to_target_s (training clock, epochs.elapsed_s),
    wall_time_to_target_s (wall clock with evaluation, epochs.wall_s), final and best of `column`.
    Without a crossing the times and epoch are None; with no rows final and best are None too."""
    df = _rows(epoch_rows)
    out = dict.fromkeys(KEYS)
    out["reached_target"] = False
    if df.empty or column not in df:
        return out
    q = pd.to_numeric(df[column], errors="coerce")
    finite = q.dropna()
    if len(finite):
        out["final"] = float(q.iloc[-1]) if pd.notna(q.iloc[-1]) else None
        out["best"] = float(finite.max() if higher_is_better else finite.min())
    if target is None or (isinstance(target, float) and math.isnan(target)):
        return out
    hit = q >= target if higher_is_better else q <= target
    if hit.any():
        i = int(hit.to_numpy().nonzero()[0][0])
        row = df.iloc[i]
        out.update(reached_target=True, epoch_reached=int(row["epoch"]),
                   time_to_target_s=_num(row.get("elapsed_s")), wall_time_to_target_s=_num(row.get("wall_s")))
    return out


def _num(v):
    return None if v is None or pd.isna(v) else float(v)


def threshold_column(t):
    """`time_to_90_s` for 0.90; `time_to_93.5_s` for 0.935 (never two thresholds on one name)."""
    pct = round(float(t) * 100, 4)
    return f"time_to_{pct:g}_s"


def times_to_thresholds(epochs, thresholds, column="test_acc"):
    """One row per run_id: time_to_<pct>_s for each threshold (None where the run never got there)."""
    rows = []
    for rid, ep in epochs.groupby("run_id", sort=False):
        row = {"run_id": rid}
        for t in thresholds:
            row[threshold_column(t)] = summarize(ep, t, column=column)["time_to_target_s"]
        rows.append(row)
    return pd.DataFrame(rows, columns=["run_id"] + [threshold_column(t) for t in thresholds])
