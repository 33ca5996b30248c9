"""Eager against compiled: training throughput and MFU of the lesson's networks, each variant a
real `bench run` in a fresh process (so each pays its own compilation, in its untimed warm-up),
side by side on one device. Throughput is the second epoch's (steady state: the first epoch's
memory and autotuning settle); MFU is the run row's (bench/flops.py's peak table).

A mode may end in +unfused or +fused: the optimizer's steps unfused (PyTorch's default, where fp16's
GradScaler reads its overflow flag on the host every step, a sync) or fused (the harness's default on
CUDA). The GPU default times eager and CUDA graphs both ways, so the cost of that sync is measured.

    BENCH_DATA=... python benchmarks/compile_speed.py --device cuda [--models darknet,darknet-wide,wrn]
        [--modes eager,eager+unfused,default,reduce-overhead,max-autotune-no-cudagraphs] --out FILE
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import device_of, guard, parser, positive, save

import pandas as pd

from bench.config import COMPILE_MODES

ROOT = Path(__file__).resolve().parent.parent
MODELS = {  # the lesson's Darknet (bottleneck and wide ResLayer) and fast.ai's wrn_22
    "darknet": ["--model", "darknet", "--model-kwargs", "blocks=1,2,4,6,3", "nf=32", "width=0.5"],
    "darknet-wide": ["--model", "darknet", "--model-kwargs", "blocks=1,2,4,6,3", "nf=32", "width=1"],
    "wrn": ["--model", "wrn", "--model-kwargs", "depth=22", "k=6"],
}
SMOKE_MODEL = ["--model", "darknet", "--model-kwargs", "blocks=1,1", "nf=8", "width=0.5"]


def variant(mode):
    """`bench run` flags for MODE[+fused|+unfused]."""
    mode, _, steps = mode.partition("+")
    flags = ["--no-compile"] if mode == "eager" else ["--compile", "--compile-mode", mode]
    return flags + {"": [], "fused": ["--fused"], "unfused": ["--no-fused"]}[steps]


def settings(a, device):
    """What every variant runs with, as it is recorded in the JSON (--smoke replaces the sizes)."""
    batch = 64 if a.smoke else a.batch_size
    return {"batch_size": batch, "limit_train": 256 if a.smoke else 50 * batch,
            "warmup_steps": 2 if a.smoke else 10, "epochs": 2, "timed_epoch": 2, "runs_per_variant": 1,
            "precision": a.precision or ("fp16" if device == "cuda" else "bf16")}


def one(model_args, mode, a, device, results):
    s = settings(a, device)
    cmd = [sys.executable, "-m", "bench", "run", *model_args, *variant(mode), "--batch-size", str(s["batch_size"]),
           "--limit-train", str(s["limit_train"]), "--warmup-steps", str(s["warmup_steps"]),
           "--epochs", str(s["epochs"]), "--precision", s["precision"], "--channels-last", "--device", device,
           "--lr", "0.2", "--target", "0.99", "--results", results, "--no-progress-bar", "--json"]
    cmd += ["--data", a.data] if a.data else []
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    try:
        run_id = json.loads(p.stdout.strip().splitlines()[-1])["run_id"]
    except (ValueError, IndexError, KeyError):
        return {"mode": mode, "status": f"failed: {p.stderr.strip().splitlines()[-1:] or p.returncode}"}
    row = pd.read_parquet(Path(results) / "runs" / f"{run_id}.parquet").iloc[0]
    epochs = Path(results) / "epochs" / f"{run_id}.parquet"
    if row.status != "ok" or not epochs.exists():  # one variant crashing must not lose the others' figures
        return {"mode": mode, "status": f"{row.status}: {str(row.get('error')).strip().splitlines()[-1:]}"}
    ep = pd.read_parquet(epochs).sort_values("epoch")
    ips = float(ep.train_images_per_s.iloc[-1]) if len(ep) else float("nan")
    mfu = row.get("mfu")
    return {"mode": mode, "status": row.status, "fused": bool(row.fused), "images_per_s": ips,
            "warmup_s": float(row.warmup_time_s),
            "timed_compiles": None if pd.isna(row.timed_compiles) else int(row.timed_compiles),
            "timed_syncs": None if pd.isna(row.timed_syncs) else int(row.timed_syncs),
            "mfu": None if mfu is None or pd.isna(mfu) else float(mfu),
            "achieved_tflops": None if pd.isna(row.get("achieved_tflops")) else float(row.achieved_tflops),
            "peak_gpu_mem_bytes": None if pd.isna(row.peak_gpu_mem_bytes) else int(row.peak_gpu_mem_bytes)}


def main():
    p = parser(__doc__)
    p.add_argument("--models", default="darknet", help=f"comma-separated: {', '.join(MODELS)} (default darknet)")
    p.add_argument("--modes", help="comma-separated: eager and torch.compile modes, each optionally +unfused "
                                    "or +fused (default eager,eager+unfused,default,reduce-overhead,"
                                    "reduce-overhead+unfused; with --smoke eager,default)")
    p.add_argument("--batch-size", type=positive, default=512, help="default 512; 64 with --smoke")
    p.add_argument("--precision", help="default fp16 on a GPU, bf16 on a CPU")
    p.add_argument("--results", help="keep the run rows here (default: a temporary directory)")
    a = p.parse_args()
    device = device_of(a.device)
    unknown = [m for m in a.models.split(",") if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(MODELS)}")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        results = a.results or tmp
        for name in a.models.split(","):
            args = SMOKE_MODEL if a.smoke else MODELS[name]
            modes = a.modes or ("eager,default" if a.smoke else
                                "eager,eager+unfused,default,reduce-overhead,reduce-overhead+unfused")
            for mode in modes.split(","):
                base, _, steps = mode.partition("+")
                if base not in ("eager", *COMPILE_MODES) or steps not in ("", "fused", "unfused"):
                    p.error(f"unknown mode {mode!r}: eager or {', '.join(COMPILE_MODES)}, optionally +fused "
                            f"or +unfused")
            rows = [one(args, mode, a, device, results) for mode in modes.split(",")]
            out[name] = rows
            base = rows[0].get("images_per_s")  # the first mode named, eager by default; None if it failed
            for r in rows:
                if "images_per_s" not in r:
                    print(f"{name:13s} {r['mode']:28s} {r['status']}", flush=True)
                    continue
                mfu = "–" if r["mfu"] is None else f"{r['mfu'] * 100:.1f}%"
                rel = r["images_per_s"] / base if base else float("nan")
                print(f"{name:13s} {r['mode']:28s} {r['images_per_s']:10,.0f} img/s  {rel:5.2f}x {rows[0]['mode']}"
                      f"  MFU {mfu:>6s}  warm-up+compile {r['warmup_s']:6.1f} s  timed compiles {r['timed_compiles']}"
                      f"  timed syncs {r['timed_syncs']}",
                      flush=True)
    save(a.out, "compile_speed", {"models": out, **settings(a, device)}, device, a)


if __name__ == "__main__":
    guard(main)
