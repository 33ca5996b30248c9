"""The one place that reads a run's epochs against a target: which epoch first reached it, and
the clocks at that epoch (DAWNBench: training time to the end of the first epoch whose quality is
at or better than the target, evaluation excluded). Pure functions of the epoch rows, used by the
runner, the isolation parent, `bench verify`, the report and the airbench side by side."""
import math


def _rows(epoch_rows):
    if hasattr(epoch_rows, "to_dict"):  # a DataFrame
        epoch_rows = epoch_rows.sort_values("epoch").to_dict("records")
    return sorted(epoch_rows, key=lambda r: r["epoch"])


def at_or_better(value, target, higher_is_better=True):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return value >= target if higher_is_better else value <= target


def first_reaching(epoch_rows, target, quality="test_acc", higher_is_better=True):
    """The first epoch row whose quality is at or better than `target`, or None."""
    for r in _rows(epoch_rows):
        if at_or_better(r.get(quality), target, higher_is_better):
            return r
    return None


def summarize(epoch_rows, target, quality="test_acc", higher_is_better=True):
    """{reached_target, epoch_reached, time_to_target_s, wall_time_to_target_s, final, best,
    epochs_completed} from a run's epoch rows (dicts or a DataFrame with epoch, elapsed_s, wall_s
    and the quality column)."""
    rows = _rows(epoch_rows)
    values = [r.get(quality) for r in rows if r.get(quality) is not None]
    values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    hit = first_reaching(rows, target, quality, higher_is_better)
    best = (max if higher_is_better else min)(values) if values else None
    return {"reached_target": hit is not None, "epoch_reached": int(hit["epoch"]) if hit else None,
            "time_to_target_s": float(hit["elapsed_s"]) if hit else None,
            "wall_time_to_target_s": float(hit["wall_s"]) if hit and hit.get("wall_s") is not None else None,
            "final": rows[-1].get(quality) if rows else None, "best": best, "epochs_completed": len(rows)}


def time_to_thresholds(epoch_rows, thresholds, quality="test_acc", higher_is_better=True):
    """{threshold: training time to the first epoch at or over it, or None}."""
    out = {}
    for t in thresholds:
        hit = first_reaching(epoch_rows, t, quality, higher_is_better)
        out[t] = float(hit["elapsed_s"]) if hit else None
    return out


def threshold_column(t):
    """`time_to_90_s` for 0.90; `time_to_93.5_s` for 0.935 (never two thresholds on one name)."""
    return f"time_to_{round(float(t) * 100, 4):g}_s"


def times_to_thresholds(epochs, thresholds, quality="test_acc"):
    """A DataFrame, one row per run_id of an epochs frame: time_to_<pct>_s for each threshold, and
    first_eval_s, the clock at the run's first evaluation (a threshold met there may have been passed
    at any time before it: airbench evaluates once, at the end)."""
    import pandas as pd
    cols = ["run_id"] + [threshold_column(t) for t in thresholds] + ["first_eval_s"]
    rows = []
    for rid, ep in epochs.groupby("run_id", sort=False):
        first = first_reaching(ep, -math.inf, quality)
        rows.append([rid] + list(time_to_thresholds(ep, thresholds, quality).values())
                    + [float(first["elapsed_s"]) if first else None])
    return pd.DataFrame(rows, columns=cols)
