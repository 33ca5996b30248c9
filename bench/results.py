"""The result schema and the only code that writes or reads result files.

Layout under a results directory RESULTS:
    RESULTS/runs/<run_id>.parquet       one row: the run (RUN_COLUMNS)
    RESULTS/epochs/<run_id>.parquet     one row per finished epoch (EPOCH_COLUMNS)
    RESULTS/inference/<id>.parquet      one row per `bench infer` (INFERENCE_COLUMNS)
    RESULTS/maxbatch/<id>.parquet       one row per `bench maxbatch` (MAXBATCH_COLUMNS)
    RESULTS/logs/<run_id>.log           a sweep run's console output

Every file is written under a temporary name starting with "." and renamed into place, so a
reader (this one, pandas, DuckDB, pyarrow datasets: all skip names starting with "." or "_")
never sees a partial file. Columns have fixed Arrow types, so a null is typed and files of one
kind concatenate; `schema_version` says which version of this schema wrote a row.
Plain pandas reads them: `pd.read_parquet("results/runs")`.
"""
import json
import os
import re
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = 1
STATUSES = ("ok", "diverged", "oom", "timeout", "interrupted", "crashed")

S, I, F, B, T = pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.timestamp("us", tz="UTC")

# (name, type, meaning). Times are seconds, memory bytes, accuracies fractions in [0, 1].
RUN_COLUMNS = [
    ("run_id", S, "unique id; also the file name"),
    ("schema_version", I, "version of this schema"),
    ("status", S, "ok, diverged, oom, timeout, interrupted or crashed"),
    ("error", S, "for a failed run: the error's last lines"),
    ("config_key", S, "hash of the configuration and seed: a sweep cell"),
    ("sweep", S, "name of the sweep that ran it, if any"),
    ("recipe", S, "named recipe the configuration started from, if any"),
    ("dataset", S, "data set name, e.g. cifar10 or cifar10-jpeg"),
    ("data_checksum", S, "checksum of the data source"),
    ("train_images", I, "train images used (after --limit-train)"),
    ("test_images", I, "test images evaluated"),
    ("model", S, "model name in models.create"),
    ("model_kwargs", S, "model keywords as JSON, defaults filled in"),
    ("param_count", I, "trainable parameters"),
    ("precision", S, "fp32, fp16 or bf16 (autocast; fp16 with GradScaler). fp32 on CUDA: convolutions in TF32, PyTorch's default"),
    ("inplace", B, "in-place activations (and safe in-place adds)"),
    ("channels_last", B, "NHWC memory format"),
    ("compile", B, "torch.compile"),
    ("batch_size", I, "global batch size"),
    ("batch_size_scope", S, "always 'global': per-process batch is batch_size / world_size"),
    ("world_size", I, "processes (GPUs) in DDP"),
    ("epochs", I, "epochs scheduled"),
    ("epochs_completed", I, "epochs finished"),
    ("target", F, "target test accuracy"),
    ("seed", I, "seed for init, order and augmentation"),
    ("lr", F, "peak learning rate"),
    ("div", F, "one-cycle: start lr = lr / div"),
    ("pct", F, "one-cycle: % of steps in the final annealing"),
    ("mom_max", F, "one-cycle momentum, high"),
    ("mom_min", F, "one-cycle momentum, low"),
    ("weight_decay", F, "SGD weight decay"),
    ("label_smoothing", F, "cross-entropy label smoothing"),
    ("cutout", I, "cutout square side, 0 = off"),
    ("tta", B, "evaluation averages the image and its mirror (test-time augmentation)"),
    ("warmup_steps", I, "untimed steps before the clock (the model is reset after them)"),
    ("stop_at_target", B, "training stopped at the first epoch at target"),
    ("reached_target", B, "an epoch's test accuracy reached target"),
    ("epoch_reached", I, "first epoch (1-based) at or over target"),
    ("time_to_target_s", F, "DAWNBench clock: training time to the end of that epoch, eval excluded"),
    ("wall_time_to_target_s", F, "MLPerf-style clock: wall time from training start, eval included"),
    ("train_time_s", F, "training time over all epochs, eval excluded"),
    ("eval_time_s", F, "evaluation time over all epochs"),
    ("wall_time_s", F, "wall time from training start to end, eval included"),
    ("setup_time_s", F, "data load, model build and warm-up, before the clock"),
    ("data_time_s", F, "data load and decode (part of setup)"),
    ("warmup_time_s", F, "warm-up and compile (part of setup)"),
    ("timed_compiles", I, "graphs torch.compile compiled during the timed steps (0: all in the warm-up); null without compile"),
    ("final_acc", F, "test accuracy after the last epoch"),
    ("best_acc", F, "best test accuracy of any epoch"),
    ("final_train_loss", F, "mean training loss of the last epoch"),
    ("train_images_per_s", F, "training images per second over the timed steps"),
    ("peak_gpu_mem_bytes", I, "torch.cuda.max_memory_allocated over the timed epochs (rank 0); null on CPU"),
    ("peak_gpu_reserved_bytes", I, "torch.cuda.max_memory_reserved (rank 0); null on CPU"),
    ("peak_host_rss_bytes", I, "peak resident memory of the run process (VmHWM)"),
    ("energy_j", F, "GPU energy over training (NVML counter, rank 0's GPU)"),
    ("mean_power_w", F, "mean sampled GPU power"),
    ("mean_gpu_util", F, "mean sampled GPU utilisation, %"),
    ("device", S, "cpu or cuda"),
    ("device_name", S, "GPU model, or 'CPU: <model>'"),
    ("gpu_count", I, "GPUs used (0 on CPU)"),
    ("cpu_model", S, "host CPU"),
    ("cpu_count", I, "CPU cores available to the process"),
    ("torch_threads", I, "torch intra-op threads"),
    ("host_mem_bytes", I, "host memory"),
    ("hostname", S, "host name"),
    ("driver_version", S, "NVIDIA driver"),
    ("cuda_version", S, "CUDA of the torch build"),
    ("cudnn_version", I, "cuDNN"),
    ("torch_version", S, "torch"),
    ("torchvision_version", S, "torchvision"),
    ("python_version", S, "Python"),
    ("platform", S, "OS"),
    ("git_commit", S, "this project's commit"),
    ("git_dirty", B, "uncommitted changes in the checkout"),
    ("hardware_id", S, "hash of device, CPU and memory: groups runs by machine type"),
    ("clock", S, "what the clocks cover, in words"),
    ("fault", S, "injected fault (BENCH_FAULT), for tests only"),
    ("started_at", T, "UTC start"),
    ("finished_at", T, "UTC end"),
    # --- GAN workloads (bench/gan.py, issue #15): new columns, for bench/columns.py -------------
    ("critic_steps_per_gen_step", F, "GANs: critic updates per generator update (n_critic)"),
    ("gen_param_count", I, "GANs: the generator's parameters (param_count counts generator and critic)"),
    ("judge", S, "GANs: checksum (sha256 prefix) of the weights of the classifier whose features the FD uses"),
    ("judge_recipe", S, "GANs: the judge's training configuration, JSON"),
    ("judge_test_acc", F, "GANs: the judge's test accuracy"),
    ("fd_label", S, "GANs: what fd measures, e.g. 'FD in resnet9-1a2b3c4d features' (not FID)"),
    ("fd_samples", I, "GANs: generated (and real) images per FD"),
    ("fd_real_test", F, "GANs: FD of real test images to the train reference: the floor for fd"),
    ("final_fd", F, "GANs: FD after the last epoch (lower is better)"),
    ("best_fd", F, "GANs: lowest FD of any epoch"),
    # --- end of GAN columns ---------------------------------------------------------------------
]
EPOCH_COLUMNS = [
    ("run_id", S, "the run"),
    ("epoch", I, "1-based"),
    ("elapsed_s", F, "training time at the end of this epoch, eval excluded"),
    ("wall_s", F, "wall time at the end of this epoch's eval"),
    ("train_loss", F, "mean training loss"),
    ("test_acc", F, "test accuracy"),
    ("lr", F, "learning rate at the epoch's last step"),
    ("train_images_per_s", F, "this epoch's training throughput"),
    ("eval_s", F, "this epoch's evaluation time"),
    ("peak_gpu_mem_bytes", I, "torch.cuda.max_memory_allocated over this epoch's steps and eval (rank 0); "
                              "null on CPU. The run's peak is the largest of these"),
    # --- GAN workloads (bench/gan.py, issue #15): new columns, for bench/columns.py -------------
    ("critic_loss", F, "GANs: mean critic loss (dcgan: BCE on real + fake; wgan: D(real) - D(fake))"),
    ("gen_loss", F, "GANs: mean generator loss (dcgan: BCE of fakes as real; wgan: D(G(z)))"),
    ("wasserstein_estimate", F, "wgan: the critic's Wasserstein estimate D(fake) - D(real), mean "
                                "over the epoch: the lesson's progress signal"),
    ("fd", F, "GANs: Frechet distance of generated to real train images in the judge's features "
              "(fd_label; lower is better), off the clock"),
    # --- end of GAN columns ---------------------------------------------------------------------
]
INFERENCE_COLUMNS = [
    ("infer_id", S, "unique id"), ("schema_version", I, ""), ("checkpoint", S, "path"),
    ("run_id", S, "run that saved the checkpoint"), ("dataset", S, ""), ("model", S, ""),
    ("model_kwargs", S, ""), ("precision", S, ""), ("channels_last", B, ""), ("tta", B, ""),
    ("images", I, "test images timed at batch 1"),
    ("latency_p50_ms", F, "per-image latency at batch 1, median"),
    ("latency_p99_ms", F, "99th percentile"), ("latency_mean_ms", F, "mean"),
    ("throughput_batch_size", I, ""), ("throughput_images_per_s", F, "at throughput_batch_size"),
    ("top1_acc", F, "accuracy over the whole test set"),
    ("warmup_images", I, "images classified once, untimed, before the timed pass"),
    ("started_at", T, ""),
]
MAXBATCH_COLUMNS = [
    ("maxbatch_id", S, "unique id"), ("schema_version", I, ""), ("model", S, ""), ("model_kwargs", S, ""),
    ("precision", S, ""), ("inplace", B, ""), ("channels_last", B, ""), ("compile", B, ""),
    ("memory_limit_bytes", I, "cap applied, null = the whole device"),
    ("max_batch", I, "largest batch that trained a step within the cap (0: none did)"),
    ("peak_mem_bytes_at_max", I, "peak memory of that probe"),
    ("probes", S, "JSON [[batch, fits, peak_bytes, note], ...]"),
    ("started_at", T, ""),
]
FINGERPRINT_COLUMNS = [c for c in RUN_COLUMNS if c[0] in (
    "device", "device_name", "gpu_count", "cpu_model", "cpu_count", "torch_threads", "host_mem_bytes",
    "hostname", "driver_version", "cuda_version", "cudnn_version", "torch_version",
    "torchvision_version", "python_version", "platform", "git_commit", "git_dirty", "hardware_id")]
INFERENCE_COLUMNS += FINGERPRINT_COLUMNS
MAXBATCH_COLUMNS += FINGERPRINT_COLUMNS

KINDS = {"runs": RUN_COLUMNS, "epochs": EPOCH_COLUMNS, "inference": INFERENCE_COLUMNS,
         "maxbatch": MAXBATCH_COLUMNS}


def schema(columns):
    return pa.schema([pa.field(n, t) for n, t, _ in columns],
                     metadata={"schema_version": str(SCHEMA_VERSION)})


def safe_name(name):
    """A file name that cannot leave its directory: no '/', no '..', no leading dot."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).lstrip(".")
    return name[:200] or "_"


def _table(rows, columns):
    data = {n: [_coerce(r.get(n), t) for r in rows] for n, t, _ in columns}
    return pa.Table.from_pydict(data, schema=schema(columns))


def _coerce(v, t):
    if v is None:
        return None
    if isinstance(v, float) and v != v:  # NaN -> null
        return None
    if t == pa.string() and not isinstance(v, str):
        return json.dumps(v) if isinstance(v, (dict, list)) else str(v)
    if t == pa.int64():
        return int(v)
    if t == pa.float64():
        return float(v)
    if t == pa.bool_():
        return bool(v)
    return v


def write(results_dir, kind, name, rows):
    """Atomically write `rows` (dicts) as RESULTS/<kind>/<name>.parquet; returns the path."""
    d = Path(results_dir) / kind
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{safe_name(name)}.parquet"
    tmp = d / f".{path.name}.{os.getpid()}.tmp"
    pq.write_table(_table(rows, KINDS[kind]), tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def clean_temporaries(results_dir, min_age_s=0):
    """Remove temporary files whose writer is gone (a SIGKILLed run leaves them behind)."""
    removed = []
    for kind in KINDS:
        for p in (Path(results_dir) / kind).glob(".*.tmp"):
            pid = p.name.rsplit(".", 2)[-2]
            alive = pid.isdigit() and _pid_alive(int(pid))
            if not alive and time.time() - p.stat().st_mtime >= min_age_s:
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def read_one(results_dir, kind, name):
    """The rows of RESULTS/<kind>/<name>.parquet as a DataFrame, or None if absent or unreadable."""
    path = Path(results_dir) / kind / f"{safe_name(name)}.parquet"
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException):
        return None


def read(results_dirs, kind="runs", warn=None):
    """All rows of `kind` under the given results directories, as one DataFrame.

    Files are read one by one, so an unreadable, foreign or truncated file is named in a
    warning and skipped; older schema versions read with their missing columns as nulls.
    """
    warn = warn or (lambda msg: None)
    columns = [n for n, _, _ in KINDS[kind]]
    frames = []
    for results_dir in [results_dirs] if isinstance(results_dirs, (str, Path)) else results_dirs:
        d = Path(results_dir)
        if not d.is_dir():
            warn(f"warning: {d} is not a directory; skipped")
            continue
        for p in sorted((d / kind).glob("*")):
            if p.name.startswith((".", "_")) or p.is_dir():
                continue
            try:
                t = pq.read_table(p)
            except Exception as e:
                warn(f"warning: skipped {p}: not a readable parquet file ({type(e).__name__}: {str(e)[:120]})")
                continue
            df = t.to_pandas()
            key = columns[0]
            if key not in df.columns:
                warn(f"warning: skipped {p}: no '{key}' column, not a {kind} file of this harness")
                continue
            version = df["schema_version"].iloc[0] if "schema_version" in df.columns and len(df) else None
            if version is not None and pd.notna(version) and int(version) > SCHEMA_VERSION:
                warn(f"warning: {p} has schema version {int(version)}, newer than this harness's "
                     f"{SCHEMA_VERSION}; reading the columns it knows")
            df["source_file"] = str(p)
            frames.append(df)
    if not frames:
        return pd.DataFrame(columns=columns + ["source_file"])
    out = pd.concat(frames, ignore_index=True, sort=False)
    for c in columns:
        if c not in out.columns:
            out[c] = None
    return out
