"""`bench infer`: DAWNBench's inference measurements for a checkpoint from `bench run --save`.

  - latency: each test image classified alone (batch 1), from a device sync to the predicted
    class on the host; p50, p99 and mean in milliseconds;
  - throughput: the whole test set in batches of --batch-size, after one untimed batch;
  - top-1 accuracy over the whole test set, with the same batches, precision and flip TTA as the
    run's own evaluation, so it equals the run's final accuracy for the same weights.
The first WARMUP images are classified once untimed before the timed pass over all of them.
The checkpoint is loaded with torch.load(weights_only=True): it cannot run code.
"""
import json
import os
import sys
import time
import warnings
from datetime import datetime, timezone

import torch

import models

from . import data as data_mod
from . import loader, precision, results
from .config import BenchError
from .measure import fingerprint, sync
from .row import CHECKPOINT_FORMAT
from .workloads.classify import evaluate_logits
from .ui import say

WARMUP = 10


def load_checkpoint(path):
    """The checkpoint's dict, or BenchError in one line: torch's own messages are cut mid-sentence
    at a line break and advise `weights_only=False`, which would run whatever code the file holds."""
    if not os.path.isfile(path):
        raise BenchError(f"checkpoint not found: {path} (save one with `bench run --save PATH`)")
    not_ours = f"{path} is not a cifar-bench checkpoint (write one with `bench run --save PATH`)"
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise about a file we refuse
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a pickle with code, a truncated or foreign file, ...
        raise BenchError(f"{not_ours}; it cannot be read as one ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise BenchError(not_ours)
    return ckpt


def build(ckpt, device):
    # a user's file by the absolute path the run resolved (its `--model` may be relative to another
    # directory), and only the version it trained: an edited file whose weights still load would
    # be measured, and its top-1 recorded, as the run's network
    name = ckpt.get("model_source") or ckpt["model"]
    try:
        if ckpt.get("model_source_hash") and models.resolve(name).source_hash != ckpt["model_source_hash"]:
            raise BenchError(f"{name.rpartition(':')[0]} changed since the run saved this checkpoint (its sha256 "
                             "differs)")
        model = models.create(name, inplace=ckpt["inplace"], **_as_given(name, ckpt["model_kwargs"]))
        model.load_state_dict(ckpt["state_dict"])
    except Exception as e:  # noqa: BLE001 - a user's file moved or changed; its factory may raise anything
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BenchError(f"cannot rebuild the checkpoint's model {ckpt['model']!r} ({why}); its source must be "
                         "where and as it was when the run saved it") from None
    fmt = torch.channels_last if ckpt["channels_last"] else torch.contiguous_format
    return model.to(device, memory_format=fmt).eval()


def _as_given(name, kwargs):
    """The checkpoint's keywords are canonical: a default that is not a literal (`act=nn.ReLU`) is held
    as its repr, which the factory cannot take; it gets its own default there instead."""
    from models.registry import plain
    defaults = models.model_keywords(name)
    return {k: v for k, v in kwargs.items() if not (k in defaults and not isinstance(defaults[k], str)
                                                    and isinstance(v, str) and v == plain(defaults[k]))}


def main(a):
    ckpt = load_checkpoint(a.checkpoint)
    if ckpt.get("workload", "classify") != "classify":  # a GAN's pair has no classes to time or score
        raise BenchError(f"{a.checkpoint} holds a {ckpt['workload']} workload's {ckpt.get('model')} networks; "
                         "bench infer measures classifiers (a checkpoint of the classify workload)")
    if a.device == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda asked for, but no CUDA GPU is visible here; use --device cpu")
    device = torch.device("cuda" if a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available()) else "cpu")
    if ckpt["precision"] == "fp16" and device.type == "cpu":
        raise BenchError("this checkpoint was trained in fp16, which needs a CUDA GPU for inference")
    if a.batch_size < 1 or (a.limit is not None and a.limit < 1):
        raise BenchError("--batch-size and --limit must be positive")
    ds = data_mod.load(a.data, warn=say)
    if ds.name != ckpt["dataset"]:
        say(f"warning: checkpoint was trained on {ckpt['dataset']}, evaluating on {ds.name}")
    model = build(ckpt, device)
    dtype = precision.dtype(ckpt["precision"])
    started = datetime.now(timezone.utc)
    tta = ckpt["tta"]

    with torch.inference_mode(), precision.autocast(device, ckpt["precision"]):
        # accuracy with the run's own evaluation batches, so it reproduces the run's number
        batches = loader.eval_batches(ds.test_x, ds.test_y, ckpt["mean"], ckpt["std"],
                                      ckpt.get("eval_batch_size", 1000), device, dtype, ckpt["channels_last"])
        correct = sum(int((evaluate_logits(model, x, tta, ckpt.get("tta_views")).argmax(1) == y).sum()) for x, y in batches)
        top1 = correct / len(ds.test_x)
        batches = loader.eval_batches(ds.test_x, ds.test_y, ckpt["mean"], ckpt["std"], a.batch_size, device,
                                      dtype, ckpt["channels_last"])

        evaluate_logits(model, batches[0][0], tta, ckpt.get("tta_views"))  # untimed
        sync(device)
        t0 = time.perf_counter()
        for x, _ in batches:
            evaluate_logits(model, x, tta, ckpt.get("tta_views"))
        sync(device)
        throughput = len(ds.test_x) / (time.perf_counter() - t0)

        n = min(a.limit or len(ds.test_x), len(ds.test_x))
        singles = loader.eval_batches(ds.test_x[:n], ds.test_y[:n], ckpt["mean"], ckpt["std"], 1,
                                      device, dtype, ckpt["channels_last"])
        for x, _ in singles[:WARMUP]:  # untimed: the first calls at batch 1 pick their kernels
            evaluate_logits(model, x, tta, ckpt.get("tta_views")).argmax(1).item()
        times = []
        for x, _ in singles:
            sync(device)
            t = time.perf_counter()
            evaluate_logits(model, x, tta, ckpt.get("tta_views")).argmax(1).item()  # .item(): the answer is on the host
            times.append((time.perf_counter() - t) * 1000)
    lat = torch.tensor(times, dtype=torch.float64)
    row = results.new_row("inference")
    # named like its run: a user's FILE.py:fn by the network's own name, not the path
    infer_id = results.safe_name(f"{models.model_name(ckpt['model'])}-{started:%Y%m%dT%H%M%S}-{os.urandom(3).hex()}")
    row.update({"infer_id": infer_id,
           "schema_version": results.SCHEMA_VERSION, "checkpoint": os.path.abspath(a.checkpoint),
           "run_id": ckpt.get("run_id"), "dataset": ds.name, "model": models.model_name(ckpt["model"]),
           "model_source": ckpt.get("model_source"), "model_source_hash": ckpt.get("model_source_hash"),
           "model_kwargs": ckpt["model_kwargs"], "precision": ckpt["precision"],
           "channels_last": ckpt["channels_last"], "tta": tta, "images": len(times),
           "latency_p50_ms": float(lat.quantile(0.5)), "latency_p99_ms": float(lat.quantile(0.99)),
           "latency_mean_ms": float(lat.mean()), "throughput_batch_size": a.batch_size,
           "throughput_images_per_s": throughput, "top1_acc": top1, "warmup_images": WARMUP,
           "started_at": started, **fingerprint(device, 1)})
    path = results.write(a.results, "inference", row["infer_id"], [row])
    say(f"top-1 {top1:.4f}; latency p50 {row['latency_p50_ms']:.2f} ms, p99 {row['latency_p99_ms']:.2f} ms "
        f"over {len(times)} images at batch 1; {throughput:.0f} images/s at batch {a.batch_size}; {path}")
    print(json.dumps({k: row[k] for k in ("infer_id", "top1_acc", "latency_p50_ms", "latency_p99_ms",
                                          "latency_mean_ms", "throughput_images_per_s")}), file=getattr(a, "stdout", sys.stdout))
    return 0
