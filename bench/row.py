"""A run row's identity and configuration columns, in one place: the runner, the isolation
parent (for a run that could not record itself) and the sweep build rows from here. Importing this
module does not import torch: a sweep mints run ids without it."""
import dataclasses
import json
import os
from datetime import datetime, timezone

from . import results
from .config import BenchError, canonical_kwargs

CHECKPOINT_FORMAT = "cifar-bench-checkpoint/1"
CLOCK = ("time_to_target_s/train_time_s: training steps only, eval excluded (DAWNBench); "
         "wall_*: from the first timed step, eval included; setup (data, build, warm-up) off the clock")


def seeded(cfg, seed):
    return dataclasses.replace(cfg, seed=seed)


def new_run_id(cfg, seed=None):
    import models

    seed = cfg.seed if seed is None else seed
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    # a user's FILE.py:fn names itself; a GAN's is named by its workload (a wgan trains the dcgan pair)
    model = models.model_name(cfg.model) if cfg.workload == "classify" else cfg.workload
    return results.safe_name(f"{model}-{seeded(cfg, seed).key()[:8]}-s{seed}-{stamp}-{os.urandom(3).hex()}")


def config_fields(cfg):
    """The configuration and setting columns of a run row, from RunConfig's fields."""
    from .columns import config_columns
    d = cfg.to_dict()
    out = {c.name: d[c.name] for c in config_columns()}
    out["model_kwargs"] = json.dumps(canonical_kwargs(cfg.model, cfg.model_kwargs))
    return out


def base_row(cfg, run_id, device, world_size, started, seed=None, seed_index=0, sweep=None, sweep_run_id=None):
    """Every column of a run row, with its configuration, fingerprint and identity filled in."""
    import models

    from . import fast
    from .measure import fingerprint
    from .workload import get

    cfg = seeded(cfg, cfg.seed if seed is None else seed)
    wl = get(cfg.workload)
    row = results.new_row("runs")
    row.update(config_fields(cfg))
    row["tta_views"] = fast.views(cfg)  # the views evaluated (1 without TTA), not the setting's null
    row["fused"] = cfg.fused_on(device) and wl.fusable  # what stepped, not the setting's null
    row.update(models.row_fields(cfg.model))  # a user's model: its own name, import path, source hash
    row["model_kwargs_unchecked"] = json.dumps(u) if (u := models.unchecked(cfg.model, cfg.model_kwargs)) else None
    row.update(fingerprint(device, world_size))
    row.update(run_id=run_id, schema_version=results.SCHEMA_VERSION, sweep=sweep, sweep_run_id=sweep_run_id,
               config_key=cfg.key(), batch_size_scope="global", quality=wl.quality, seed_index=seed_index,
               started_at=started, clock=CLOCK, epochs_completed=0, reached_target=False,
               fault=os.environ.get("BENCH_FAULT") or None)
    return row


def checkpoint_path(save, seed, n_seeds):
    """--save PATH for one seed; with several, PATH must hold {seed}."""
    return save.replace("{seed}", str(seed))


def check_save(save, n_seeds):
    if save and n_seeds > 1 and "{seed}" not in save:
        raise BenchError(f"--save {save}: with several seeds the path needs {{seed}} (e.g. model-{{seed}}.pt)")


def flops_fields(row):
    """achieved_tflops, peak_tflops (x GPUs) and mfu from the row's flops_per_image and throughput."""
    from . import flops

    f = flops.run_fields(row.get("flops_per_image"), row.get("train_images_per_s"), row.get("device_name"),
                         row.get("precision"))
    if f["peak_tflops"] is not None and row.get("gpu_count"):
        f["peak_tflops"] *= row["gpu_count"]
        f["mfu"] = f["achieved_tflops"] / f["peak_tflops"] if f["achieved_tflops"] is not None else None
    return f


def save_checkpoint(wl, row, path):
    import torch

    ckpt = wl.checkpoint()
    if ckpt is None:
        return
    ckpt.update(format=CHECKPOINT_FORMAT, **{k: row.get(k) for k in ("run_id", "final_acc", "model_source", "model_source_hash")})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
