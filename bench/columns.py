"""Every result column, declared once: name, Arrow type, unit, role, meaning, and how a report
aggregates and formats it. Everything else is derived from here: the parquet schemas
(bench/results.py), the configuration columns of a run row and its `config_key` (from RunConfig's
fields, bench/config.py), the report's grouping columns, `bench verify`'s required columns, and the
schema tables in results/README.md (`python -m bench.columns` prints them; a test keeps them equal).

Roles: identity (which run, which code), config (what was run: changes the measurement),
setting (recorded, does not change the measurement), data, measurement, hardware (the fingerprint).
Units: s seconds, B bytes, frac a fraction in [0, 1], W watts, MHz, J joules.
"""
import sys
import typing
from dataclasses import dataclass

import pyarrow as pa

from .config import FIELDS

SCHEMA_VERSION = 2
S, I, F, B, T = pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    role: str
    meaning: str
    unit: str = ""
    agg: str = ""      # how the report combines runs: median, mean, max, sum, first ("" = not aggregated)
    fmt: str = ""      # how the report shows it: s, acc, pct, ips, mib, j, x, int, tflops


def C(name, type_, role, meaning, unit="", agg="", fmt=""):
    return Column(name, type_, role, meaning, unit, agg, fmt)


def _arrow_type(annotation):
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if args else annotation
    return {str: S, int: I, float: F, bool: B, dict: S}[base]


def config_columns():
    """The run row's configuration and setting columns: one per RunConfig field. `device` is the
    exception: the fingerprint's `device` column records which device ran, not which was asked for."""
    return [C(n, _arrow_type(f.type), "config" if f.metadata["key"] else "setting", f.metadata["meaning"])
            for n, f in FIELDS.items() if n != "device"]


HARDWARE = [
    C("device", S, "hardware", "cpu or cuda"),
    C("device_name", S, "hardware", "GPU model, or 'CPU: <model>'"),
    C("gpu_count", I, "hardware", "GPUs used (0 on CPU)"),
    C("gpu_mem_total_bytes", I, "hardware", "memory of one GPU (null on CPU)", "B", fmt="mib"),
    C("gpu_power_limit_w", F, "hardware", "enforced GPU power limit (NVML; null without NVML)", "W"),
    C("cpu_model", S, "hardware", "host CPU"),
    C("cpu_count", I, "hardware", "CPU cores available to the process"),
    C("torch_threads", I, "hardware", "torch intra-op threads"),
    C("host_mem_bytes", I, "hardware", "host memory", "B"),
    C("hostname", S, "hardware", "host name"),
    C("driver_version", S, "hardware", "NVIDIA driver"),
    C("cuda_version", S, "hardware", "CUDA of the torch build"),
    C("cudnn_version", I, "hardware", "cuDNN"),
    C("torch_version", S, "hardware", "torch"),
    C("torchvision_version", S, "hardware", "torchvision"),
    C("python_version", S, "hardware", "Python"),
    C("platform", S, "hardware", "OS"),
    C("hardware_id", S, "hardware", "hash of device name, GPU count, CPU model, core count and host memory: "
                                    "the report's hardware key (two machines that differ in any of these never merge)"),
    C("git_commit", S, "identity", "this project's commit, where git can tell (or $BENCH_GIT_COMMIT)"),
    C("git_dirty", B, "identity", "uncommitted changes in the checkout (null where unknown)"),
    C("code_hash", S, "identity", "sha256 (16 hex) of the harness's own source files that ran (bench/, models/), "
                                  "computed from the files, not from git: the report splits configurations by it"),
]

RUNS = [
    C("run_id", S, "identity", "unique id; also the file name"),
    C("schema_version", I, "identity", "version of this schema"),
    C("status", S, "identity", "ok, diverged, oom, timeout, interrupted or crashed"),
    C("error", S, "identity", "for a failed run: the error's last lines"),
    C("config_key", S, "identity", "hash of the configuration and seed: a sweep cell"),
    C("sweep", S, "identity", "name of the sweep that ran it, if any"),
    C("sweep_run_id", S, "identity", "the `bench sweep` invocation that ran it (sweeps/<id>.parquet), if any"),
    *config_columns(),
    C("model_source", S, "identity", "a user's model: where its factory came from ('pkg.mod:fn' or "
                                     "'/abs/path/net.py:fn'); null for a built-in (then `model` is its registered name)"),
    C("model_source_hash", S, "config", "a user's model: sha256 of the source file defining its factory, as the process ran it (part of config_key: "
                                        "two versions never merge); null for a built-in"),
    C("model_honours", S, "setting", 'JSON {"num_classes": bool, "inplace": bool}: which run settings the '
                                     "model's factory takes (a built-in takes both; one it does not take is not applied)"),
    C("model_kwargs_unchecked", S, "setting", "JSON list of the model keywords its factory takes only through "
                                              "**kwargs: nothing checked that it uses them (a misspelt one trains the "
                                              "default); null when every keyword was checked"),
    C("dataset", S, "data", "data set name, e.g. cifar10 or cifar10-jpeg"),
    C("data_checksum", S, "data", "checksum of the data source"),
    C("train_images", I, "data", "train images used (after limit_train)"),
    C("test_images", I, "data", "test images evaluated"),
    C("param_count", I, "data", "trainable parameters", agg="first", fmt="int"),
    C("flops_per_image", F, "data", "FLOPs of one training image, forward + backward (torch's FlopCounterMode, "
                                    "a multiply-add counts 2), the mean over the epochs run (fast: epochs that train the whitening "
                                    "bias cost more than later ones)", "FLOP", "first"),
    C("batch_size_scope", S, "setting", "always 'global': per-process batch is batch_size / world_size"),
    C("quality", S, "setting", "the epoch metric compared with target (test_acc for classification)"),
    C("seed_index", I, "setting", "position of this seed among the seeds that shared one setup of its process "
                                  "(0: the seed that paid data loading, compilation and autotuning; after a seed "
                                  "whose setup failed, the next sets up again and is 0)"),
    C("epochs_completed", I, "measurement", "epochs finished"),
    C("reached_target", B, "measurement", "an epoch's quality reached target"),
    C("epoch_reached", I, "measurement", "first epoch (1-based) at or over target"),
    C("time_to_target_s", F, "measurement", "DAWNBench clock: training time to the end of that epoch, eval "
                                            "excluded", "s", "median", "s"),
    C("wall_time_to_target_s", F, "measurement", "MLPerf-style clock: wall time from training start, eval "
                                                 "included", "s", "median", "s"),
    C("train_time_s", F, "measurement", "training time over all epochs, eval excluded (a run interrupted "
                                        "mid-epoch includes that epoch's part)", "s", "sum", "s"),
    C("eval_time_s", F, "measurement", "evaluation time over all epochs", "s", "sum", "s"),
    C("wall_time_s", F, "measurement", "wall time from training start to end, eval included", "s", "median", "s"),
    C("setup_time_s", F, "measurement", "this seed's time before its clock: data load, model build, warm-up and "
                                        "the reset after it for a seed that set up, the reset for later ones", "s", "median", "s"),
    C("data_time_s", F, "measurement", "data load and decode (part of setup)", "s", "median", "s"),
    C("warmup_time_s", F, "measurement", "warm-up steps and compile (part of setup)", "s", "median", "s"),
    C("warmup_compiles", I, "measurement", "graphs torch.compile compiled during setup's warm-up (0 for a "
                                           "process's later seeds); null without compile", agg="max"),
    C("timed_compiles", I, "measurement", "graphs torch.compile compiled during the timed steps (0: all in the "
                                          "warm-up); null without compile", agg="max"),
    C("timed_syncs", I, "measurement", "synchronizing CUDA calls inside the timed steps, as torch's sync debug "
                                       "mode sees them (0: none it can see; it misses torch.distributed's); null "
                                       "off CUDA", agg="max"),
    C("final_acc", F, "measurement", "quality after the last epoch (test accuracy)", "frac", "mean", "acc"),
    C("best_acc", F, "measurement", "best quality of any epoch", "frac", "mean", "acc"),
    C("final_train_loss", F, "measurement", "mean training loss of the last epoch"),
    C("train_images_per_s", F, "measurement", "training images per second over the timed steps", "1/s",
      "mean", "ips"),
    C("achieved_tflops", F, "measurement", "flops_per_image x train_images_per_s / 1e12", "TFLOP/s", "mean",
      "tflops"),
    C("peak_tflops", F, "measurement", "dense peak of the devices for this precision (bench/flops.py's table, "
                                       "x GPUs); null where unknown", "TFLOP/s", "first", "tflops"),
    C("mfu", F, "measurement", "model FLOPs utilisation: achieved_tflops / peak_tflops", "frac", "mean", "pct"),
    C("peak_gpu_mem_bytes", I, "measurement", "torch.cuda.max_memory_allocated over the timed epochs, their "
                                              "evaluations included (rank 0); null on CPU", "B", "median", "mib"),
    C("peak_gpu_reserved_bytes", I, "measurement", "torch.cuda.max_memory_reserved (rank 0); null on CPU", "B",
      "median", "mib"),
    C("peak_host_rss_bytes", I, "measurement", "peak resident memory of the run process (VmHWM, reset between "
                                               "seeds where the kernel allows; a DDP run that finished ok: its "
                                               "largest rank's)", "B", "median", "mib"),
    C("energy_j", F, "measurement", "GPU energy from the first timed step to the end, evaluations included "
                                    "(NVML counter, rank 0's GPU)", "J", "mean", "j"),
    C("mean_power_w", F, "measurement", "mean sampled GPU power over the timed epochs, evaluations included",
      "W", "mean"),
    C("mean_gpu_util", F, "measurement", "mean sampled GPU utilisation over the timed epochs, evaluations "
                                         "included, %", "%", "mean"),
    C("mean_sm_clock_mhz", F, "measurement", "mean sampled SM clock", "MHz", "mean"),
    C("max_sm_clock_mhz", F, "measurement", "highest sampled SM clock", "MHz", "max"),
    C("throttle_reasons", S, "measurement", "NVML clock-event (throttle) reasons seen during training, comma "
                                            "separated (GPU idle excluded); empty: none; null without NVML"),
    C("load_avg", F, "measurement", "host 1-minute load average at the end of training", agg="median"),
    C("other_cpu_frac", F, "measurement", "share of the host's CPU time (all cores) used by other processes "
                                          "over the timed epochs, evaluations included: a busy machine shows "
                                          "here", "frac", "max", "pct"),
    C("cpu_steal_frac", F, "measurement", "share of the host's CPU time stolen by the hypervisor during "
                                          "training (/proc/stat steal)", "frac", "max", "pct"),
    C("airbench_event_time_s", F, "measurement", "airbench side-by-side rows: airbench's own CUDA-event training "
                                                 "time; null elsewhere and on its CPU port", "s", "median", "s"),
    # --- GAN workloads (bench/workloads/gan.py, issue #15) ------------------------------------------------
    # For dcgan/wgan, quality = "fd": final_acc and best_acc hold the FD (lower is better).
    C("critic_steps_per_gen_step", F, "data", "GANs: critic updates per generator update (a step is one "
                                              "generator update and these), over the run's finished epochs: "
                                              "the WGAN's bursts of 100 raise it above 5", agg="first"),
    C("gen_param_count", I, "data", "GANs: the generator's parameters (param_count counts both networks)",
      agg="first", fmt="int"),
    C("judge", S, "data", "GANs: sha256 prefix of the weights of the classifier whose features the FD uses; "
                          "only FDs with the same judge compare"),
    C("judge_recipe", S, "data", "GANs: the judge's training configuration, JSON"),
    C("judge_test_acc", F, "data", "GANs: the judge's test accuracy", "frac", "first", "acc"),
    C("fd_label", S, "data", "GANs: what the FD is, e.g. 'FD in resnet9-1a2b3c4d features' (not FID)"),
    C("fd_samples", I, "data", "GANs: generated (and real) images per FD", agg="first"),
    C("fd_real_test", F, "data", "GANs: FD of real test images to the train reference, the floor for fd",
      agg="first"),
    # --- end of GAN columns ----------------------------------------------------------------------
    *HARDWARE,
    C("clock", S, "identity", "what the clocks cover, in words"),
    C("fault", S, "identity", "injected fault (BENCH_FAULT), for tests only"),
    C("started_at", T, "identity", "UTC start"),
    C("finished_at", T, "identity", "UTC end"),
]

EPOCHS = [
    C("run_id", S, "identity", "the run"),
    C("epoch", I, "identity", "1-based"),
    C("elapsed_s", F, "measurement", "training time at the end of this epoch, eval excluded", "s"),
    C("wall_s", F, "measurement", "wall time at the end of this epoch's eval", "s"),
    C("train_loss", F, "measurement", "mean training loss"),
    C("test_acc", F, "measurement", "test accuracy", "frac"),
    C("lr", F, "measurement", "learning rate at the epoch's last step"),
    C("train_images_per_s", F, "measurement", "this epoch's training throughput", "1/s"),
    C("eval_s", F, "measurement", "this epoch's evaluation time", "s"),
    C("peak_gpu_mem_bytes", I, "measurement", "torch.cuda.max_memory_allocated over this epoch's steps and eval "
                                              "(rank 0); null on CPU. The run's peak is the largest of these", "B"),
    # --- GAN workloads (bench/workloads/gan.py, issue #15) ------------------------------------------------
    C("critic_loss", F, "measurement", "GANs: mean critic loss (dcgan: BCE on real + fake; wgan: D(real) - D(fake))"),
    C("gen_loss", F, "measurement", "GANs: mean generator loss (dcgan: BCE of fakes as real; wgan: D(G(z)))"),
    C("wasserstein_estimate", F, "measurement", "wgan: the critic's Wasserstein estimate D(fake) - D(real), "
                                                "mean over the epoch: the lesson's progress signal"),
    C("fd", F, "measurement", "GANs: Frechet distance of generated to real train images in the judge's "
                              "features (the run's fd_label; lower is better; not FID), off the clock"),
    # --- end of GAN columns ----------------------------------------------------------------------
]

FINGERPRINT = [c for c in HARDWARE]

# which file and which version of a user's network, as in its run rows; null for a built-in
USER_MODEL = [C("model_source", S, "identity", "a user's model: 'pkg.mod:fn' or '/abs/path/net.py:fn'"),
              C("model_source_hash", S, "config", "a user's model: sha256 of the source file defining its factory")]

INFERENCE = [
    C("infer_id", S, "identity", "unique id"), C("schema_version", I, "identity", "version of this schema"),
    C("checkpoint", S, "identity", "path"), C("run_id", S, "identity", "run that saved the checkpoint"),
    C("dataset", S, "data", "data set name"), C("model", S, "config", "model name (a user's: as its run row names it)"),
    *USER_MODEL,
    C("model_kwargs", S, "config", "model keywords as JSON"), C("precision", S, "config", "fp32, fp16 or bf16"),
    C("channels_last", B, "config", "NHWC memory format"), C("tta", B, "config", "flip test-time augmentation"),
    C("images", I, "measurement", "test images timed at batch 1"),
    C("latency_p50_ms", F, "measurement", "per-image latency at batch 1, median: from a device sync to the class on the host, "
      "after warmup_images untimed", "ms"),
    C("latency_p99_ms", F, "measurement", "99th percentile", "ms"),
    C("latency_mean_ms", F, "measurement", "mean", "ms"),
    C("throughput_batch_size", I, "config", "batch of the throughput measurement"),
    C("throughput_images_per_s", F, "measurement", "at throughput_batch_size", "1/s"),
    C("top1_acc", F, "measurement", "accuracy over the whole test set", "frac"),
    C("warmup_images", I, "setting", "images classified once, untimed, before the timed pass"),
    C("started_at", T, "identity", "UTC start"),
    *FINGERPRINT,
]

MAXBATCH = [
    C("maxbatch_id", S, "identity", "unique id"), C("schema_version", I, "identity", "version of this schema"),
    C("model", S, "config", "model name (a user's: as its run rows name it)"), *USER_MODEL,
    C("model_kwargs", S, "config", "model keywords as JSON"),
    C("precision", S, "config", "fp32, fp16 or bf16"), C("inplace", B, "config", "in-place activations"),
    C("channels_last", B, "config", "NHWC memory format"), C("compile", B, "config", "torch.compile"),
    C("memory_limit_bytes", I, "config", "cap applied, null = the whole device", "B"),
    C("max_batch", I, "measurement", "largest batch that trained a step within the cap (0: none did)"),
    C("peak_mem_bytes_at_max", I, "measurement", "peak memory of that probe", "B"),
    C("probes", S, "measurement", "JSON [[batch, fits, peak_bytes, note], ...]"),
    C("started_at", T, "identity", "UTC start"),
    *FINGERPRINT,
]

SWEEPS = [
    C("sweep_run_id", S, "identity", "unique id of one `bench sweep` invocation; also the file name"),
    C("schema_version", I, "identity", "version of this schema"),
    C("sweep", S, "identity", "the sweep's name"),
    C("sweep_file", S, "identity", "the sweep file as given"),
    C("shard", S, "setting", "I/N when the invocation ran one shard"),
    C("isolate_seeds", B, "setting", "one process per run (true) or the seeds of a configuration in one process"),
    C("started_at", T, "identity", "UTC start"),
    C("finished_at", T, "identity", "UTC end"),
    C("wall_s", F, "measurement", "the invocation's wall time, from its start (reading the sweep file) to its last run's end", "s"),
    C("runs", I, "measurement", "runs recorded by this invocation"),
    C("ok_runs", I, "measurement", "of which ok"),
    C("processes", I, "measurement", "run processes started"),
    C("train_time_s", F, "measurement", "sum of the runs' training clocks (train_time_s)", "s"),
    C("eval_time_s", F, "measurement", "sum of the runs' evaluation time", "s"),
    C("setup_time_s", F, "measurement", "sum of the runs' setup (data, build, warm-up, compile; reset)", "s"),
    C("other_time_s", F, "measurement", "wall_s minus the three above: process start-up, imports, CUDA context, "
                                        "writing results", "s"),
    C("efficiency", F, "measurement", "train_time_s / wall_s: the share of the device's time spent on timed "
                                      "training", "frac"),
    *FINGERPRINT,
]

KINDS = {"runs": RUNS, "epochs": EPOCHS, "inference": INFERENCE, "maxbatch": MAXBATCH, "sweeps": SWEEPS}


def names(kind):
    return [c.name for c in KINDS[kind]]


def by_name(kind="runs"):
    return {c.name: c for c in KINDS[kind]}


def group_columns():
    """What identifies a configuration on the leaderboard: every configuration column but the seed,
    plus the data that ran it and the code (a configuration measured with two versions of the
    harness is two groups). Hardware is grouped apart, by hardware_id."""
    cfg = [c.name for c in RUNS if c.role == "config" and c.name != "seed"]
    return ["dataset", "train_images"] + cfg + ["code_hash"]


def markdown(kind):
    rows = ["| column | type | role | unit | meaning |", "|---|---|---|---|---|"]
    for c in KINDS[kind]:
        rows.append(f"| `{c.name}` | {c.type} | {c.role} | {c.unit} | {c.meaning.replace('|', '/')} |")
    return "\n".join(rows)


def schema_doc():
    """The column tables of results/README.md, between its `<!-- columns -->` markers."""
    parts = []
    for kind in KINDS:
        parts += [f"### {kind}", "", markdown(kind), ""]
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(schema_doc())
