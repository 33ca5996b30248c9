"""The page's plots: matplotlib drawn to SVG and embedded as data URIs (vector text that stays
sharp at any width, a few tens of kB, no script, no network). Legends and labels name groups by
their short id; the tables give each id's full configuration."""
import base64
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .report_fmt import config_name, cut, fmt_num, missing  # noqa: E402

# text stays text (small and searchable); a fixed salt and no date make a regenerated page identical
plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "svg.hashsalt": "cifar-bench"})


def _svg(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.15,  # tight: labels are never cut
                metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def gid(g):
    return str(g)[:6]


def median_curve(epochs):
    """Per epoch over a group's runs: median elapsed_s, median/min/max test_acc and how many runs."""
    e = epochs.assign(test_acc=pd.to_numeric(epochs["test_acc"], errors="coerce"),
                      elapsed_s=pd.to_numeric(epochs["elapsed_s"], errors="coerce"))
    return e.groupby("epoch").agg(t=("elapsed_s", "median"), acc=("test_acc", "median"), lo=("test_acc", "min"),
                                  hi=("test_acc", "max"), n=("test_acc", "size")).reset_index()


def plot_curves(runs, epochs, board, limit=10):
    """Test accuracy against the TRAINING clock (epochs.elapsed_s, evaluation excluded): the median
    over each configuration's runs, with bars from the lowest to the highest run where it has repeats."""
    fig, ax = plt.subplots(figsize=(10, 5.2))
    cmap = plt.get_cmap("tab10")
    ts = []
    for i, (_, b) in enumerate(board.head(limit).iterrows()):
        ids = set(runs.loc[(runs["group_id"] == b["group_id"]) & (runs["status"] == "ok"), "run_id"])
        ep = epochs[epochs["run_id"].isin(ids)]
        if ep.empty:
            continue
        c = median_curve(ep)
        ts += list(c["t"][c["t"] > 0])
        yerr = np.array([c["acc"] - c["lo"], c["hi"] - c["acc"]]) if (c["n"] > 1).any() else None
        ax.errorbar(c["t"], c["acc"], yerr=yerr, fmt="-o", ms=3, lw=1.4, capsize=2, color=cmap(i % 10),
                    label=f"{gid(b['group_id'])}  {cut(b.get('configuration') or config_name(b), 46)} (n={len(ids)})")
    for t in sorted(set(board.head(limit)["target"].dropna())):
        ax.axhline(float(t), color="k", ls="--", lw=0.8)
        ax.annotate(f" target {fmt_num(float(t), 'target')}", (0, float(t)), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=8)
    if ts and max(ts) / min(ts) > 20:  # runs of very different lengths: a log axis shows them all
        ax.set_xscale("log")
    ax.set_xlabel("training time, s (DAWNBench clock: evaluation excluded)")
    ax.set_ylabel("test accuracy")
    shown = f"; the first {limit} of {len(board)} configurations, in table order" if len(board) > limit else ""
    ax.set_title(f"Test accuracy against training time (median over runs; bars: lowest to highest run{shown})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1), title="group", title_fontsize=8,
              frameon=False)
    return _svg(fig)


def plot_effects(effects):
    """Speed of B over A with its 95% interval; grey where the difference is within noise."""
    n = len(effects)
    fig, ax = plt.subplots(figsize=(10, max(2.2, 0.42 * n + 1.2)))
    vals = effects["speed_b_over_a"].astype(float).to_numpy()
    lo = np.nan_to_num(vals - effects["speed_lo"].astype(float).to_numpy(), nan=0)
    hi = np.nan_to_num(effects["speed_hi"].astype(float).to_numpy() - vals, nan=0)
    colours = ["#999999" if v != "differs" else ("#4c72b0" if s >= 1 else "#dd8452")
               for v, s in zip(effects["verdict"], vals)]
    ax.barh(range(n), vals, color=colours)
    has = ~np.isnan(effects["speed_lo"].astype(float).to_numpy())  # a single run on a side has no interval
    if has.any():
        ax.errorbar(vals[has], np.arange(n)[has], xerr=[lo[has], hi[has]], fmt="none", ecolor="k", capsize=3)
    ax.axvline(1.0, color="k", lw=1)
    labels = [f"{r['axis']}: B = {r['b']} vs A = {r['a']}  [{gid(r['group_b'])} vs {gid(r['group_a'])}]"
              f"  ({r['speed_metric']})" for _, r in effects.iterrows()]
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("speed of B over A (>1: B is faster); grey: within noise or untested")
    ax.set_title("Axis effects")
    ax.invert_yaxis()
    return _svg(fig)


def plot_throughput_memory(board):
    fig, ax = plt.subplots(figsize=(10, 5))
    points = []
    for _, b in board.iterrows():
        gpu = not missing(b["peak_gpu_mem_bytes"])
        mem = b["peak_gpu_mem_bytes"] if gpu else b["peak_host_rss_bytes"]
        ips = b["mean_train_images_per_s"]
        if missing(mem) or missing(ips):
            continue
        ax.scatter(mem / 2**20, ips, marker="o" if gpu else "s", s=36)
        points.append((mem / 2**20, float(ips), gid(b["group_id"])))
    ips_all = pd.to_numeric(board["mean_train_images_per_s"], errors="coerce").dropna()
    if len(ips_all) and ips_all.min() > 0 and ips_all.max() / ips_all.min() > 30:
        ax.set_yscale("log")
    ax.margins(0.12)
    _label_points(ax, points)
    ax.set_xlabel("peak memory, MiB (circles: GPU allocated; squares: host RSS on CPU runs)")
    ax.set_ylabel("training images/s")
    ax.set_title("Throughput against peak memory (labels: group ids)")
    ax.grid(alpha=0.3)
    return _svg(fig) if points else None


def _label_points(ax, points):
    """Each point's id beside it, moved to the first of a few offsets that overlaps no earlier label
    (in display pixels), so clustered groups stay readable."""
    fig = ax.figure
    fig.canvas.draw()  # fixes the axes' scales so data maps to pixels
    offsets = [(5, 3), (5, -11), (5, 14), (-42, 3), (-42, -11), (-42, 14), (5, 25), (5, -22)]
    placed = []
    for x, y, text in sorted(points, key=lambda p: (p[1], p[0])):
        px, py = ax.transData.transform((x, y))
        scale = fig.dpi / 72  # offsets are in points
        for dx, dy in offsets:
            box = (px + dx * scale, py + dy * scale)
            if all(abs(box[0] - q[0]) > 38 * scale or abs(box[1] - q[1]) > 10 * scale for q in placed):
                break
        placed.append(box)
        ax.annotate(text, (x, y), fontsize=7.5, xytext=(dx, dy), textcoords="offset points", annotation_clip=False)


def has_number(v):
    return v is not None and not (isinstance(v, float) and math.isnan(v))
