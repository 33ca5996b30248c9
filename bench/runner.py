"""The runner: train one configuration to its target and record what it cost.

Clocks (all read after synchronising the device):
  - train time: the sum over epochs of the training steps only. time_to_target_s is this sum at
    the end of the first epoch whose test accuracy reaches the target (DAWNBench's rule);
  - wall time: from the start of the first training step, evaluation included
    (wall_time_to_target_s: MLPerf's run clock, with setup off the clock);
  - setup: data load and decode, model build, and `warmup_steps` untimed steps (torch.compile
    or cuDNN autotune happen there); the model and optimizer are reset after the warm-up.
No step of the timed loop synchronises the device or calls .item(); losses accumulate on the
device and are read once per epoch.
"""
import json
import math
import os
import signal
import threading
import time
import traceback
from datetime import datetime, timezone

import torch
import torch.distributed as dist

import models

from . import fast, faults, loader, measure, results
from .config import BenchError, canonical_kwargs, resolve_device
from .ui import RunProgress, say

CLOCK = ("time_to_target_s/train_time_s: training steps only, eval excluded (DAWNBench); "
         "wall_*: from the first timed step, eval included; setup (data, build, warm-up) off the clock")
CHECKPOINT_FORMAT = "cifar-bench-checkpoint/1"


class Interrupted(Exception):
    pass


class Diverged(Exception):
    pass


def new_run_id(cfg):
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{cfg.model}-{cfg.key()[:8]}-s{cfg.seed}-{stamp}-{os.urandom(3).hex()}"


def classify(exc):
    """(status, message) for an exception that ended a run."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text.lower() \
            or "can't allocate memory" in text:
        return "oom", text
    if isinstance(exc, Diverged):
        return "diverged", str(exc)
    if isinstance(exc, (Interrupted, KeyboardInterrupt)):
        return "interrupted", str(exc) or "interrupted"
    tb = traceback.format_exc().strip().splitlines()
    return "crashed", "\n".join(tb[-12:])


def _distributed():
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) without it."""
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), ws


def base_row(cfg, run_id, device, world_size, started, sweep=None):
    """The run row's configuration and fingerprint columns, before any measurement."""
    row = {k: v for k, v in cfg.to_dict().items()
           if k not in ("model_kwargs", "device", "time_limit_s", "eval_batch_size", "nesterov", "limit_train")}
    row.update(measure.fingerprint(device, world_size))
    row.update(run_id=run_id, schema_version=results.SCHEMA_VERSION, sweep=sweep, config_key=cfg.key(),
               model_kwargs=json.dumps(canonical_kwargs(cfg.model, cfg.model_kwargs)),
               batch_size_scope="global", started_at=started, clock=CLOCK, epochs_completed=0,
               reached_target=False, fault=os.environ.get("BENCH_FAULT") or None)
    row["tta_views"] = fast.views(cfg)  # fast: the effective view count, for every run
    return row


class Run:
    """One training run. `execute()` never raises for a failed run: it records it."""

    def __init__(self, cfg, data_source=None, results_dir="results", run_id=None, save=None,
                 sweep=None, progress=True, live=None, cache=None):
        self.cfg, self.data_source, self.results_dir = cfg, data_source, results_dir
        self.save, self.sweep, self.show_progress, self.cache = save, sweep, progress, cache
        self.live = live
        self.rank, self.local_rank, self.world = _distributed()
        if self.world != cfg.world_size:
            raise BenchError(f"world size {cfg.world_size} asked for, but {self.world} processes are "
                             f"running (WORLD_SIZE); launch with `bench run --world-size N`")
        # one process: an id now, so even a failure in setup is recorded under it; under torchrun
        # rank 0 makes it and broadcasts it once the process group is up
        self.run_id = run_id or (new_run_id(cfg) if self.world == 1 else None)
        self.fault = faults.parse()
        self.epoch_rows = []
        self.row = {}
        self.timed_out = False

    # --- public ---------------------------------------------------------------------------

    def execute(self):
        cfg = self.cfg
        t_start = time.perf_counter()
        started = datetime.now(timezone.utc)
        prev_term = signal.signal(signal.SIGTERM, self._on_sigterm) \
            if threading.current_thread() is threading.main_thread() else None
        watchdog = self._start_watchdog()
        self.progress = None
        bad_input = False
        try:
            self._setup_distributed()
            self.row = self._base_row(started)
            self._setup(t_start)
            self._train()
            self.row["status"] = "ok"
        except BenchError:
            bad_input = True  # bad input is the user's to fix, not a run: nothing is written
            raise
        except BaseException as e:  # noqa: BLE001 - every way a run can end is recorded
            status, msg = classify(e)
            if status == "interrupted" and self.timed_out:
                status, msg = "timeout", f"exceeded the time limit of {cfg.time_limit_s:g} s"
            self.row.setdefault("run_id", self.run_id)
            self.row.update(status=status, error=msg[-4000:])
            if not isinstance(e, (Exception, KeyboardInterrupt)):
                raise
        finally:
            if watchdog:
                watchdog.cancel()
            if prev_term is not None:
                # A SIGTERM from here on (a killed sweep's PR_SET_PDEATHSIG, torchrun stopping) must not
                # cut the recording short: with the default action the run would vanish without a row.
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                if self.progress:
                    self.progress.close()
                if not bad_input:
                    self._finish(started)
            finally:
                if prev_term is not None:
                    signal.signal(signal.SIGTERM, prev_term)
        return self.row

    # --- phases ---------------------------------------------------------------------------

    def _setup_distributed(self):
        cfg = self.cfg
        device = resolve_device(cfg)
        if device == "cuda":
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
        else:
            self.device = torch.device("cpu")
            if self.world > 1:  # share the cores between the processes
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", self.world))))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device == "cuda" else "gloo")
        if self.run_id is None:
            rid = [new_run_id(cfg) if self.rank == 0 else None]
            if self.world > 1:
                dist.broadcast_object_list(rid, src=0)
            self.run_id = rid[0]

    def _base_row(self, started):
        return base_row(self.cfg, self.run_id, self.device, self.world, started, self.sweep)

    def _setup(self, t_start):
        cfg = self.cfg
        from . import data as data_mod

        t0 = time.perf_counter()
        ds = data_mod.load(self.data_source, cache=self.cache, warn=say)
        train_x, train_y = ds.train_x, ds.train_y
        if cfg.limit_train:
            if cfg.limit_train > len(train_x):
                raise BenchError(f"limit-train {cfg.limit_train} exceeds the {len(train_x)} train images")
            # The same subset for every seed: seed 0, not the run's seed, picks it.
            keep = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:cfg.limit_train]
            train_x, train_y = train_x[keep], train_y[keep]
        self.row.update(dataset=ds.name, data_checksum=ds.checksum, train_images=len(train_x),
                        test_images=len(ds.test_x))
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.precision]
        self.loader = loader.DeviceLoader(
            train_x, train_y, ds.mean, ds.std, cfg.batch_size, self.device, self.dtype, seed=cfg.seed,
            cutout=cfg.cutout, channels_last=cfg.channels_last, rank=self.rank, world_size=self.world,
            **fast.loader_options(cfg))  # fast: translate, alternating flips
        if len(self.loader) == 0:
            raise BenchError(f"batch size {cfg.batch_size} exceeds the {len(train_x)} train images")
        self.test = loader.eval_batches(ds.test_x, ds.test_y, ds.mean, ds.std, cfg.eval_batch_size,
                                        self.device, self.dtype, cfg.channels_last, self.rank, self.world)
        self.n_test = len(ds.test_x)
        self.dataset = ds
        if self.rank == 0 and self.show_progress:
            say(f"run {self.run_id}: {cfg.model} {json.dumps(cfg.model_kwargs)} {cfg.precision} "
                f"inplace={cfg.inplace} batch {cfg.batch_size} (global) x{self.world} epochs {cfg.epochs} "
                f"target {cfg.target} seed {cfg.seed} on {self.device}; data {ds.name} "
                f"({len(train_x)} train / {len(ds.test_x)} test images)")
        measure.sync(self.device)
        self.row["data_time_s"] = time.perf_counter() - t0

        torch.manual_seed(cfg.seed)  # same initial weights on every device and rank
        model = models.create(cfg.model, inplace=cfg.inplace, **cfg.model_kwargs)
        fast.prepare(model, cfg, train_x, ds.mean, ds.std)  # fast: whitening, dirac, frozen BN weights
        self.row["param_count"] = models.param_count(model)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=fmt)
        self.net = torch.compile(self.model) if cfg.compile else self.model
        self.train_net = self.net
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ddp = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            self.train_net = torch.compile(ddp) if cfg.compile else ddp
        self.steps_per_epoch = len(self.loader)
        self.schedule = fast.schedule(cfg, cfg.epochs * self.steps_per_epoch)  # fast: one-cycle or triangle
        self.autocast = dict(device_type=self.device.type, dtype=self.dtype, enabled=cfg.precision != "fp32")
        self.criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

        t1 = time.perf_counter()
        if cfg.warmup_steps:
            self._warmup()
        self._new_optimizer()
        self.lookahead = fast.Lookahead.maybe(self.model, cfg, len(self.schedule))  # fast: weight EMA
        measure.sync(self.device)
        self.row["warmup_time_s"] = time.perf_counter() - t1
        self.row["setup_time_s"] = time.perf_counter() - t_start

    def _new_optimizer(self):
        cfg = self.cfg
        self.opt = torch.optim.SGD(fast.param_groups(self.model, cfg), lr=self.schedule[0][0], momentum=cfg.mom_max,
                                   nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")

    def _warmup(self):
        """Untimed steps that trigger compilation and autotuning; then back to the initial state."""
        init = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._new_optimizer()
        batches = self.loader.epoch(-1)
        for _ in range(self.cfg.warmup_steps):
            x, y = next(batches, (None, None))
            if x is None:
                batches = self.loader.epoch(-2)
                x, y = next(batches)
            self._step(x, y, self.schedule[0])
        self._evaluate()
        with fast.whiten_bias_frozen(self.model, self.cfg) as froze:  # fast: compile the later, frozen-bias
            if froze:                                                  # graphs off the clock too
                self._step(x, y, self.schedule[0])
                self._evaluate()
        self.model.load_state_dict(init)

    def _step(self, x, y, lr_mom, step=None):
        lr, mom = lr_mom
        for g in self.opt.param_groups:
            g["lr"], g["momentum"] = lr * g.get("lr_scale", 1.0), mom  # fast: lr_scale (BN biases)
        with torch.autocast(**self.autocast):
            loss = self.criterion(self.train_net(x), y)
        if self.fault and step is not None:
            loss = faults.inject(self.fault, step, loss)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()

    def _train(self):
        cfg = self.cfg
        on_gpu = self.device.type == "cuda"
        if on_gpu:
            torch.cuda.reset_peak_memory_stats(self.device)
        self.peak_gpu = self.peak_gpu_reserved = 0
        self.sampler = measure.GpuSampler(self.device).start()
        self.progress = RunProgress(cfg.epochs, self.steps_per_epoch,
                                    enabled=self.show_progress and self.rank == 0, live=self.live)
        self.train_time = self.eval_time = 0.0
        step = 0
        timed_compiles = 0
        images_per_step = self.loader.local_batch * self.world
        measure.sync(self.device)
        self.t_train0 = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            self.progress.start_epoch(epoch)
            # one slot per step, filled on the device: no sync, one tiny copy per step
            losses = torch.empty(self.steps_per_epoch, device=self.device)
            self.model.train()
            fast.on_epoch(self.model, cfg, epoch)  # fast: freeze the whitening bias
            measure.sync(self.device)
            if on_gpu:  # per epoch: a first epoch's cuDNN autotuning workspace shows apart from the steady state
                self.peak_gpu = max(self.peak_gpu, torch.cuda.max_memory_allocated(self.device))
                self.peak_gpu_reserved = max(self.peak_gpu_reserved, torch.cuda.max_memory_reserved(self.device))
                torch.cuda.reset_peak_memory_stats(self.device)
            graphs = measure.compiled_graphs() if cfg.compile else None  # no torch._dynamo import otherwise
            t0 = time.perf_counter()
            for k, (x, y) in enumerate(self.loader.epoch(epoch)):
                losses[k] = self._step(x, y, self.schedule[step], step)
                step += 1
                if self.lookahead:  # fast: lookahead
                    self.lookahead.update(step)
                self.progress.step(k + 1, images_per_step)
            measure.sync(self.device)
            t1 = time.perf_counter()
            if graphs is not None:
                new_graphs = measure.compiled_graphs() - graphs
                timed_compiles += new_graphs
                self.row["timed_compiles"] = timed_compiles
                if new_graphs and self.rank == 0:
                    say(f"note: torch.compile compiled {new_graphs} graph(s) during epoch {epoch}'s timed "
                        f"steps; its time includes that (recorded as timed_compiles)")
            self.train_time += t1 - t0
            acc = self._evaluate(epoch)  # fast: the epoch decides the views (tta_last_only)
            t2 = time.perf_counter()
            self.eval_time += t2 - t1
            finite = torch.isfinite(losses)
            stats = torch.stack([torch.where(finite, losses, 0.0).sum(), (~finite).sum().float()])
            if self.world > 1:
                dist.all_reduce(stats)
            n_steps = self.steps_per_epoch * self.world
            n_bad = int(stats[1].item())
            row = dict(run_id=self.run_id, epoch=epoch, elapsed_s=self.train_time, wall_s=t2 - self.t_train0,
                       train_loss=stats[0].item() / max(n_steps - n_bad, 1) if n_bad < n_steps else math.nan,
                       test_acc=acc, lr=self.schedule[step - 1][0],
                       train_images_per_s=self.steps_per_epoch * images_per_step / (t1 - t0), eval_s=t2 - t1,
                       peak_gpu_mem_bytes=torch.cuda.max_memory_allocated(self.device) if on_gpu else None)
            self.epoch_rows.append(row)
            self.row["epochs_completed"] = epoch
            self.progress.end_epoch(row)
            if self.rank == 0:
                results.write(self.results_dir, "epochs", self.run_id, self.epoch_rows)
            if not self.row["reached_target"] and acc >= cfg.target:
                self.row.update(reached_target=True, epoch_reached=epoch, time_to_target_s=self.train_time,
                                wall_time_to_target_s=t2 - self.t_train0)
            # fp16's GradScaler skips steps whose loss overflowed; anywhere else one non-finite
            # loss means the weights are already NaN.
            if n_bad and (cfg.precision != "fp16" or n_bad > n_steps // 2):
                raise Diverged(f"non-finite training loss in {n_bad} of {n_steps} steps of epoch {epoch}")
            if cfg.stop_at_target and self.row["reached_target"]:
                break

    @torch.no_grad()
    def _evaluate(self, epoch=None):
        net = self.net
        if self.world > 1:  # ranks' BatchNorm statistics drift apart: use rank 0's everywhere
            for b in self.model.buffers():
                dist.broadcast(b, 0)
        was_training = self.model.training
        self.model.eval()
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        with torch.autocast(**self.autocast):
            for x, y in self.test:
                correct += (fast.tta_logits(net, x, fast.eval_views(self.cfg, epoch)).argmax(1) == y).sum()  # fast: views
        if self.world > 1:
            dist.all_reduce(correct)
        self.model.train(was_training)
        return correct.item() / self.n_test

    def _finish(self, started):
        row = self.row
        if hasattr(self, "t_train0"):
            row.update(train_time_s=self.train_time, eval_time_s=self.eval_time,
                       wall_time_s=time.perf_counter() - self.t_train0)
            if self.train_time > 0 and self.epoch_rows:
                row["train_images_per_s"] = (len(self.epoch_rows) * self.steps_per_epoch * self.loader.local_batch
                                             * self.world) / self.train_time
        if self.epoch_rows:
            accs = [r["test_acc"] for r in self.epoch_rows]
            row.update(final_acc=accs[-1], best_acc=max(accs), final_train_loss=self.epoch_rows[-1]["train_loss"])
        if getattr(self, "device", None) is not None and self.device.type == "cuda":
            row.update(peak_gpu_mem_bytes=max(getattr(self, "peak_gpu", 0), torch.cuda.max_memory_allocated(self.device)),
                       peak_gpu_reserved_bytes=max(getattr(self, "peak_gpu_reserved", 0),
                                                   torch.cuda.max_memory_reserved(self.device)))
        if getattr(self, "sampler", None):
            row.update(self.sampler.stop())
        row.update(peak_host_rss_bytes=measure.peak_rss_bytes(), finished_at=datetime.now(timezone.utc))
        if not row.get("config_key"):  # failed before the base row: still say what it was
            row.update(config_key=self.cfg.key(), model=self.cfg.model, seed=self.cfg.seed,
                       schema_version=results.SCHEMA_VERSION, started_at=started,
                       model_kwargs=json.dumps(self.cfg.model_kwargs))
        if self.rank == 0 and row.get("run_id"):
            if self.epoch_rows:
                results.write(self.results_dir, "epochs", row["run_id"], self.epoch_rows)
            results.write(self.results_dir, "runs", row["run_id"], [row])
            if self.save and row.get("status") == "ok":
                save_checkpoint(self, self.save)
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    # --- signals and time limit -----------------------------------------------------------

    def _on_sigterm(self, signum, frame):
        raise Interrupted("interrupted by SIGTERM")

    def _start_watchdog(self):
        if not self.cfg.time_limit_s:
            return None

        def fire():
            self.timed_out = True
            os.kill(os.getpid(), signal.SIGTERM)

        t = threading.Timer(self.cfg.time_limit_s, fire)
        t.daemon = True
        t.start()
        return t


def save_checkpoint(run, path):
    """Only tensors and plain values, so `torch.load(..., weights_only=True)` reads it."""
    cfg = run.cfg
    state = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    ckpt = {"format": CHECKPOINT_FORMAT, "run_id": run.run_id, "model": cfg.model,
            "model_kwargs": canonical_kwargs(cfg.model, cfg.model_kwargs), "inplace": cfg.inplace,
            "precision": cfg.precision, "channels_last": cfg.channels_last, "tta": cfg.tta,
            "eval_batch_size": cfg.eval_batch_size,
            "dataset": run.dataset.name, "mean": list(run.dataset.mean), "std": list(run.dataset.std),
            "final_acc": run.row.get("final_acc"), "state_dict": state}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


def evaluate_logits(net, x, tta):
    """Logits, or with test-time augmentation the sum of the image's and its mirror's."""
    out = net(x)
    return out + net(x.flip(3)) if tta else out

