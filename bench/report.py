"""`bench report`: leaderboards from result directories.

Runs are grouped by configuration (every configuration column but the seed) and hardware
(device name and GPU count); repeats are aggregated:
  runs / failed_runs      runs with status ok / any other status
  success_rate            share of ok runs that reached the target ("hit 0.94 in 6/7 runs")
  median_time_to_target_s over the ok runs that reached the target; with 5 or more of them also
  olympic_time_to_target_s  MLPerf's mean without the fastest and the slowest
  mean_final_acc, ci95_final_acc  mean and 95% t-interval half-width over ok runs
  throughput, peak memory, energy, and cost = hours x $/GPU-hour x GPUs (PRICES or --prices).
RANK_RULE says which groups get a rank. Axis effects pair groups that differ in one setting
only; the hardware section lines up one configuration across devices.
"""
import hashlib
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import results
from .config import BenchError
from .ui import console, say

RANK_RULE = ("A configuration is ranked by median time to target only if more than half of its finished "
             "runs reached the target; the others are listed below the ranked ones, unranked. Time to target "
             "is DAWNBench's clock: training time up to the end of the first epoch at or over the target, "
             "evaluation excluded.")

CONFIG_COLUMNS = ["dataset", "train_images", "model", "model_kwargs", "precision", "inplace", "channels_last",
                  "compile", "batch_size", "world_size", "epochs", "target", "lr", "div", "pct", "mom_max",
                  "mom_min", "weight_decay", "label_smoothing", "cutout", "tta", "warmup_steps", "stop_at_target"]
HARDWARE_COLUMNS = ["device_name", "gpu_count"]
SHOWN = ["dataset", "model", "model_kwargs", "precision", "inplace", "batch_size", "world_size", "epochs",
         "target", "device_name"]

# Default prices, dollars per GPU-hour: AWS on-demand list prices in us-east-1 divided by the
# instance's GPUs (p2.xlarge K80; p3 V100; p4d A100; p5 H100 after the June 2025 price cut).
# Approximate and dated: pass --prices FILE ({"H100": 2.5, ...}; keys match device-name substrings).
PRICES = {"K80": 0.90, "V100": 3.06, "A100": 4.10, "H100": 6.88}

# two-sided 95% Student t critical values by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
       20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t95(df):
    if df < 1:
        return math.nan
    keys = [k for k in sorted(T95) if k <= df]
    return T95[keys[-1]] if df <= 120 else 1.960


def olympic_mean(values):
    """MLPerf: drop the fastest and the slowest, average the rest (needs 5 or more)."""
    v = sorted(values)
    return statistics.fmean(v[1:-1]) if len(v) >= 5 else math.nan


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


def _key_str(values):
    return json.dumps([None if (isinstance(v, float) and math.isnan(v)) else v for v in values], default=str)


def group_runs(runs):
    """Add group_id (configuration + hardware) and config_id (configuration only) columns."""
    runs = runs.copy()
    for c in CONFIG_COLUMNS + HARDWARE_COLUMNS:
        if c not in runs.columns:
            runs[c] = None
    runs = runs.astype({c: object for c in CONFIG_COLUMNS + HARDWARE_COLUMNS})
    runs["config_id"] = [hashlib.sha256(_key_str(r).encode()).hexdigest()[:10]
                         for r in runs[CONFIG_COLUMNS].itertuples(index=False)]
    runs["group_id"] = [hashlib.sha256(_key_str(r).encode()).hexdigest()[:10]
                        for r in runs[CONFIG_COLUMNS + HARDWARE_COLUMNS].itertuples(index=False)]
    return runs


def aggregate(runs, prices):
    """One row per group: the leaderboard's columns."""
    rows = []
    for gid, g in runs.groupby("group_id", sort=False):
        ok = g[g["status"] == "ok"]
        reached = ok[ok["reached_target"].astype(bool)]
        ttt = pd.to_numeric(reached["time_to_target_s"], errors="coerce").dropna().tolist()
        acc = pd.to_numeric(ok["final_acc"], errors="coerce").dropna().tolist()
        first = g.iloc[0]
        row = {c: first[c] for c in CONFIG_COLUMNS + HARDWARE_COLUMNS}
        row.update(group_id=gid, config_id=first["config_id"], runs=len(ok), failed_runs=len(g) - len(ok),
                   reached=len(reached), success_rate=len(reached) / len(ok) if len(ok) else math.nan)
        row["median_time_to_target_s"] = statistics.median(ttt) if ttt else math.nan
        row["olympic_time_to_target_s"] = olympic_mean(ttt)
        wttt = pd.to_numeric(reached["wall_time_to_target_s"], errors="coerce").dropna().tolist()
        row["median_wall_time_to_target_s"] = statistics.median(wttt) if wttt else math.nan
        row["mean_final_acc"] = statistics.fmean(acc) if acc else math.nan
        row["ci95_final_acc"] = (t95(len(acc) - 1) * statistics.stdev(acc) / math.sqrt(len(acc))
                                 if len(acc) > 1 else math.nan)
        for src, dst in (("train_images_per_s", "mean_train_images_per_s"), ("energy_j", "mean_energy_j")):
            v = pd.to_numeric(ok.get(src), errors="coerce").dropna() if src in ok else pd.Series(dtype=float)
            row[dst] = float(v.mean()) if len(v) else math.nan
        tc = pd.to_numeric(ok["timed_compiles"], errors="coerce").dropna() if "timed_compiles" in ok else []
        row["timed_compiles"] = float(tc.max()) if len(tc) else math.nan
        for src in ("peak_gpu_mem_bytes", "peak_host_rss_bytes"):
            v = pd.to_numeric(ok.get(src), errors="coerce").dropna() if src in ok else pd.Series(dtype=float)
            row[src] = float(v.median()) if len(v) else math.nan
        price = price_for(first["device_name"], prices)
        gpus = first["gpu_count"] if pd.notna(first["gpu_count"]) and first["gpu_count"] else 1
        row["price_per_hour"] = price * gpus if price is not None else math.nan
        row["cost_to_target_usd"] = (row["median_time_to_target_s"] / 3600 * row["price_per_hour"]
                                     if price is not None else math.nan)
        row["ranked"] = bool(len(ok) and row["success_rate"] > 0.5)
        rows.append(row)
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    board = board.sort_values(["ranked", "median_time_to_target_s", "mean_final_acc"],
                              ascending=[False, True, False], na_position="last").reset_index(drop=True)
    board["rank"] = None
    for _, idx in board[board["ranked"]].groupby(["dataset", "target"]).groups.items():
        for i, j in enumerate(sorted(idx, key=lambda j: board.loc[j, "median_time_to_target_s"]), 1):
            board.loc[j, "rank"] = i
    return board


def _cut(s, n=24):
    return s if len(s) <= n else s[:n - 1] + "…"


def model_label(row):
    try:
        kw = json.loads(row["model_kwargs"]) if isinstance(row["model_kwargs"], str) else {}
    except ValueError:
        kw = {}
    # a long value (a note, a path) is cut in tables; the full text stays in model_kwargs
    inner = ",".join(f"{k}={_cut(str(v).replace(' ', ''))}" for k, v in kw.items())
    return f"{row['model']}({inner})" if inner else str(row["model"])


def axis_effects(runs, board):
    """Pairs of groups that differ in exactly one setting (hardware equal): what that setting buys."""
    b = board.set_index("group_id")
    runs = runs.drop_duplicates("group_id").set_index("group_id")
    kw = runs["model_kwargs"].map(lambda s: json.loads(s) if isinstance(s, str) else {})
    cols = {c: runs[c] for c in CONFIG_COLUMNS if c != "model_kwargs"}
    for k in sorted({k for d in kw for k in d}):
        cols[f"model_kwargs.{k}"] = kw.map(lambda d, k=k: d.get(k))
    cols.update({c: runs[c] for c in HARDWARE_COLUMNS})
    table = pd.DataFrame(cols).astype(object).map(lambda v: json.dumps(v, default=str))
    out = []
    ids = list(table.index)
    for i, a in enumerate(ids):
        for c in ids[i + 1:]:
            diff = [col for col in table.columns if table.at[a, col] != table.at[c, col]]
            if len(diff) != 1 or diff[0] in HARDWARE_COLUMNS or diff[0] in ("dataset", "target", "train_images"):
                continue
            axis = diff[0]
            x, y = sorted([a, c], key=lambda g: str(table.at[g, axis]))
            bx, by = b.loc[x], b.loc[y]
            out.append({
                "axis": axis, "a": json.loads(table.at[x, axis]), "b": json.loads(table.at[y, axis]),
                "context": f"{model_label(bx)} {bx['precision']} bs{bx['batch_size']} on {bx['device_name']}",
                "group_a": x, "group_b": y,
                "speedup_b_over_a": _ratio(by["mean_train_images_per_s"], bx["mean_train_images_per_s"]),
                "time_to_target_ratio_b_over_a": _ratio(by["median_time_to_target_s"], bx["median_time_to_target_s"]),
                "acc_diff_b_minus_a": by["mean_final_acc"] - bx["mean_final_acc"],
                "acc_ci95": math.hypot(_nz(bx["ci95_final_acc"]), _nz(by["ci95_final_acc"])),
                "mem_ratio_b_over_a": _ratio(_mem(by), _mem(bx)),
                "runs_a": int(bx["runs"]), "runs_b": int(by["runs"]),
            })
    effects = pd.DataFrame(out)
    if len(effects):
        effects["summary"] = effects.apply(_summary, axis=1)
    return effects


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


def _summary(e):
    s = e["speedup_b_over_a"]
    speed = "n/a" if math.isnan(s) else (f"{s:.2f}x faster" if s >= 1 else f"{1 / s:.2f}x slower")
    d, ci = e["acc_diff_b_minus_a"], e["acc_ci95"]
    if isinstance(d, float) and math.isnan(d):
        acc = "accuracy n/a"
    else:  # with a single run on a side the difference has no interval of its own: say so
        single = min(e["runs_a"], e["runs_b"]) < 2
        if abs(d) <= max(ci, 0.002):
            notes = ([f"±{ci * 100:.1f} pp"] if ci else []) + (["one side has a single run"] if single else [])
            acc = "same accuracy" + (f" ({'; '.join(notes)})" if notes else "")
        else:
            acc = f"{d * 100:+.1f} pp accuracy" + (" (one side has a single run: may be noise)" if single else "")
    mem = e["mem_ratio_b_over_a"]
    mems = "" if math.isnan(mem) else f", {mem:.2f}x the peak memory"
    return f"{e['axis']} {e['b']} vs {e['a']}: {speed}, {acc}{mems}"


def cost_table(board):
    """Ranked configurations with a price: cheapest time to target first."""
    if board.empty:
        return board
    b = board[board["ranked"] & board["cost_to_target_usd"].notna()].copy()
    return b.sort_values("cost_to_target_usd")


def latency_table(runs, inference):
    """DAWNBench's inference board: batch-1 latency, ranked among checkpoints at or over their target."""
    if inference.empty or runs.empty:
        return pd.DataFrame()
    keep = ["run_id", "group_id", "target", "batch_size", "epochs"]
    t = inference.merge(runs[keep], on="run_id", how="left", suffixes=("", "_run"))
    t["qualifies"] = t["top1_acc"] >= t["target"]
    t = t.sort_values(["qualifies", "latency_p50_ms"], ascending=[False, True]).reset_index(drop=True)
    t["rank"] = [i + 1 if q else None for i, q in enumerate(t["qualifies"])]
    return t


LATENCY_COLUMNS = ["rank", "model", "precision", "device", "top-1", "target", "p50 ms", "p99 ms", "mean ms",
                   "images/s (batch)", "run"]


def latency_cells(r):
    return [fmt_num(r["rank"], "int") if pd.notna(r["rank"]) else "–", model_label(r), str(r["precision"]),
            str(r["device_name"]), fmt_num(r["top1_acc"], "acc"), fmt_num(r["target"], "acc"),
            f"{r['latency_p50_ms']:.2f}", f"{r['latency_p99_ms']:.2f}", f"{r['latency_mean_ms']:.2f}",
            f"{r['throughput_images_per_s']:,.0f} ({int(r['throughput_batch_size'])})", str(r["run_id"])]


COST_COLUMNS = ["rank", "model", "precision", "batch", "device", "GPUs", "median TTT s", "$/hour", "cost to target"]


def cost_cells(i, r):
    return [str(i), model_label(r), str(r["precision"]), fmt_num(r["batch_size"], "int"), str(r["device_name"]),
            fmt_num(r["gpu_count"], "int"), fmt_num(r["median_time_to_target_s"], "s"),
            f"${r['price_per_hour']:.2f}", fmt_num(r["cost_to_target_usd"], "usd")]


def hardware_table(board):
    multi = board.groupby("config_id")["device_name"].nunique()
    keep = multi[multi > 1].index
    return board[board["config_id"].isin(keep)].sort_values(["config_id", "median_time_to_target_s"])


# --- formatting -------------------------------------------------------------------------------

def fmt_num(v, kind):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return {"s": lambda x: f"{x:.1f}", "acc": lambda x: f"{x * 100:.2f}%", "pct": lambda x: f"{x * 100:.0f}%",
            "ips": lambda x: f"{x:,.0f}", "mib": lambda x: f"{x / 2**20:,.0f}", "usd": lambda x: f"${x:.3f}",
            "j": lambda x: f"{x / 1000:,.1f}", "x": lambda x: f"{x:.2f}x", "pp": lambda x: f"{x * 100:+.2f}",
            "int": lambda x: f"{int(x)}"}[kind](v)


LEADER_COLUMNS = [  # (header, column, format)
    ("rank", "rank", "int"), ("model", None, "model"), ("precision", "precision", None),
    ("in-place", "inplace", None), ("batch", "batch_size", "int"), ("world", "world_size", "int"),
    ("epochs", "epochs", "int"), ("device", "device_name", None),
    ("runs", "runs", "int"), ("failed", "failed_runs", "int"), ("reached", "success_rate", "pct"),
    ("median TTT s", "median_time_to_target_s", "s"), ("olympic TTT s", "olympic_time_to_target_s", "s"),
    ("mean acc", "mean_final_acc", "acc"), ("±95%", "ci95_final_acc", "acc"),
    ("img/s", "mean_train_images_per_s", "ips"), ("GPU MiB", "peak_gpu_mem_bytes", "mib"),
    ("host MiB", "peak_host_rss_bytes", "mib"), ("energy kJ", "mean_energy_j", "j"),
    ("cost", "cost_to_target_usd", "usd"), ("group", "group_id", None),
]


def leader_cells(row):
    out = []
    for _, col, kind in LEADER_COLUMNS:
        if kind == "model":
            out.append(model_label(row))
        elif kind:
            out.append(fmt_num(row[col], kind))
        else:
            out.append("–" if row[col] is None or (isinstance(row[col], float) and math.isnan(row[col])) else str(row[col]))
    return out


def boards_by_task(board):
    """[(title, rows)] one leaderboard per data set and target."""
    out = []
    if board.empty:
        return out
    for (ds, target), g in board.groupby(["dataset", "target"], sort=True, dropna=False):
        out.append((f"{ds}, target {float(target) * 100:.1f}%", g))
    return out


def compile_notes(board):
    """One line per group some of whose runs compiled graphs on the clock."""
    if board.empty or "timed_compiles" not in board:
        return []
    hit = board[pd.to_numeric(board["timed_compiles"], errors="coerce") > 0]
    return [f"{model_label(r)} {r['precision']} batch {r['batch_size']} (group {r['group_id']}): torch.compile "
            f"compiled up to {int(r['timed_compiles'])} graph(s) during timed steps, so its times include "
            f"compilation (give it --warmup-steps)" for _, r in hit.iterrows()]


def md_escape(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", " "))


def md_table(headers, rows):
    lines = ["| " + " | ".join(md_escape(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(rep, sources):
    board, effects, hw, warnings = rep.board, rep.effects, rep.hw, rep.warnings
    parts = ["# CIFAR-10 time-to-accuracy leaderboard", "",
             f"From {len(sources)} results director{'y' if len(sources) == 1 else 'ies'}: "
             + ", ".join(f"`{md_escape(s)}`" for s in sources) + ".", "", RANK_RULE, ""]
    for title, g in boards_by_task(board):
        parts += [f"## {md_escape(title)}", "", md_table([h for h, _, _ in LEADER_COLUMNS],
                                                         [leader_cells(r) for _, r in g.iterrows()]), ""]
    notes = compile_notes(board)
    if notes:
        parts += ["## Compilation on the clock", ""] + [f"- {md_escape(n)}" for n in notes] + [""]
    if len(rep.cost):
        parts += ["## By cost", "", "Ranked configurations on priced hardware, cheapest run to the target first.", "",
                  md_table(COST_COLUMNS, [cost_cells(i, r) for i, (_, r) in enumerate(rep.cost.iterrows(), 1)]), ""]
    if len(rep.latency):
        parts += ["## Inference latency", "", "DAWNBench's rule: each test image alone (batch 1); ranked among "
                  "checkpoints whose top-1 reached their run's target.", "",
                  md_table(LATENCY_COLUMNS, [latency_cells(r) for _, r in rep.latency.iterrows()]), ""]
    parts += ["## Axis effects", "", "Pairs of configurations that differ in one setting only, same hardware. "
              "Speed is the ratio of training throughput; accuracy is the difference of mean final accuracy "
              "(± the 95% intervals combined).", ""]
    if len(effects):
        parts += [md_table(["effect", "context", "runs", "TTT ratio"],
                           [[e["summary"], e["context"], f"{e['runs_a']}+{e['runs_b']}",
                             fmt_num(e["time_to_target_ratio_b_over_a"], "x")] for _, e in effects.iterrows()]), ""]
    else:
        parts += ["No pair of configurations differs in exactly one setting.", ""]
    parts += ["## Hardware", ""]
    if len(hw):
        parts += [md_table(["configuration", "device", "GPUs", "runs", "median TTT s", "img/s", "cost"],
                           [[f"{model_label(r)} {r['precision']} bs{r['batch_size']} ({r['config_id']})",
                             r["device_name"], fmt_num(r["gpu_count"], "int"), fmt_num(r["runs"], "int"),
                             fmt_num(r["median_time_to_target_s"], "s"), fmt_num(r["mean_train_images_per_s"], "ips"),
                             fmt_num(r["cost_to_target_usd"], "usd")] for _, r in hw.iterrows()]), ""]
    else:
        parts += ["No configuration has results on more than one device yet.", ""]
    if warnings:
        parts += ["## Files skipped", ""] + [f"- {md_escape(w)}" for w in warnings] + [""]
    parts += ["Costs use $/GPU-hour list prices (see `bench/report.py`, override with `--prices`). "
              "Each figure's full configuration, hardware fingerprint and run count are in leaderboard.json.", ""]
    return "\n".join(parts)


def dawnbench_entry(runs, epochs, board, group_id, author, out):
    sel = board[board["group_id"] == group_id]
    if sel.empty:
        raise BenchError(f"no group {group_id!r} in these results; the group column of the leaderboard lists them")
    b = sel.iloc[0]
    g = runs[(runs["group_id"] == group_id) & (runs["status"] == "ok")].copy()
    if g.empty:
        raise BenchError(f"group {group_id!r} has no finished runs to make an entry from")
    g["ttt"] = pd.to_numeric(g["time_to_target_s"], errors="coerce")
    hit = g.dropna(subset=["ttt"]).sort_values("ttt")
    rep = hit.iloc[(len(hit) - 1) // 2] if len(hit) else g.sort_values("final_acc").iloc[-1]
    ep = epochs[epochs["run_id"] == rep["run_id"]].sort_values("epoch")
    gpus = int(b["gpu_count"]) if pd.notna(b["gpu_count"]) and b["gpu_count"] else 0
    entry = {
        "version": "v1.0", "author": author, "authorEmail": "", "framework": f"PyTorch {rep['torch_version']}",
        "codeURL": "", "model": model_label(b),
        "hardware": f"{gpus} x {b['device_name']}" if gpus else str(b["device_name"]),
        "costPerHour": None if math.isnan(b["price_per_hour"]) else round(float(b["price_per_hour"]), 4),
        "timestamp": str(pd.Timestamp(rep["started_at"]).date()),
        "misc": {"dataset": b["dataset"], "precision": b["precision"], "batchSize": int(b["batch_size"]),
                 "epochs": int(b["epochs"]), "target": float(b["target"]), "runs": int(b["runs"]),
                 "successRate": float(b["success_rate"]), "medianTimeToTargetSeconds": _json_num(b["median_time_to_target_s"]),
                 "representativeRun": rep["run_id"], "gitCommit": rep.get("git_commit"),
                 "clock": "training time, evaluation excluded"},
    }
    out = Path(out)
    stem = f"dawnbench_{results.safe_name(group_id)}"
    (out / f"{stem}.json").write_text(json.dumps(entry, indent=2) + "\n")
    tsv = ["epoch\thours\ttop1Accuracy"] + [f"{int(r.epoch)}\t{r.elapsed_s / 3600:.8f}\t{r.test_acc * 100:.2f}"
                                            for r in ep.itertuples()]
    (out / f"{stem}.tsv").write_text("\n".join(tsv) + "\n")
    return out / f"{stem}.json", out / f"{stem}.tsv"


def _json_num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


TERMINAL = ("rank", "model", "precision", "in-place", "batch", "world", "device", "runs", "failed", "reached",
            "median TTT s", "mean acc", "img/s", "GPU MiB", "host MiB", "cost", "group")


def print_terminal(board, effects):
    """The leaderboard on stdout (it is the output); Text cells so no result string is markup."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = Console(highlight=False, width=None if console.is_terminal else 200)
    keep = [i for i, (h, _, _) in enumerate(LEADER_COLUMNS) if h in TERMINAL]
    out.print(Text(RANK_RULE))
    for title, g in boards_by_task(board):
        t = Table(title=Text(title), title_justify="left")
        for i in keep:
            t.add_column(Text(LEADER_COLUMNS[i][0]))
        for _, r in g.iterrows():
            cells = leader_cells(r)
            t.add_row(*[Text(cells[i]) for i in keep])
        out.print(t)
    for _, e in effects.iterrows():
        out.print(Text(f"{e['summary']}  [{e['context']}]"))


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


def build(sources, prices_path=None):
    warnings = []

    def warn(msg):
        warnings.append(msg)
        say(msg)

    for s in sources:
        if not Path(s).is_dir():
            raise BenchError(f"results directory not found: {s}")
    runs = results.read(sources, "runs", warn=warn)
    epochs = results.read(sources, "epochs", warn=warn)
    inference = results.read(sources, "inference", warn=warn)
    prices = load_prices(prices_path)
    empty = pd.DataFrame()
    if runs.empty:
        return Report(runs, epochs, empty, empty, empty, empty, empty, warnings)
    runs = group_runs(runs)
    board = aggregate(runs, prices)
    return Report(runs, epochs, board, axis_effects(runs, board), hardware_table(board), cost_table(board),
                  latency_table(runs, inference), warnings)


def main(a):
    rep = build(a.results, a.prices)
    if rep.runs.empty:
        say(f"no run results found in {', '.join(a.results)} (expected RESULTS/runs/*.parquet)")
        if not a.out:
            return 0
    if not a.out:
        print_terminal(rep.board, rep.effects)
        return 0
    from . import report_html

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.md").write_text(to_markdown(rep, a.results))
    rep.board.to_csv(out / "leaderboard.csv", index=False)
    (out / "leaderboard.json").write_text(rep.board.to_json(orient="records", indent=1, default_handler=str))
    (out / "index.html").write_text(report_html.page(rep, a.results))
    written = ["leaderboard.md", "index.html", "leaderboard.csv", "leaderboard.json"]
    if a.entry:
        written += [p.name for p in dawnbench_entry(rep.runs, rep.epochs, rep.board, a.entry, a.author, out)]
    say(f"wrote {', '.join(written)} to {out}")
    return 0
