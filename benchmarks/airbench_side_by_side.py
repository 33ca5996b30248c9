"""airbench's `train94` (Keller Jordan's `airbench` package, 0.1.8) on the same data as the harness,
recorded as run rows in the harness's schema, so `bench report` ranks it beside our recipes.

airbench reads `cifar10/train.pt` and `cifar10/test.pt` from the working directory (a dict of uint8
images [N, 32, 32, 3], int64 labels and class names) when `train94` builds its loaders; this script
writes those files from the harness's decoded cache first, so both train on exactly the same images
(the shared JPEG copy, not the original CIFAR-10).

Clocks (issue #13's fair side by side). Before our clock starts: the data files are read into
airbench's own loaders (train and test: a preloaded `CifarLoader` is handed to `train94`, and the
test loader it builds by name is the preloaded one) and its net is built; the GPU sampler starts.
Then, between two device syncs, our clock (`train_time_s`) covers the whole `train94(verbose=False)`
call: its optimiser setup, whitening initialisation and the training steps, as the harness's
train time covers its steps (the harness does its whitening in setup, off its clock: the one
difference, a few milliseconds on a GPU). airbench's own clock, the sum of its CUDA-event
intervals (whitening init and each epoch's steps: what airbench reports less its final TTA pass,
which only its verbose mode runs, times and adds), is recorded next to it
as `airbench_event_time_s`; on the CPU port there are no CUDA events and it is null. The final
accuracy is measured after the clock, with the TTA asked for (`--tta-views`, default 6: airbench's
own tta_level 2, the same 6 views as the `fast` recipe; 2 is the harness's mirror TTA), recorded as
`tta_views`. Images are counted exactly: airbench's steps x batch (it drops the last partial
batch and stops mid-epoch at 9.9 epochs), not epochs x 50,000. Energy is sampled with
bench.meters.Nvml over the timed call, as for the harness's runs (nothing on a CPU), and the other
processes' share of the host's CPU over it with bench.meters.HostLoad (`other_cpu_frac`, as the
harness's rows have it: a side by side on one CPU shows each side's neighbour there).

`--device cuda` (the default) runs airbench as published. `--device cpu` runs airbench's own
`train94`, network, loader, optimiser and schedule on the CPU, to measure what its recipe reaches
on this data on a machine with no GPU: its CUDA-only calls are redirected (tensors and the net stay on
the CPU, its CUDA timing events become no-ops: this script keeps the clock) and it computes in fp32,
because CPU fp16 convolutions run about 250x slower than fp32 here. Rows say so (`precision` fp32,
`model_kwargs.port`); their times are CPU times and not comparable with GPU records.

    python benchmarks/airbench_side_by_side.py --data ../shared/data/cifar10-jpeg.tar.xz --results DIR --runs 5
    python benchmarks/airbench_side_by_side.py --device cpu --runs 2 --results results/cpu   # ~40 min a run here
"""
import json
import math
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from common import guard, parser, save  # first: puts the project on the path

from bench import data as data_mod
from bench import results
from bench.measure import fingerprint, peak_rss_bytes
from bench.meters import HostLoad, Nvml
from bench.row import flops_fields

CLOCK = ("airbench train94(verbose=False) after warmup94(), data preloaded and net built before the clock; "
         "device sync around the whole call (optimiser setup and whitening init included); final TTA "
         "evaluation excluded; accuracy measured once, at the end. airbench_event_time_s: airbench's "
         "own CUDA-event time (whitening init + training steps)")
TTA_LEVELS = {1: 0, 2: 1, 6: 2}  # our view count -> airbench's tta_level (none, mirror, mirror + 2 shifts)
BATCH = 1024  # train94's batch size
EPOCHS = 9.9  # airbench94's train_epochs
CPU_PORT = "airbench's train94 on the CPU in fp32; CUDA calls redirected to the CPU (see the script's docstring)"


def export(ds, workdir):
    """airbench's file format, from the harness's uint8 arrays (NCHW -> NHWC). The train images go in
    a fixed shuffled order: airbench whitens from its first 5,000, which in torchvision's CIFAR-10 (its
    own source) mix the classes, but the harness decodes a copy class by class (5,000 airplanes first)."""
    d = Path(workdir) / "cifar10"
    d.mkdir(parents=True, exist_ok=True)
    order = torch.randperm(len(ds.train_x), generator=torch.Generator().manual_seed(0))
    for split, x, y in (("train", ds.train_x[order], ds.train_y[order]), ("test", ds.test_x, ds.test_y)):
        torch.save({"images": x.permute(0, 2, 3, 1).contiguous(), "labels": y.clone(),
                    "classes": list(data_mod.CLASSES)}, d / f"{split}.pt")
    return d


def config_key(device, tta_views):
    key = "airbench94" if device == "cuda" else "airbench94-cpu-fp32"
    return key if tta_views == 6 else f"{key}-tta{tta_views}"


def recorded_seeds(results_dir, ds, device, tta_views, epochs):
    """The seeds RESULTS_DIR already holds an ok row of for this very measurement (key, data, epochs,
    views): `--resume` runs only the others, so a GPU call cut short does not pay for its finished runs
    again. Rows from before `tta_views` was recorded share the key but were evaluated on 2 views: never
    counted."""
    if not (results_dir / "runs").is_dir():
        return set()
    runs = results.read(results_dir, "runs", warn=None)
    if runs.empty:
        return set()
    same = (runs.config_key == config_key(device, tta_views)) & (runs.status == "ok") \
        & (runs.tta_views == tta_views) & (runs.data_checksum == ds.checksum) \
        & runs.model_kwargs.map(lambda k: isinstance(k, str) and json.loads(k).get("epochs") == epochs)
    return set(runs.seed[same].astype(int))


def row_for(ds, seed, epochs, device, m, acc, target, started, tta_views, fp):
    """A run row and its one epoch row. `m`: the measurements of one timed call (see `timed_run`)."""
    on_gpu = device == "cuda"
    rid = f"airbench94-{started:%Y%m%dT%H%M%S}-{seed}-{os.urandom(3).hex()}"
    kwargs = {"package": "airbench 0.1.8", "fn": "train94", "epochs": epochs}
    if not on_gpu:
        kwargs["port"] = CPU_PORT
    reached = acc >= target
    train_s, eval_s = m["train_s"], m["eval_s"]
    row = results.new_row("runs")
    row.update({"run_id": rid, "schema_version": results.SCHEMA_VERSION, "status": "ok", "quality": "test_acc",
           "config_key": config_key(device, tta_views),
           "recipe": "airbench94", "dataset": ds.name, "data_checksum": ds.checksum,
           "train_images": len(ds.train_x), "test_images": len(ds.test_x), "model": "airbench94",
           "model_kwargs": json.dumps(kwargs), "precision": "fp16" if on_gpu else "fp32",
           "inplace": False, "channels_last": True, "compile": False, "batch_size": BATCH,
           "batch_size_scope": "global", "world_size": 1, "epochs": math.ceil(epochs), "target": target,
           "seed": seed, "label_smoothing": 0.2, "tta": tta_views > 1, "tta_views": tta_views,
           "translate": 2, "alt_flip": True, "whiten": True, "whiten_bias_epochs": 3, "dirac": True,
           "bn_weight_frozen": True, "bn_bias_lr_scale": 64.0, "lookahead_every": 5, "lookahead_decay": 0.95,
           "schedule": "triangle", "warmup_steps": 1 if on_gpu else 0,
           "stop_at_target": False, "reached_target": reached, "epoch_reached": math.ceil(epochs) if reached else None,
           "time_to_target_s": train_s if reached else None,
           "wall_time_to_target_s": train_s + eval_s if reached else None,
           "train_time_s": train_s, "eval_time_s": eval_s, "wall_time_s": train_s + eval_s,
           "setup_time_s": m["setup_s"], "data_time_s": m["data_s"], "warmup_time_s": m.get("warmup_s"),
           "airbench_event_time_s": m["event_s"],
           "final_acc": acc, "best_acc": acc, "train_images_per_s": m["images"] / train_s,
           "peak_gpu_mem_bytes": torch.cuda.max_memory_allocated() if on_gpu else None,
           "peak_host_rss_bytes": peak_rss_bytes(), "started_at": started,
           "finished_at": datetime.now(timezone.utc),
           "clock": CLOCK if on_gpu else CLOCK.replace(" after warmup94()", "") + " (CPU, no warm-up run)",
           "flops_per_image": m["flops_per_image"], **m["energy"], **m["host"], **fp})
    row.update(flops_fields(row))  # achieved TFLOP/s and, on a listed GPU, MFU: beside the harness's own
    epoch = results.new_row("epochs")
    epoch.update({"run_id": rid, "epoch": math.ceil(epochs), "elapsed_s": train_s, "wall_s": train_s + eval_s,
                  "test_acc": acc, "train_images_per_s": row["train_images_per_s"], "eval_s": eval_s})
    return row, epoch


class EventClock:
    """Sums what airbench's own clock sums: every `elapsed_time` its CUDA events report during one
    call (train94 adds exactly those intervals to its total). Installed as torch.cuda.Event."""
    total_ms = 0.0

    def __init__(self, real):
        clock = self

        class Event(real):
            def elapsed_time(self, end):
                ms = super().elapsed_time(end)
                clock.total_ms += ms
                return ms
        self.event = Event


def train_steps(loader_len, epochs):
    """train94's step count: ceil(batches per epoch x epochs) (its own rule); x BATCH = images."""
    return math.ceil(loader_len * epochs)


def mean_flops_per_image(loader_len, epochs):
    """FLOPs per training image over a train94 run, counted as benchmarks/fast_flops.py counts both
    sides of issue #17's budget: its whitening bias trains for the first epochs, then is frozen."""
    import airbench.lib_airbench94 as lib94
    from fast_flops import airbench_net, phases

    net = airbench_net()
    net[0].weight.requires_grad_(False)  # airbench's whitening filters are never trained
    steps = train_steps(loader_len, epochs)
    bias_steps = min(lib94.hyp["opt"]["whiten_bias_epochs"] * loader_len, steps)
    f = phases(net, net[0].bias, steps, bias_steps, BATCH)
    return f["total_flops"] / f["images"]


def port_to_cpu():
    """Point airbench's CUDA-only calls at the CPU, in fp32; returns (loader class, net builder)."""
    import airbench.lib_airbench94 as lib94
    import airbench.utils as utils

    class CpuCifarLoader(utils.CifarLoader):
        def __init__(self, *args, **kwargs):
            kwargs["gpu"] = "cpu"  # its torch.load map_location
            super().__init__(*args, **kwargs)
            self.images = self.images.float()

    class NoTimingEvent:  # airbench's own clock; ours is outside train94
        def __init__(self, *args, **kwargs):
            pass

        def record(self, *args):
            pass

        def elapsed_time(self, other):
            return 0.0

    utils.CifarLoader = lib94.CifarLoader = CpuCifarLoader  # train() builds its test loader by name
    torch.cuda.Event = NoTimingEvent
    torch.cuda.synchronize = lambda *args, **kwargs: None

    def make_net():
        to_cuda = torch.nn.Module.cuda
        torch.nn.Module.cuda = lambda self, *args, **kwargs: self
        try:
            return lib94.make_net94().float()
        finally:
            torch.nn.Module.cuda = to_cuda

    return CpuCifarLoader, make_net


def main():
    p = parser(__doc__, smoke=False)  # --epochs and a small --data make a small run
    p.add_argument("--results", required=True, help="results directory the run rows are written to")
    p.add_argument("--runs", type=int, default=5, help="runs, one seed each (default 5)")
    p.add_argument("--budget-s", type=float, default=None, help="stop starting runs after this long")
    p.add_argument("--target", type=float, default=0.94, help="accuracy the time to target is read at (default 0.94)")
    p.add_argument("--epochs", type=float, default=EPOCHS, help=f"train94's epochs (default its own {EPOCHS})")
    p.add_argument("--seed", type=int, default=0, help="torch seed of the first run; run i uses seed + i")
    p.add_argument("--tta-views", type=int, default=6, choices=sorted(TTA_LEVELS),
                   help="views of the final evaluation: 6 airbench's own (as the fast recipe), 2 mirror (as dawn)")
    p.add_argument("--resume", action="store_true",
                   help="skip the seeds whose run of this measurement RESULTS already holds (default: run every seed)")
    p.add_argument("--export-only", action="store_true", help="write airbench's data files and stop (no CUDA)")
    a = p.parse_args()
    if a.runs < 1 or not a.epochs > 0:
        p.error("--runs must be at least 1 and --epochs above 0")
    device = a.device if a.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    t_data = time.perf_counter()
    ds = data_mod.load(a.data)
    with tempfile.TemporaryDirectory(prefix="airbench-") as work:
        d = export(ds, work)
        data_s = time.perf_counter() - t_data
        if a.export_only:
            print(f"wrote {d}/train.pt and test.pt ({len(ds.train_x)} + {len(ds.test_x)} images of {ds.name})")
            return
        if device == "cuda" and not torch.cuda.is_available():
            raise SystemExit("airbench needs a CUDA GPU (or --device cpu); nothing run")
        try:
            import airbench  # noqa: F401
        except ImportError:
            raise SystemExit("airbench is not installed: pip install airbench==0.1.8 (or its wheel)") from None
        run_all(a, ds, work, device, data_s)


def run_all(a, ds, work, device, data_s):
    import airbench

    results_dir = Path(a.results).resolve()
    seeds = [a.seed + i for i in range(a.runs)]
    if a.resume:
        done = recorded_seeds(results_dir, ds, device, a.tta_views, a.epochs) & set(seeds)
        seeds = [s for s in seeds if s not in done]
        print(f"airbench94: {len(done)} of {a.runs} seeds already recorded in {results_dir}; "
              f"{len(seeds)} to run", flush=True)
        if not seeds:
            return
    os.chdir(work)  # airbench's loaders read cifar10/*.pt relative to the working directory
    warmup_s = None
    if device == "cuda":
        loader_cls, make_net, sync = airbench.CifarLoader, airbench.make_net94, torch.cuda.synchronize
        t = time.perf_counter()
        airbench.warmup94()
        sync()
        warmup_s = time.perf_counter() - t
    else:
        loader_cls, make_net = port_to_cpu()
        sync = lambda: None  # noqa: E731
    t_start = time.perf_counter()
    # the checkout this process imported: read after an hour's run, it named whatever was committed meanwhile
    fp = fingerprint(device, 1)
    figures = []
    for i, seed in enumerate(seeds):
        if a.budget_s and i and time.perf_counter() - t_start > a.budget_s:
            break
        torch.manual_seed(seed)
        started = datetime.now(timezone.utc)
        m = timed_run(airbench, loader_cls, make_net, sync, device, a.epochs)
        m.update(data_s=data_s, warmup_s=warmup_s, setup_s=data_s + m["prep_s"] + (warmup_s or 0.0))
        t1 = time.perf_counter()
        acc = airbench.evaluate(m["model"], m["test"], tta_level=TTA_LEVELS[a.tta_views])
        sync()
        m["eval_s"] = time.perf_counter() - t1
        # counted after the run (its net draws from the RNG): the seeded run draws as it did before
        m["flops_per_image"] = mean_flops_per_image(m["loader_len"], a.epochs)
        row, epoch = row_for(ds, seed, a.epochs, device, m, acc, a.target, started, a.tta_views, fp)
        results.write(results_dir, "epochs", row["run_id"], [epoch])
        results.write(results_dir, "runs", row["run_id"], [row])
        figures.append({k: row[k] for k in ("run_id", "seed", "final_acc", "tta_views", "train_time_s",
                                            "airbench_event_time_s", "setup_time_s", "train_images_per_s")}
                       | {"eval_s": m["eval_s"]})
        save(a.out, "airbench_side_by_side", {"device": device, "runs": figures}, device, a)  # after each run
        ev = "" if m["event_s"] is None else f", airbench's events {m['event_s']:.2f} s"
        print(f"airbench94 ({device}) seed {seed}: {acc:.4f} ({a.tta_views} views) in {m['train_s']:.2f} s"
              f"{ev} (eval {m['eval_s']:.2f} s)", flush=True)


def timed_run(airbench, loader_cls, make_net, sync, device, epochs):
    """One train94 call on our clock, its data loaded and its net built before the clock starts."""
    import airbench.lib_airbench94 as lib94
    import airbench.utils as utils

    t = time.perf_counter()
    train = loader_cls("cifar10", train=True, batch_size=BATCH, aug=lib94.hyp["aug"], altflip=True)
    test = loader_cls("cifar10", train=False, batch_size=2000)
    net = make_net()
    sync()
    prep_s = time.perf_counter() - t
    steps = train_steps(len(train), epochs)
    on_gpu = device == "cuda"
    clock = EventClock(torch.cuda.Event) if on_gpu else None
    real_event, real_loader = torch.cuda.Event, utils.CifarLoader
    if on_gpu:
        torch.cuda.Event = clock.event
        torch.cuda.reset_peak_memory_stats()
    utils.CifarLoader = lambda *args, **kwargs: test  # train() builds its test loader by name: the preloaded one
    sampler = Nvml(torch.device(device)).start()
    try:
        sync()
        load = HostLoad().start()  # contention over the timed call, as the harness's runs record it
        t0 = time.perf_counter()
        model = airbench.train94(train_loader=train, epochs=epochs, make_net=lambda: net, verbose=False)
        sync()
        train_s = time.perf_counter() - t0
        host = load.stop()
    finally:
        energy = sampler.stop()  # energy, power, utilisation, SM clock, throttle reasons: as for the harness's runs
        sampler.close()
        torch.cuda.Event, utils.CifarLoader = real_event, real_loader
    return {"model": model, "test": test, "train_s": train_s, "prep_s": prep_s, "images": steps * BATCH,
            "event_s": clock.total_ms / 1000 if on_gpu else None, "energy": energy, "host": host,
            "loader_len": len(train)}


if __name__ == "__main__":
    guard(main)
