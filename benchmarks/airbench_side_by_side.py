"""airbench's `train94` (Keller Jordan's `airbench` package, 0.1.8) on the same data as the harness,
recorded as run rows in the harness's schema, so `bench report` ranks it beside our recipes.

airbench reads `cifar10/train.pt` and `cifar10/test.pt` from the working directory (a dict of uint8
images [N, 32, 32, 3], int64 labels and class names) and builds its default loader when it is
imported; this script writes those files from the harness's decoded cache first, so both train on
exactly the same images (the shared JPEG copy, not the original CIFAR-10).

Clock: `airbench.warmup94()` first (untimed, as airbench does), then per run a device sync around
the whole `train94(verbose=False)` call (its whitening initialisation included); the final
evaluation (its TTA level 2) is timed separately and excluded, as in the harness. Accuracy is
measured once, at the end (airbench has no per-epoch evaluation in this mode). Needs CUDA.

    python benchmarks/airbench_side_by_side.py --data ../shared/data/cifar10-jpeg.tar.xz --results DIR --runs 5
"""
import json
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from common import parser  # first: puts the project on the path

from bench import data as data_mod
from bench import results
from bench.measure import fingerprint, peak_rss_bytes

CLOCK = ("airbench train94(verbose=False) after warmup94(); device sync around the whole call (whitening "
         "init included); final TTA-2 evaluation excluded; accuracy measured once, at the end")


def export(ds, workdir):
    """airbench's file format, from the harness's uint8 arrays (NCHW -> NHWC)."""
    d = Path(workdir) / "cifar10"
    d.mkdir(parents=True, exist_ok=True)
    for split, x, y in (("train", ds.train_x, ds.train_y), ("test", ds.test_x, ds.test_y)):
        torch.save({"images": x.permute(0, 2, 3, 1).contiguous(), "labels": y.clone(),
                    "classes": list(data_mod.CLASSES)}, d / f"{split}.pt")
    return d


def row_for(ds, i, train_s, eval_s, acc, target, started):
    rid = f"airbench94-{started:%Y%m%dT%H%M%S}-{i}-{os.urandom(3).hex()}"
    row = {"run_id": rid, "schema_version": results.SCHEMA_VERSION, "status": "ok", "config_key": "airbench94",
           "recipe": "airbench94", "dataset": ds.name, "data_checksum": ds.checksum,
           "train_images": len(ds.train_x), "test_images": len(ds.test_x), "model": "airbench94",
           "model_kwargs": json.dumps({"package": "airbench 0.1.8", "fn": "train94"}), "precision": "fp16",
           "inplace": False, "channels_last": True, "compile": False, "batch_size": 1024,
           "batch_size_scope": "global", "world_size": 1, "epochs": 10, "target": target,
           "seed": i, "label_smoothing": 0.2, "tta": True, "warmup_steps": 1, "stop_at_target": False,
           "reached_target": acc >= target, "epoch_reached": 10 if acc >= target else None,
           "time_to_target_s": train_s if acc >= target else None,
           "wall_time_to_target_s": train_s + eval_s if acc >= target else None,
           "train_time_s": train_s, "eval_time_s": eval_s, "wall_time_s": train_s + eval_s,
           "final_acc": acc, "best_acc": acc, "train_images_per_s": 9.9 * len(ds.train_x) / train_s,
           "peak_gpu_mem_bytes": torch.cuda.max_memory_allocated(), "peak_host_rss_bytes": peak_rss_bytes(),
           "started_at": started, "finished_at": datetime.now(timezone.utc), "clock": CLOCK,
           **fingerprint("cuda", 1)}
    epoch = {"run_id": rid, "epoch": 10, "elapsed_s": train_s, "wall_s": train_s + eval_s, "test_acc": acc,
             "train_images_per_s": row["train_images_per_s"], "eval_s": eval_s}
    return row, epoch


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--results", required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--budget-s", type=float, default=None, help="stop starting runs after this long")
    p.add_argument("--target", type=float, default=0.94)
    p.add_argument("--export-only", action="store_true", help="write airbench's data files and stop (no CUDA)")
    a = p.parse_args()
    ds = data_mod.load(a.data)
    with tempfile.TemporaryDirectory(prefix="airbench-") as work:
        d = export(ds, work)
        if a.export_only:
            print(f"wrote {d}/train.pt and test.pt ({len(ds.train_x)} + {len(ds.test_x)} images of {ds.name})")
            return
        if not torch.cuda.is_available():
            raise SystemExit("airbench needs a CUDA GPU; nothing run")
        run_all(a, ds, work)


def run_all(a, ds, work):
    results_dir = Path(a.results).resolve()
    os.chdir(work)  # airbench finds cifar10/*.pt here, at import time
    import airbench

    airbench.warmup94()
    t_start = time.perf_counter()
    for i in range(a.runs):
        if a.budget_s and i and time.perf_counter() - t_start > a.budget_s:
            break
        started = datetime.now(timezone.utc)
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model = airbench.train94(verbose=False)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        acc = airbench.evaluate(model, airbench.CifarLoader("cifar10", train=False, batch_size=2000), tta_level=2)
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        row, epoch = row_for(ds, i, t1 - t0, t2 - t1, acc, a.target, started)
        results.write(results_dir, "epochs", row["run_id"], [epoch])
        results.write(results_dir, "runs", row["run_id"], [row])
        print(f"airbench94 run {i}: {acc:.4f} in {t1 - t0:.2f} s (eval {t2 - t1:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
