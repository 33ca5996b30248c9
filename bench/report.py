"""`bench report`'s data: leaderboards from result directories (report_cli.py runs the command; the
renderers are report_md, report_html and report_term, all drawing the ONE list of boards in report_boards).

Runs are grouped by configuration (every configuration column but the seed), hardware key
(`hardware_id`: device, GPU count, CPU model, cores, host memory; device name and GPU count for
rows without one; a CPU run held to fewer threads than the cores adds "/Nthr") and code (`code_hash`; a null is its own value). Repeats are aggregated:
  runs / failed_runs      runs with status ok / any other status
  attempted_runs          runs that trained to an outcome: ok, diverged or out of memory. A diverging
                          or out-of-memory configuration failed at its task; a crash, a timeout (a hang
                          reads the same) or a Ctrl-C says nothing of it, so those stay out (they are
                          still counted in failed_runs)
  success_rate            share of attempted runs that reached the target ("hit 0.94 in 6/7 runs")
  median_time_to_target_s over the ok runs that reached the target, with min/max, a bootstrap
                          95% interval of the median, and with 5 or more MLPerf's olympic mean
  mean_final_acc, ci95_final_acc  mean and 95% t-interval half-width over ok runs
  throughput, MFU, setup/warm-up, peak memory, energy, cost = hours x $/GPU-hour x GPUs.
Axis effects pair groups that differ in one setting only (report_effects.py).
"""
import hashlib
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import results, summary
from .config import NEW_FIELD_DEFAULTS, BenchError
from .report_codes import code_splits, pool_codes
from .report_effects import axis_effects, contended_mask, rank_gaps
from .report_fmt import distinct, distinct_names, missing
from .report_stats import mean_ci95, median_ci95, olympic_mean, t95  # noqa: F401  (t95: tests and callers)
from .ui import say

try:  # the column registry: every configuration column but the seed (code_hash is grouped apart below)
    from .columns import group_columns
    CONFIG_COLUMNS = [c for c in group_columns() if c != "code_hash"]
except ImportError:  # a checkout from before bench/columns.py
    CONFIG_COLUMNS = ["dataset", "train_images", "model", "model_kwargs", "precision", "inplace", "channels_last",
                      "compile", "batch_size", "world_size", "epochs", "target", "lr", "div", "pct", "mom_max",
                      "mom_min", "weight_decay", "label_smoothing", "cutout", "tta", "warmup_steps", "stop_at_target"]
DEFAULT_THRESHOLDS = (0.85, 0.90, 0.93, 0.94)
# the software each group ran on, in leaderboard.json/.csv and the page's machines board
SOFTWARE = ("torch_version", "cuda_version", "cudnn_version", "driver_version", "python_version", "git_commit")
# what a rank compares within: one data set, one train-set size (a subset is another task), one target
TASK = ["dataset", "train_images", "target"]
# statuses that are the configuration's own outcome, and so count against its success rate
OUTCOMES = ("ok", "diverged", "oom")

# Dollars per GPU-hour, on-demand list prices divided by the instance's GPUs. Approximate and dated;
# --prices FILE ({"H100": 2.5, ...}; keys match device-name substrings) overrides them.
#   K80, V100, A100: AWS p2.xlarge, p3, p4d (us-east-1), as the project first recorded them.
#   H100: AWS p5.48xlarge, $55.04/h for 8 GPUs, us-east-1 (datareceipts/data-receipts,
#         109-gpu-pricing/hyperscalers.json, retrieved 2026-11-09).
#   H200: AWS p5en.48xlarge, $63.296/h for 8 GPUs, us-east-1 on-demand (dstack offer listing in
#         dstackai/dstack pull request 4110, 2026-08-06).
PRICES = {"K80": 0.90, "V100": 3.06, "A100": 4.10, "H100": 6.88, "H200": 7.912}


def load_prices(path=None):
    prices = dict(PRICES)
    if path:
        p = Path(path)
        try:
            text = p.read_text()
            if p.suffix == ".toml":
                import tomllib
                extra = tomllib.loads(text)
            else:
                extra = json.loads(text)
        except (OSError, ValueError) as e:
            raise BenchError(f"cannot read price file {path}: {e}") from None
        if not isinstance(extra, dict) or not all(isinstance(v, (int, float)) for v in extra.values()):
            raise BenchError(f"price file {path} must map device names to dollars per GPU-hour")
        prices.update(extra)
    return prices


def price_for(device_name, prices):
    matches = [k for k in prices if k.lower() in str(device_name).lower()]
    return prices[max(matches, key=len)] if matches else None


def parse_thresholds(text):
    try:
        vals = sorted({float(x) for x in str(text).split(",") if x.strip()})
    except ValueError:
        vals = []
    if not vals or not all(0 < v <= 1 for v in vals):
        raise BenchError(f"--thresholds {text!r}: give accuracies in (0, 1] separated by commas, e.g. 0.85,0.9,0.94")
    return vals


def _key_value(v):  # an int column turns float where a row read alongside has a null: 6.0 hashes as 6,
    if isinstance(v, float):  # or a group's id would depend on which other files were read
        return None if math.isnan(v) else int(v) if v.is_integer() else v
    return v


def _key_str(values):
    return json.dumps([_key_value(v) for v in values], default=str)


def _hash(values):
    return hashlib.sha256(_key_str(values).encode()).hexdigest()[:10]


def group_runs(runs):
    """Add hardware_key, config_id (configuration only) and group_id (configuration + hardware + code)."""
    absent = [c for c in CONFIG_COLUMNS + ["device_name", "gpu_count", "hardware_id", "code_hash"] if c not in runs.columns]
    # added in one piece: column by column fragments the frame (and pandas warns on stderr)
    runs = pd.concat([runs, pd.DataFrame({c: [None] * len(runs) for c in absent}, index=runs.index)], axis=1)
    runs = runs.astype({c: object for c in CONFIG_COLUMNS + ["device_name", "gpu_count", "code_hash"]}).copy()
    runs["code_hash"] = runs["code_hash"].where(runs["code_hash"].notna(), None)
    # rows from before a setting existed ran at its default: read them so, as RunConfig.key does,
    # or a configuration measured again today would not meet its own older runs
    for c, v in NEW_FIELD_DEFAULTS.items():
        if v is not None:
            runs[c] = runs[c].where(runs[c].notna(), v)
    # rows from before hardware_id existed: the device and GPU count are all they tell
    fallback = ["dev-" + _hash([d, g])[:8] for d, g in zip(runs["device_name"], runs["gpu_count"])]
    runs["hardware_key"] = [h if isinstance(h, str) and h else f for h, f in zip(runs["hardware_id"], fallback)]
    # a CPU run held to fewer threads than the machine's cores (one of a side-by-side pair) ran on part
    # of the machine: its clock is not the machine's, so the thread count joins the key. Threads are per
    # process: a CPU DDP run of two one-thread processes on two cores had the whole machine
    threads, cores, gpus, procs = (_num_or_nan(runs, c) for c in ("torch_threads", "cpu_count", "gpu_count", "world_size"))
    part = (gpus == 0) & (threads * procs.fillna(1) < cores)
    runs.loc[part, "hardware_key"] += "/" + threads[part].astype(int).astype(str) + "thr"
    runs["config_id"] = [_hash(r) for r in runs[CONFIG_COLUMNS].itertuples(index=False)]
    runs["group_id"] = [_hash(r) for r in runs[CONFIG_COLUMNS + ["hardware_key", "code_hash"]].itertuples(index=False)]
    runs["contended"] = contended_mask(runs)
    return runs


def _num_or_nan(frame, col):  # row for row, nan where absent
    return pd.to_numeric(frame[col], errors="coerce") if col in frame else pd.Series(math.nan, index=frame.index)


def _num(frame, col):
    return pd.to_numeric(frame[col], errors="coerce").dropna() if col in frame else pd.Series(dtype=float)


def _median(frame, col):  # nan when nothing is recorded
    return float(_num(frame, col).median())


def _mean(frame, col):  # nan when nothing is recorded
    return float(_num(frame, col).mean())


def _group_row(g, prices, thr):
    ok = g[g["status"] == "ok"]
    attempted = int(g["status"].isin(OUTCOMES).sum())
    reached = ok[ok["reached_target"].fillna(False).astype(bool)]
    ttt = _num(reached, "time_to_target_s").tolist()
    acc = _num(ok, "final_acc").tolist()
    first = g.iloc[0]
    row = {c: first[c] for c in CONFIG_COLUMNS + ["device_name", "gpu_count", "hardware_key", "code_hash"]}
    row.update(group_id=first["group_id"], config_id=first["config_id"], runs=len(ok), failed_runs=len(g) - len(ok),
               attempted_runs=attempted, reached=len(reached),
               success_rate=len(reached) / attempted if attempted else math.nan,
               cpu_count=first.get("cpu_count"), cpu_model=first.get("cpu_model"), clock=first.get("clock"),
               model_kwargs_unchecked=first.get("model_kwargs_unchecked"),
               **{c: distinct(g, c) for c in SOFTWARE})
    row["median_time_to_target_s"] = statistics.median(ttt) if ttt else math.nan
    row["min_time_to_target_s"] = min(ttt) if ttt else math.nan
    row["max_time_to_target_s"] = max(ttt) if ttt else math.nan
    row["ci95_lo_time_to_target_s"], row["ci95_hi_time_to_target_s"] = median_ci95(ttt)
    row["olympic_time_to_target_s"] = olympic_mean(ttt)
    row["median_wall_time_to_target_s"] = _median(reached, "wall_time_to_target_s")
    row["mean_final_acc"] = statistics.fmean(acc) if acc else math.nan
    row["ci95_final_acc"] = mean_ci95(acc)
    row["best_acc"] = _num(ok, "best_acc").max() if len(_num(ok, "best_acc")) else math.nan
    row["mean_train_images_per_s"] = _mean(ok, "train_images_per_s")
    for c in ("mfu", "achieved_tflops", "flops_per_image", "mean_energy_j"):
        row[c] = _mean(ok, "energy_j" if c == "mean_energy_j" else c)
    # a process's later seeds pay only a reset: setup is what the seeds that set up paid (seed_index 0);
    # a row from before seed_index existed ran alone in its process, so it paid too
    paid = ok[ok["seed_index"].fillna(0) == 0] if "seed_index" in ok else ok
    for c in ("setup_time_s", "warmup_time_s", "peak_gpu_mem_bytes", "peak_host_rss_bytes"):
        row[c] = _median(paid if c in ("setup_time_s", "warmup_time_s") and len(paid) else ok, c)
    for c in ("timed_compiles", "timed_syncs"):
        v = _num(ok, c)
        row[c] = float(v.max()) if len(v) else math.nan
    row["contended_runs"] = int(g["contended"].sum())
    price = price_for(first["device_name"], prices)
    gpus = first["gpu_count"] if pd.notna(first["gpu_count"]) and first["gpu_count"] else 1
    row["price_per_hour"] = price * gpus if price is not None else math.nan
    row["cost_to_target_usd"] = row["median_time_to_target_s"] / 3600 * row["price_per_hour"]
    row["ranked"] = bool(len(ok) and row["success_rate"] > 0.5)
    for col in [c for c in thr.columns if c.startswith("time_to_")]:
        hit = thr[thr["run_id"].isin(ok["run_id"]) & thr[col].notna()]
        row[col] = float(hit[col].median()) if len(hit) else math.nan
        row[col.replace("time_to_", "reached_")[:-2]] = f"{len(hit)}/{attempted}"
        # a run that met it at its first evaluation has no earlier one to bound it: the median is at most this
        row[col[:-2] + "_first_eval"] = bool((hit[col] == hit["first_eval_s"]).any())
    return row


def aggregate(runs, prices, epochs=None, thresholds=DEFAULT_THRESHOLDS):
    """One row per group: the leaderboard's columns, ranked within each data set and target."""
    ep = epochs if epochs is not None and len(epochs) else pd.DataFrame(columns=["run_id", "epoch", "test_acc"])
    thr = summary.times_to_thresholds(ep, thresholds)
    board = pd.DataFrame([_group_row(g, prices, thr) for _, g in runs.groupby("group_id", sort=False)])
    if board.empty:
        return board
    board = board.sort_values(["ranked", "median_time_to_target_s", "mean_final_acc"],
                              ascending=[False, True, False], na_position="last").reset_index(drop=True)
    board["configuration"] = distinct_names(board, CONFIG_COLUMNS + ["code_hash"])
    board["task"] = [_key_str(r) for r in board[TASK].itertuples(index=False)]
    board["rank"] = None
    for _, idx in board[board["ranked"]].groupby("task").groups.items():
        for i, j in enumerate(sorted(idx, key=lambda j: board.loc[j, "median_time_to_target_s"]), 1):
            board.loc[j, "rank"] = i
    return board


def cost_table(board):
    """Ranked configurations with a price, cheapest time to target first within each task."""
    if board.empty:
        return board
    t = board[board["ranked"] & board["cost_to_target_usd"].notna()].sort_values(["task", "cost_to_target_usd"])
    return t.assign(cost_rank=t.groupby("task").cumcount() + 1)


def latency_table(runs, inference):
    """DAWNBench's inference board: batch-1 latency, ranked among checkpoints at or over their target."""
    if inference.empty or runs.empty:
        return pd.DataFrame()
    keep = ["run_id", "group_id", "train_images", "target", "batch_size", "epochs"]
    t = inference.merge(runs[keep], on="run_id", how="left", suffixes=("", "_run"))
    t["qualifies"] = t["top1_acc"] >= t["target"]
    t["task"] = [_key_str(r) for r in t[TASK].itertuples(index=False)]  # a rank compares within one, as above
    t = t.sort_values(["qualifies", "task", "latency_p50_ms"], ascending=[False, True, True]).reset_index(drop=True)
    t["rank"] = t[t["qualifies"]].groupby("task").cumcount() + 1
    return t


def hardware_table(board):
    """One configuration on several hardware keys, side by side."""
    multi = board.groupby("config_id")["hardware_key"].nunique()
    return board[board["config_id"].isin(multi[multi > 1].index)].sort_values(["config_id", "median_time_to_target_s"])


def read_sweeps(sources, warn):
    """RESULTS/sweeps/*.parquet, or an empty frame while this harness does not know that kind yet."""
    if "sweeps" not in results.KINDS:
        return pd.DataFrame()
    s = _once(results.read(sources, "sweeps", warn=warn), ["sweep_run_id"])
    if s.empty:
        return s
    s = s.copy()
    for c in ("wall_s", "train_time_s", "eval_time_s", "setup_time_s"):
        s[c] = pd.to_numeric(s.get(c), errors="coerce")
    # what the runs' clocks do not cover: process starts, imports, data decode outside setup, gaps
    rest = s["wall_s"] - s[["train_time_s", "eval_time_s", "setup_time_s"]].fillna(0).sum(axis=1)
    s["other_time_s"] = pd.to_numeric(s["other_time_s"], errors="coerce").fillna(rest) if "other_time_s" in s else rest
    return s.sort_values("started_at") if "started_at" in s else s


def _once(frame, key, warn=None):
    """One row per id: a run in two of the given directories (a copy, a directory named twice) counts once."""
    dup = frame.duplicated(key) if len(frame) else pd.Series(dtype=bool)
    if dup.any() and warn:
        warn(f"warning: {int(dup.sum())} run(s) appear in more than one file (same run_id); each is counted once")
    return frame[~dup] if dup.any() else frame


@dataclass
class Report:
    runs: pd.DataFrame
    epochs: pd.DataFrame
    board: pd.DataFrame
    effects: pd.DataFrame
    hw: pd.DataFrame
    cost: pd.DataFrame
    latency: pd.DataFrame
    warnings: list
    sources: list = field(default_factory=list)
    thresholds: tuple = DEFAULT_THRESHOLDS
    sweeps: pd.DataFrame = field(default_factory=pd.DataFrame)
    gaps: dict = field(default_factory=dict)
    splits: list = field(default_factory=list)
    gan_runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    pooled: list = field(default_factory=list)  # code pools (--same-code), "A+B" each


def build(sources, prices_path=None, thresholds=DEFAULT_THRESHOLDS, same_code=()):
    """Read, group and aggregate (the codes in each of `same_code` pooled as one: report_codes.py).
    Raises BenchError when there is nothing to report."""
    warnings = []

    def warn(msg):
        warnings.append(msg)
        say(msg)

    for s in sources:
        if not Path(s).is_dir():
            raise BenchError(f"results directory not found: {s}")
    prices = load_prices(prices_path)
    runs = _once(results.read(sources, "runs", warn=warn), ["run_id"], warn)
    if runs.empty:
        raise BenchError(f"no run results in {', '.join(map(str, sources))} (expected RESULTS/runs/*.parquet); "
                         "give the directory a sweep or `bench run --results` wrote")
    runs, pooled = pool_codes(runs, same_code)
    epochs = _once(results.read(sources, "epochs", warn=warn), ["run_id", "epoch"])
    inference = _once(results.read(sources, "inference", warn=warn), ["infer_id"])
    # the GANs have boards of their own (bench/report_gan.py): a distance is not an accuracy
    gan = runs["workload"].isin(("dcgan", "wgan")) if "workload" in runs.columns else pd.Series(False, index=runs.index)
    gan_runs, runs = runs[gan], runs[~gan]
    if runs.empty:
        return Report(runs, epochs, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(),
                      warnings, [str(s) for s in sources], tuple(thresholds), read_sweeps(sources, warn),
                      gan_runs=gan_runs, pooled=pooled)
    runs = group_runs(runs)
    board = aggregate(runs, prices, epochs, thresholds)
    return Report(runs, epochs, board, axis_effects(runs, board, CONFIG_COLUMNS), hardware_table(board), cost_table(board),
                  latency_table(runs, inference), warnings, [str(s) for s in sources], tuple(thresholds),
                  read_sweeps(sources, warn), rank_gaps(runs, board), code_splits(board), gan_runs, pooled)
