"""DAWNBench entry files for one group: its JSON entry and the TSV of its representative run's
epochs (the run at the median time to target; of an even count's two middle runs, the slower, so the
time the TSV publishes is never under the leaderboard's median)."""
import json
import math

import pandas as pd

from . import results
from .config import BenchError
from .report import SOFTWARE
from .report_boards import other_clock
from .report_fmt import json_num, missing, model_label


def dawnbench_entry(runs, epochs, board, group_id, author):
    """{file name: text}; nothing is written here, so a failure leaves no files behind."""
    sel = board[board["group_id"] == group_id]
    if sel.empty:
        raise BenchError(f"no group {group_id!r} in these results; the group column of the leaderboard lists them")
    b = sel.iloc[0]
    g = runs[(runs["group_id"] == group_id) & (runs["status"] == "ok")].copy()
    if g.empty:
        raise BenchError(f"group {group_id!r} has no finished runs to make an entry from")
    g["ttt"] = pd.to_numeric(g["time_to_target_s"], errors="coerce")
    hit = g.dropna(subset=["ttt"]).sort_values("ttt")
    rep = hit.iloc[len(hit) // 2] if len(hit) else g.sort_values("final_acc").iloc[-1]
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
                 "successRate": float(b["success_rate"]), "medianTimeToTargetSeconds": json_num(b["median_time_to_target_s"]),
                 "representativeRun": rep["run_id"], "gitCommit": rep.get("git_commit"),
                 "codeHash": rep.get("code_hash"),
                 # what the entry is, read on its own: the board's configuration, and the machine as keyed
                 # (a CPU run on part of the cores says so: /Nthr) with the software it ran on
                 "configuration": b["configuration"], "groupId": b["group_id"], "hardwareKey": b["hardware_key"],
                 "worldSize": int(b["world_size"]), "cpuCores": _int(b.get("cpu_count")),
                 "torchThreads": _int(rep.get("torch_threads")),
                 "software": {c: b.get(c) for c in SOFTWARE if c != "git_commit"},
                 # an outside code's timer (airbench's) is not comparable as ours: the entry says whose it is
                 "clock": other_clock(rep) or "training time, evaluation excluded"},
    }
    stem = f"dawnbench_{results.safe_name(group_id)}"
    tsv = ["epoch\thours\ttop1Accuracy"] + [f"{int(r.epoch)}\t{r.elapsed_s / 3600:.8f}\t{r.test_acc * 100:.2f}"
                                            for r in ep.itertuples()]
    return {f"{stem}.json": json.dumps(entry, indent=2, default=str) + "\n", f"{stem}.tsv": "\n".join(tsv) + "\n"}


def _int(v):
    return None if missing(v) else int(v)
