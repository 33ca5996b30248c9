"""The GANs' quality metric: a Frechet distance in the feature space of a CIFAR-10 classifier that
this harness trains itself (the "judge"), so that nothing comes from the internet.

It is NOT the FID: the FID uses Inception-v3 features trained on ImageNet. Label it
"FD in <judge> features" (`label()`); every row names its judge by `judge` = a checksum of the
judge's weights, and only distances with the same judge (and the same sample count) compare.

The judge is trained once from a fixed recipe (`JUDGE_RECIPE`: the `cpu` recipe's ResNet-9 at
width 0.125, 3 epochs on 10,000 train images, seed 0) by the harness's own runner, and stored as
`judge-<key>.pt` beside a `.json` that carries the sha256 of the file; the key is the recipe and the
data checksum, not the device. The judge for the shared JPEG copy is kept with the code
(bench/judges/), because a retrain on another machine gives other weights; any other (recipe, data)
is trained on first use and cached like the decoded data under $BENCH_CACHE (default
~/.cache/cifar-bench). A file whose bytes differ from its checksum is never trusted.

Features: the judge's penultimate layer (the global max pool, before the linear classifier), in
float32, of images normalised by the train set's statistics as the judge was trained. Generated
images in [-1, 1] are quantised to 0..255 first, like the real uint8 images.

Frechet distance between Gaussians N(m1, S1), N(m2, S2) fitted to two feature sets:
    |m1 - m2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)
in float64; both square roots are of symmetric positive semi-definite matrices, so they come from
an eigendecomposition (eigenvalues clipped at 0) and need no scipy (tests/test_gan.py checks it
against closed forms).
"""
import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from . import stops
from .config import BenchError, canonical_kwargs, from_recipe

# The `cpu` recipe (ResNet-9, bf16, one-cycle, label smoothing) at width 0.125, 3 epochs on a seeded
# 10,000-image subset, no test-time flips: a judge that the shared 2-core CPU trains in minutes
# (its accuracy is in the README). Changing it changes every distance: a new judge, a new checksum.
JUDGE_RECIPE = dict(recipe="cpu", seed=0, model_kwargs={"width": 0.125}, epochs=3, limit_train=10000, tta=False)
# Judges kept with the code, one per (recipe, data) key: the same bytes on every machine. Retrained
# elsewhere, the same recipe gives other weights (bf16 on another CPU rounds differently), and so
# other distances; the judge for cifar10-jpeg lives here for that reason (bench/judges/README.md).
COMMITTED = Path(__file__).parent / "judges"
# the settings that decide the judge's weights, always in its key
_KEY_FIELDS = ("model", "model_kwargs", "precision", "batch_size", "epochs", "seed", "lr", "div", "pct",
               "mom_max", "mom_min", "weight_decay", "nesterov", "label_smoothing", "cutout", "limit_train")
# the settings that cannot change them: where and how fast it trains, and how it is evaluated
# (target only decides the weights with stop_at_target, which then joins the key below)
_NOT_WEIGHTS = {"recipe", "device", "time_limit_s", "eval_batch_size", "tta", "tta_views", "tta_last_only",
                "warmup_steps", "compile", "compile_mode", "fused", "channels_last", "inplace", "target"}


@dataclass
class Judge:
    net: torch.nn.Module          # the feature extractor: the classifier without its head
    checksum: str                 # sha256 of the weights, the `judge` column
    test_acc: float               # the classifier's accuracy on the test set when it was trained
    config: dict                  # the recipe it was trained from, resolved
    mean: torch.Tensor
    std: torch.Tensor

    @property
    def name(self):
        return f"{self.config['model']}-{self.checksum[:8]}"

    def label(self):
        return f"FD in {self.name} features"

    def to(self, device):
        self.net.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    @torch.no_grad()
    def features(self, images, batch_size=500):
        """float64 [N, C] features of images on the 0..255 scale ([N, 3, 32, 32], any float or uint8)."""
        device = self.mean.device
        out = []
        with _fp32_convolutions():
            for x in images.split(batch_size):
                x = (x.to(device, torch.float32) - self.mean) / self.std
                out.append(self.net(x).flatten(1).double())
        return torch.cat(out)


@contextlib.contextmanager
def _fp32_convolutions():
    """cuDNN runs fp32 convolutions in TF32 by default (10-bit mantissa): the judge's features would
    then differ between a GPU and a CPU for one judge. Full fp32 while it runs; the caller's setting after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def to_pixels(x):
    """Generator output in [-1, 1] -> the 0..255 grid real images live on."""
    return ((x.float() + 1) * 127.5).round().clamp(0, 255)


def judge_config(**overrides):
    cfg = dict(JUDGE_RECIPE)
    cfg.update(overrides)
    return from_recipe(cfg.pop("recipe"), **cfg)


def cache_key(cfg, data_checksum):
    from .config import RunConfig
    d, default = cfg.to_dict(), RunConfig().to_dict()
    d["model_kwargs"] = canonical_kwargs(cfg.model, cfg.model_kwargs)
    config = {k: d[k] for k in _KEY_FIELDS}
    # any other setting away from its default is another judge (translate 0, whiten, a schedule); at
    # its default it stays out, so the keys of judges trained before the setting existed hold
    config.update({k: v for k, v in d.items() if k not in config and k not in _NOT_WEIGHTS and v != default[k]})
    if cfg.stop_at_target:
        config["target"] = cfg.target
    blob = json.dumps({"config": config, "data": data_checksum}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def weights_checksum(state_dict):
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().cpu().contiguous().reshape(-1)
        h.update(k.encode() + str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def load_or_train(data_source, dataset, cache=None, warn=print, **overrides):
    """The judge for this data set: the one kept with the code (COMMITTED) or the cached one, if its
    checksum holds; else trained now into the cache."""
    from .data import cache_dir

    cfg = judge_config(**overrides)
    name = f"judge-{cache_key(cfg, dataset.checksum)}"
    root = Path(cache) if cache else cache_dir()
    for where in (COMMITTED, root):
        pt, meta_path = (where / name).with_suffix(".pt"), (where / name).with_suffix(".json")
        if pt.exists() and meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
                if _file_sha256(pt) != meta.get("sha256"):
                    raise ValueError("checksum mismatch")
                return _load(pt, meta)
            except (ValueError, OSError, KeyError, RuntimeError, json.JSONDecodeError) as e:
                warn(f"warning: judge {pt} is unusable ({e}); not using it")
    pt, meta_path = (root / name).with_suffix(".pt"), (root / name).with_suffix(".json")
    warn(f"training the FD judge ({cfg.model} {cfg.model_kwargs}, recipe {JUDGE_RECIPE['recipe']!r} "
         f"+ {overrides or 'no changes'}, {cfg.epochs} epochs); cached in {pt} for later runs")
    meta = _train(cfg, data_source, pt)
    root.mkdir(parents=True, exist_ok=True)
    tmp = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, meta_path)
    return _load(pt, meta)


def _train(cfg, data_source, pt):
    from . import runner

    pt.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = pt.with_name(f".{pt.name}.{os.getpid()}.tmp")
        inner = runner.Runner(cfg, data_source, results_dir=d, save=str(tmp), progress=False)
        row = inner.execute()[-1]
        if inner.signals:  # the GAN run's own Ctrl-C or SIGTERM (its time limit's) landed in this nested
            os.kill(os.getpid(), inner.signals[-1])  # run: handed on to the GAN run's handler, which records
            raise stops.Interrupted("the FD judge's training was stopped")  # it (a stop, not bad input)
        if row.get("status") != "ok":
            raise BenchError(f"training the FD judge failed ({row.get('status')}): "
                             f"{str(row.get('error', '')).splitlines()[-1:]}")
        os.replace(tmp, pt)
    return describe(pt, cfg, **{k: row.get(k) for k in ("train_time_s", "device_name", "hardware_id",
                                                          "torch_version", "git_commit", "git_dirty")})


def describe(pt, cfg, **extra):
    """The .json beside a judge file: its checksums, accuracy and recipe."""
    ckpt = torch.load(pt, map_location="cpu", weights_only=True)
    return {"sha256": _file_sha256(pt), "weights_sha256": weights_checksum(ckpt["state_dict"]),
            "test_acc": ckpt["final_acc"], "run_id": ckpt["run_id"], "config": cfg.to_dict(), **extra}


def _load(pt, meta):
    import models

    ckpt = torch.load(pt, map_location="cpu", weights_only=True)
    model = models.create(ckpt["model"], inplace=False, **ckpt["model_kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    checksum = weights_checksum(ckpt["state_dict"])
    if checksum != meta["weights_sha256"]:
        raise ValueError("weights differ from the recorded checksum")
    # every model of the zoo ends in a global pool, Flatten, then the classifier head
    heads = next(i for i, m in enumerate(model) if isinstance(m, torch.nn.Flatten))
    net = model[:heads + 1].eval().requires_grad_(False)
    return Judge(net, checksum, meta["test_acc"], meta["config"],
                 torch.tensor(ckpt["mean"]).view(1, 3, 1, 1), torch.tensor(ckpt["std"]).view(1, 3, 1, 1))


def _file_sha256(path):
    from .data import _file_checksum  # one file hash for both caches
    return _file_checksum(path)


# --- the distance -----------------------------------------------------------------------------

def gaussian(features):
    """(mean, covariance) of float64 features [N, C]."""
    f = features.double()
    return f.mean(0), torch.cov(f.T)


def _sqrt_psd(m):
    w, v = torch.linalg.eigh(_sym(m))
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet(g1, g2):
    """Frechet distance between two Gaussians given as (mean, covariance)."""
    (m1, s1), (m2, s2) = g1, g2
    if not all(torch.isfinite(t).all() for t in (m1, s1, m2, s2)):  # a diverged generator's NaN images:
        return float("nan")  # eigh would raise, and the run read as crashed in evaluation, not diverged
    r = _sqrt_psd(s1)
    inner = torch.linalg.eigvalsh(_sym(r @ s2 @ r)).clamp(min=0).sqrt().sum()
    return float((m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * inner)


def _sym(m):
    # symmetric in exact arithmetic; rounding must not give eigh an asymmetric matrix
    return (m + m.T) / 2
