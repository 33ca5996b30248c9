"""The runner: one process trains a configuration for one or more seeds, each seed a run of its
own (its own row, clocks, peaks and status), and records what each cost.

Clocks (all read after synchronising the device):
  - train time: the sum over epochs of the training steps only. time_to_target_s is this sum at
    the end of the first epoch whose quality reaches the target (DAWNBench's rule);
  - wall time: from the start of the first training step, evaluation included
    (wall_time_to_target_s: MLPerf's run clock, with setup off the clock);
  - setup: for the first seed of a process, data load and decode, model build and `warmup_steps`
    untimed steps (torch.compile, cuDNN autotuning); for later seeds, the reset of weights and
    optimiser (`seed_index` says which). State is reset after the warm-up and between seeds.
No step of the timed loop synchronises the device or calls .item(); losses accumulate on the
device and are read once per epoch. What is trained is a workload (bench/workload.py).
"""
import math
import os
import signal
import threading
import time
from datetime import datetime, timezone

import torch
import torch.distributed as dist

import models
from . import faults, meters, ranks, results, stops, summary
from . import workload as workloads
from .config import BenchError, resolve_device, usable_cpus
from .outcome import Diverged, classify
from .row import base_row, checkpoint_path, flops_fields, new_run_id, save_checkpoint
from .ui import RunProgress, say

# A failed seed whose failure leaves the process usable: the next seed runs in it. Any other
# failure (a crash may have poisoned the CUDA context; an interrupt means stop) ends the process.
CONTINUE_AFTER = ("ok", "diverged", "oom", "timeout")


def distributed():
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) without it."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


class Runner:
    """One process's runs: the workload set up once, then each seed in turn. `execute()` never
    raises for a failed run: it records it and returns every row it wrote."""

    def __init__(self, cfg, data_source=None, results_dir="results", seeds=None, run_ids=None, save=None,
                 sweep=None, sweep_run_id=None, progress=True, live=None, cache=None):
        self.cfg, self.data_source, self.results_dir, self.cache = cfg, data_source, results_dir, cache
        self.seeds = list(seeds) if seeds is not None else [cfg.seed]
        self.save, self.sweep, self.sweep_run_id = save, sweep, sweep_run_id
        self.show_progress, self.live = progress, live
        self.rank, self.local_rank, self.world = distributed()
        self.run_ids = list(run_ids) if run_ids else None
        self.fault = faults.parse()
        self.rows, self.signals = [], []  # signals: the stops that came from outside (for bench.run's caller)
        self.workload = self.setup_error = None
        self.timed_out = False

    # --- the seed loop --------------------------------------------------------------------

    def execute(self):
        self.held_stops, prev = [], {}  # see _on_stop
        if threading.current_thread() is threading.main_thread():
            self.held_stops = [stops.exception(s) for s in stops.take()]  # ones that came while `bench run` started
            prev[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_stop)
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where SIGINT is ignored
                prev[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_stop)
        try:
            try:
                self._setup_process()
            except Exception as e:  # noqa: BLE001 - a GPU or process group that would not start: the first
                self.setup_error = e  # seed records it as it records any failure (bad input stays bad input)
                self.run_ids = self.run_ids or [new_run_id(self.cfg, s) for s in self.seeds]
            for i, seed in enumerate(self.seeds):
                row = self._one_seed(i, seed)
                if row["status"] not in CONTINUE_AFTER:
                    break
        finally:
            for sig, handler in prev.items():
                signal.signal(sig, handler)
            if self.world > 1 and dist.is_initialized():
                dist.destroy_process_group()
        return self.rows

    def _one_seed(self, index, seed):
        cfg = self.cfg
        t_start, started = time.perf_counter(), datetime.now(timezone.utc)
        self.timed_out = False
        watchdog = self._start_watchdog()
        try:
            rss = meters.PeakRss().start()
            row = base_row(cfg, self.run_ids[index], self.device, self.world, started, seed, index, self.sweep,
                           self.sweep_run_id)
        except BaseException:  # no row to record it in, but the time limit must not fire later, into the caller
            if watchdog:
                watchdog.cancel()
            raise
        rec, bad_input = {"epochs": [], "train_time": 0.0, "eval_time": 0.0, "t_train0": None}, False
        try:
            held, self.held_stops = self.held_stops, None
            if held:  # a stop that came while no run was open: this run records it
                raise held[0]
            if self.setup_error:
                raise self.setup_error
            if self.workload is None:  # the first seed, or the one after a seed whose setup failed
                self.setup_index, row["seed_index"] = index, 0  # it pays data, build and warm-up again
                self._setup_workload(row, t_start)
            else:
                row.update(self.setup_fields, seed_index=index - self.setup_index)
            t1 = time.perf_counter()
            self.workload.reset(seed)
            meters.sync(self.device)
            # the reset is setup too: after the first seed's warm-up as before each later seed
            row["setup_time_s"] = time.perf_counter() - (t1 if row["seed_index"] else t_start)
            if row["seed_index"]:
                row.update(data_time_s=0.0, warmup_time_s=0.0, warmup_compiles=0 if self.cfg.compile else None)
            self._train(row, rec)
            row["status"] = "ok"
        except BenchError:
            bad_input = True  # bad input is the user's to fix, not a run: nothing is written
            raise
        except BaseException as e:  # noqa: BLE001 - every way a run can end is recorded
            status, msg = classify(e)
            if status == "interrupted" and self.timed_out:
                status, msg = "timeout", f"exceeded the time limit of {cfg.time_limit_s:g} s"
            row.update(status=status, error=msg[-4000:])
            if self.world > 1:  # only rank 0 writes the row: the parent learns each rank's reason from this
                ranks.report(self.rank, row["run_id"], status, row["error"])
            if not isinstance(e, (Exception, KeyboardInterrupt)):
                raise
        finally:
            # A SIGTERM from here on (a killed sweep's PR_SET_PDEATHSIG, torchrun stopping) or a second
            # Ctrl-C must not cut the recording short: it waits, and stops the next seed if there is one.
            self.held_stops = [] if self.held_stops is None else self.held_stops
            if watchdog:
                watchdog.cancel()
            if getattr(self, "progress", None):
                self.progress.close()
            if not bad_input:
                self._finish(row, rec, rss)
        return row

    # --- setup ----------------------------------------------------------------------------

    def _setup_process(self):
        cfg = self.cfg
        if resolve_device(cfg) == "cuda":
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
        else:
            self.device = torch.device("cpu")
            if self.world > 1:  # share the cores between the processes
                local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
                torch.set_num_threads(max(1, usable_cpus() // local))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.run_ids is None:
            ids = [[new_run_id(cfg, s) for s in self.seeds] if self.rank == 0 else None]
            if self.world > 1:
                dist.broadcast_object_list(ids, src=0)
            self.run_ids = ids[0]
        self.nvml = meters.Nvml(self.device)

    def _setup_workload(self, row, t_start):
        from . import data as data_mod

        cfg = self.cfg
        t0 = time.perf_counter()
        ds = data_mod.load(self.data_source, cache=self.cache, warn=say)
        meters.sync(self.device)
        data_time = time.perf_counter() - t0
        wl = workloads.get(cfg.workload)(cfg, self.device, self.rank, self.world, self.fault)
        self.setup_fields = fields = wl.setup(ds)
        row.update(fields)
        if self.rank == 0 and self.show_progress:
            say(f"{cfg.workload} {cfg.model} {cfg.model_kwargs} {cfg.precision} inplace={cfg.inplace} batch "
                f"{cfg.batch_size} (global) x{self.world} epochs {cfg.epochs} target {cfg.target} seeds "
                f"{','.join(map(str, self.seeds))} on {self.device}; data {ds.name} ({fields.get('train_images')} "
                f"train / {fields.get('test_images')} test images)")
        if self.rank == 0 and (note := models.unchecked_note(cfg.model, cfg.model_kwargs)):
            say(note)  # shown even without progress: it bears on what the row says was trained
        meters.sync(self.device)  # the setup's queued device work is not the warm-up's
        t1 = time.perf_counter()
        graphs0 = meters.compiled_graphs() if cfg.compile else None
        if cfg.warmup_steps:
            wl.warmup(cfg.warmup_steps)
        if graphs0 is not None:  # the proof that compilation happened, and before the clock
            row["warmup_compiles"] = meters.compiled_graphs() - graphs0
        self.workload = wl  # only now: a seed after a failed setup must set up again
        meters.sync(self.device)
        row.update(data_time_s=data_time, warmup_time_s=time.perf_counter() - t1,
                   setup_time_s=time.perf_counter() - t_start)

    # --- the timed loop -------------------------------------------------------------------

    def _train(self, row, rec):
        cfg, wl, dev = self.cfg, self.workload, self.device
        mem, nvml = meters.GpuMemory(dev).start(), self.nvml.start()
        comp, host = meters.Compiles(cfg.compile).start(), meters.HostLoad().start()
        syncs = meters.HostSyncs(dev).start()  # the check of "no sync in the timed loop", on CUDA
        self.meters = (mem, nvml, comp, host, syncs)
        self.progress = RunProgress(cfg.epochs, wl.steps_per_epoch, enabled=self.show_progress and self.rank == 0,
                                    live=self.live, quality=wl.quality, loss=wl.loss_names[0])
        step = 0
        meters.sync(dev)
        rec["t_train0"] = t_train0 = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            n = wl.epoch_steps(epoch)  # a WGAN's differ: its critic bursts
            self.progress.start_epoch(epoch, n, wl.epoch_images(epoch) / n)
            # one slot per step and loss, filled on the device: no sync, one tiny copy per step
            losses = torch.empty(n, len(wl.loss_names), device=dev)
            comp.begin_epoch()
            t0 = rec["t_epoch0"] = time.perf_counter()
            with syncs.steps():
                for k, batch in enumerate(wl.batches(epoch)):
                    losses[k] = wl.step(batch, step)
                    step += 1
                    self.progress.step(k + 1)
            meters.sync(dev)
            t1 = time.perf_counter()
            # one call, so a stop (a signal handler raising between statements) counts the epoch once
            rec.update(train_time=rec["train_time"] + t1 - t0, t_epoch0=None)
            new_graphs = comp.end_epoch()
            if new_graphs and self.rank == 0:
                say(f"note: torch.compile compiled {new_graphs} graph(s) during epoch {epoch}'s timed "
                    f"steps; its time includes that (recorded as timed_compiles)")
            self.progress.evaluating()
            metrics = wl.evaluate()
            t2 = time.perf_counter()
            rec["eval_time"] += t2 - t1
            means, n_bad, n_steps = self._loss_means(losses)
            ep = results.new_row("epochs")
            ep.update(run_id=row["run_id"], epoch=epoch, elapsed_s=rec["train_time"], wall_s=t2 - t_train0,
                      train_images_per_s=wl.epoch_images(epoch) / (t1 - t0), eval_s=t2 - t1,
                      peak_gpu_mem_bytes=mem.epoch(), **means, **metrics, **wl.epoch_fields(step))
            rec["epochs"].append(ep)
            self.progress.end_epoch(ep)
            if self.rank == 0:
                results.write(self.results_dir, "epochs", row["run_id"], rec["epochs"])
            # fp16's GradScaler skips steps whose loss overflowed; anywhere else one non-finite
            # loss means the weights are already NaN.
            if n_bad and (cfg.precision != "fp16" or n_bad > n_steps // 2):
                raise Diverged(f"non-finite training loss in {n_bad} of {n_steps} steps of epoch {epoch}")
            if cfg.stop_at_target and summary.at_or_better(metrics[wl.quality], cfg.target, wl.higher_is_better):
                break

    def _loss_means(self, losses):
        """Each loss's mean over the epoch's finite steps (all ranks), and the non-finite count."""
        finite = torch.isfinite(losses).all(1)
        stats = torch.cat([torch.where(finite[:, None], losses, 0.0).sum(0), (~finite).sum().float()[None]])
        if self.world > 1:
            dist.all_reduce(stats)
        stats = stats.tolist()
        n_steps, n_bad = len(losses) * self.world, int(stats[-1])
        means = {name: (stats[i] / (n_steps - n_bad) if n_bad < n_steps else math.nan)
                 for i, name in enumerate(self.workload.loss_names)}
        return means, n_bad, n_steps

    # --- recording ------------------------------------------------------------------------

    def _finish(self, row, rec, rss):
        cfg, wl = self.cfg, self.workload
        if rec["t_train0"] is not None:
            if rec.get("t_epoch0") is not None:  # stopped mid-epoch: that epoch's training counts too,
                if why := meters.unfinished(self.device, 10.0):  # its queued kernels with it, if they finish
                    row["error"] = (f"{row['error']}; the device work queued at the stop {why}, "
                                    "so train_time_s leaves it out")
                rec["train_time"] += time.perf_counter() - rec["t_epoch0"]
            row.update(train_time_s=rec["train_time"], eval_time_s=rec["eval_time"],
                       wall_time_s=time.perf_counter() - rec["t_train0"])
            images = sum(wl.epoch_images(e["epoch"]) for e in rec["epochs"])
            if images:  # over the finished epochs: an interrupted one's steps are in train_time only
                row["train_images_per_s"] = images / rec["epochs"][-1]["elapsed_s"]
                row.update(wl.run_fields(len(rec["epochs"])))  # what depends on the epochs it finished
            mem, nvml, comp, host, syncs = self.meters
            own, row["peak_host_rss_bytes"] = host.own_cpu_s(), rss.stop()["peak_host_rss_bytes"]
            if self.world > 1 and row["status"] == "ok":  # only then are all ranks at this point
                own, row["peak_host_rss_bytes"] = ranks.combine(
                    own, row["peak_host_rss_bytes"], self.device,
                    int(os.environ.get("LOCAL_WORLD_SIZE", self.world)) == self.world)
            row.update(**mem.stop(), **nvml.stop(), **comp.stop(), **host.stop(own), **syncs.stop())
        elif getattr(self, "nvml", None):  # a run that failed before its clock started: no sampler left running
            self.nvml.stop()
        if rec["epochs"]:
            s = summary.summarize(rec["epochs"], cfg.target, wl.quality, wl.higher_is_better)
            row.update(reached_target=s["reached_target"], epoch_reached=s["epoch_reached"],
                       time_to_target_s=s["time_to_target_s"], wall_time_to_target_s=s["wall_time_to_target_s"],
                       epochs_completed=s["epochs_completed"], final_acc=s["final"], best_acc=s["best"],
                       final_train_loss=rec["epochs"][-1].get(wl.loss_names[0]))
        row.update(flops_fields(row))
        if row["peak_host_rss_bytes"] is None:  # a run that never trained
            row.update(rss.stop())
        row["finished_at"] = datetime.now(timezone.utc)
        self.rows.append(row)
        if self.rank == 0:
            if self.save and row["status"] == "ok":  # before the row: a save that fails makes the run fail
                path = checkpoint_path(self.save, row["seed"], len(self.seeds))
                try:
                    save_checkpoint(wl, row, path)
                except Exception as e:  # noqa: BLE001 - disk full, a path gone meanwhile: the row says so
                    row.update(status="crashed", error=f"could not save the checkpoint to {path}: "
                                                       f"{getattr(e, 'strerror', None) or e}")
            if rec["epochs"]:
                results.write(self.results_dir, "epochs", row["run_id"], rec["epochs"])
            results.write(self.results_dir, "runs", row["run_id"], [row])
            if rec["epochs"] and hasattr(wl, "save_artifacts"):  # a GAN's sample grid (bench/workloads/gan.py)
                wl.save_artifacts(self.results_dir, row["run_id"])

    # --- signals and time limit -----------------------------------------------------------

    def _on_stop(self, signum, frame):
        """SIGTERM (the time limit's too) and Ctrl-C end the open run in its try, which records it; a later
        stop, or one with no run open (setup, recording, between seeds), waits for the next run to raise."""
        stop = stops.exception(signum)
        if not self.timed_out:  # the time limit's own SIGTERM is this run's business, not the caller's
            self.signals.append(signum)
        if self.held_stops is None:
            self.held_stops = []  # this run is stopping now: a second signal (a sweep's SIGTERM after Ctrl-C) waits
            raise stop
        self.held_stops.append(stop)

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

