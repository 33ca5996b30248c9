"""One run's configuration, its validation, and the named recipes.

A `RunConfig` is everything that changes what a run measures. Each field is declared once, here,
with its meaning and whether it identifies the run (`key`): `key()` hashes exactly the identifying
fields (a sweep cell: configuration + seed), and bench/columns.py turns every field into a column
of the run row. Settings that do not change what a run measures (device choice, time limit,
evaluation batch) are recorded but not hashed.
"""
import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field

PRECISIONS = ("fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")


class BenchError(Exception):
    """Bad input or environment: the CLI prints the message as one line and exits 2."""


def setting(default, meaning, key=True, **kw):
    """A RunConfig field with its meaning; `key=False` for settings that do not change the measurement."""
    meta = {"meaning": meaning, "key": key}
    if callable(default) and not isinstance(default, (int, float, str, bool)):
        return field(default_factory=default, metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


class _Unset(dict):
    """RunConfig's default model_kwargs, told apart from keywords given explicitly."""


@dataclass
class RunConfig:
    workload: str = setting("classify", "what is trained: classify (CIFAR-10 classifier), dcgan or wgan")
    model: str = setting("darknet", "model name (registered, or MODULE:FN / FILE.py:FN)")
    model_kwargs: dict = setting(lambda: _Unset(blocks=[1, 2, 4, 6, 3], nf=32, width=0.5),
                                 "model keywords as JSON, defaults filled in")
    recipe: str | None = setting(None, "named recipe the configuration started from, if any", key=False)
    precision: str = setting("fp32", "fp32, fp16 or bf16 (autocast; fp16 with GradScaler). fp32 on CUDA: "
                                     "convolutions in TF32, PyTorch's default")
    inplace: bool = setting(True, "in-place activations (and safe in-place adds)")
    channels_last: bool = setting(False, "NHWC memory format")
    compile: bool = setting(False, "torch.compile")
    compile_mode: str = setting("default", "torch.compile mode: default, reduce-overhead (CUDA graphs), "
                                           "max-autotune-no-cudagraphs, max-autotune")
    batch_size: int = setting(256, "global batch size: split evenly over world_size processes")
    world_size: int = setting(1, "processes (GPUs) in DDP")
    epochs: int = setting(30, "epochs scheduled")
    target: float = setting(0.94, "target of the quality metric (test accuracy, a fraction)")
    seed: int = setting(0, "seed for init, order and augmentation")
    # One-cycle, fastai's use_clr_beta=(div, pct, mom_max, mom_min): lr rises from lr/div to lr
    # and falls back over (100 - pct)% of the steps, then anneals to lr/(100*div) over the last pct%.
    lr: float = setting(1.3, "peak learning rate")
    div: float = setting(20.0, "one-cycle: start lr = lr / div")
    pct: float = setting(20.0, "one-cycle: % of steps in the final annealing")
    mom_max: float = setting(0.95, "one-cycle momentum, high")
    mom_min: float = setting(0.85, "one-cycle momentum, low")
    weight_decay: float = setting(1e-4, "SGD weight decay")
    nesterov: bool = setting(True, "SGD with Nesterov momentum")
    label_smoothing: float = setting(0.0, "cross-entropy label smoothing")
    cutout: int = setting(0, "cutout square side in pixels, 0 = off")
    tta: bool = setting(False, "evaluation averages the image and its mirror (test-time augmentation)")
    warmup_steps: int = setting(0, "untimed steps before the clock (compile, autotune); the model is reset after them")
    limit_train: int | None = setting(None, "train on this many images drawn with seed 0, not class-balanced (null: all)")
    stop_at_target: bool = setting(False, "training stopped at the first epoch at target")
    device: str = setting("auto", "device asked for: auto, cpu or cuda (the `device` column says which ran)",
                          key=False)
    eval_batch_size: int = setting(1000, "evaluation batch size", key=False)
    time_limit_s: float | None = setting(None, "the run is recorded as timeout after this long", key=False)
    # issue #17's settings (bench/fast.py): at their defaults a run is what it was before they existed
    tta_views: int | None = setting(None, "test-time views with tta: 1, 2 (the mirror; null means 2) or 6 "
                                          "(mirror x 1-pixel shifts); the `tta_views` column says what ran")
    translate: int = setting(4, "random-crop range: pixels of reflection padding")
    alt_flip: bool = setting(False, "each image flipped on alternate epochs (seeded) instead of at random")
    whiten: bool = setting(False, "first layer: frozen 2x2 patch whitening from the train data (fastnet)")
    whiten_bias_epochs: int = setting(0, "epochs the whitening bias trains before it is frozen too")
    dirac: bool = setting(False, "3x3 convs initialised as partial identity")
    bn_weight_frozen: bool = setting(False, "BatchNorm weights frozen at 1 (only the biases train)")
    bn_bias_lr_scale: float = setting(1.0, "BatchNorm biases' lr multiplier (their weight decay divided by it)")
    lookahead_every: int = setting(0, "steps between lookahead (weight EMA) updates; 0 = off")
    lookahead_decay: float = setting(0.95, "lookahead's EMA decay per step (ramped in as (step/total)^3)")
    schedule: str = setting("one_cycle", "lr schedule: one_cycle, or triangle (lr/div -> lr at pct% of the "
                                         "steps -> lr/final_div)")
    final_div: float = setting(1.0, "triangle schedule: the last step's lr = lr / final_div")
    tta_last_only: bool = setting(False, "epochs before the last evaluated on one view (saves CPU time; not "
                                         "with stop_at_target); tta_views applies to the last")
    muon_lr: float = setting(0.0, "Muon for the conv filters at this peak lr (scaled by the schedule like lr; "
                                  "each filter's norm held fixed); 0 = SGD for every weight")
    muon_momentum: float = setting(0.6, "Muon's Nesterov momentum (the SGD weights keep the schedule's)")
    fused: bool | None = setting(None, "fused optimizer steps (SGD, Adam; Muon and RMSprop are the harness's own): "
                                       "with fp16, GradScaler skips an overflowed step without a host sync; null "
                                       "= on CUDA, off on the CPU; the `fused` column says what ran")

    def __post_init__(self):
        # the default keywords are the darknet's: another model named without its own starts from
        # its own defaults (RunConfig(model="net.py:fn") would else be refused for darknet's `blocks`)
        if type(self.model_kwargs) is _Unset:
            self.model_kwargs = dict(self.model_kwargs) if self.model == "darknet" else {}

    def fused_on(self, device):
        """Whether the optimizers step with fused kernels on this device (a torch.device or its name).
        Unfused, GradScaler reads found_inf with .item() every fp16 step: a host sync in the timed loop."""
        return str(device).startswith("cuda") if self.fused is None else bool(self.fused)

    def to_dict(self):
        return dataclasses.asdict(self)

    def key(self, fields=None):
        """A stable hash of what the run measures: key_fields(), or `fields` (Cell.keys: respelt ones)."""
        fields = self.key_fields() if fields is None else fields
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def key_fields(self):
        """What key() hashes."""
        import models

        d = {k: v for k, v in self.to_dict().items() if FIELDS[k].metadata["key"]}
        d["model_kwargs"] = models.keyed_kwargs(self.model, canonical_kwargs(self.model, self.model_kwargs))
        d.update(models.identity(self.model))  # a user's model: its name and source hash, not its path
        # fields added after results were first recorded hash only when they differ from their
        # default, so older rows keep their keys (a resumed sweep still finds them)
        for k, v in NEW_FIELD_DEFAULTS.items():
            if d.get(k) == v:
                d.pop(k)
        return d


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
KEY_FIELDS = [n for n, f in FIELDS.items() if f.metadata["key"]]
# Added in schema 2 (the workload, compile mode and issue #17's settings from tta_views on); absent
# from the hash at their defaults, see RunConfig.key.
NEW_FIELD_DEFAULTS = {"workload": "classify", "compile_mode": "default",
                      **{k: FIELDS[k].default for k in list(FIELDS)[list(FIELDS).index("tta_views"):]}}


def canonical_kwargs(model, kwargs):
    """The model's keywords with defaults filled in, each spelt one way (models.registry.canonical)."""
    from models.registry import canonical
    return canonical(model, kwargs)


from .recipes import RECIPES  # noqa: E402  (the named configurations, each one literal)


def from_recipe(name, **overrides):
    if name is not None and name not in RECIPES:
        raise BenchError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    values = dict(RECIPES.get(name, {}))
    values.update(overrides)
    values.pop("recipe", None)
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise BenchError(f"unknown setting {unknown[0]!r}; valid settings: {', '.join(FIELDS)}")
    return RunConfig(recipe=name, **values)


def validate(cfg, cuda_available=None):
    """Raise BenchError with one clear line for anything that cannot run."""
    import torch

    import models

    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    _check_types(cfg)
    try:
        models.check_kwargs(cfg.model, cfg.model_kwargs)
    except ValueError as e:
        raise BenchError(str(e)) from None
    if not cfg.inplace and not models.resolve(cfg.model).honours["inplace"]:
        # else the row says "no-inplace", under its own key, for a network that ran exactly as with --inplace
        raise BenchError(f"model {cfg.model!r} does not take an `inplace` keyword, so --no-inplace would change "
                         "nothing but the row's label; give its function `inplace: bool = True` or leave it on")
    if cfg.precision not in PRECISIONS:
        raise BenchError(f"unknown precision {cfg.precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if cfg.compile_mode not in COMPILE_MODES:
        raise BenchError(f"unknown compile mode {cfg.compile_mode!r}; choose one of: {', '.join(COMPILE_MODES)}")
    from . import workload
    if cfg.workload not in workload.names():
        raise BenchError(f"unknown workload {cfg.workload!r}; choose one of: {', '.join(workload.names())}")
    _check_workload(cfg, workload.get(cfg.workload))
    if cfg.device not in DEVICES:
        raise BenchError(f"unknown device {cfg.device!r}; choose one of: {', '.join(DEVICES)}")
    if cfg.device == "cuda" and not cuda_available:
        raise BenchError("--device cuda asked for, but no CUDA GPU is visible here; use --device cpu")
    on_gpu = cfg.device == "cuda" or (cfg.device == "auto" and cuda_available)
    if cfg.precision == "fp16" and not on_gpu:
        raise BenchError("fp16 needs a CUDA GPU (GradScaler); on the CPU use --precision bf16 or fp32")
    for name in ("batch_size", "epochs", "world_size", "eval_batch_size"):
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise BenchError(f"{name.replace('_', '-')} must be a positive integer, got {v!r}")
    if cfg.batch_size % cfg.world_size:
        raise BenchError(f"batch size {cfg.batch_size} (global) does not split evenly over "
                         f"world size {cfg.world_size}")
    # under torchrun on several nodes, each node needs only its own share of the GPUs
    local = int(os.environ.get("LOCAL_WORLD_SIZE", cfg.world_size))
    if on_gpu and local > max(torch.cuda.device_count(), 1):
        raise BenchError(f"world size {local} on this machine needs that many GPUs; "
                         f"{torch.cuda.device_count()} visible")
    if workload.get(cfg.workload).higher_is_better:
        if not (isinstance(cfg.target, (int, float)) and 0 < cfg.target <= 1):
            raise BenchError(f"target must be an accuracy in (0, 1], got {cfg.target!r}")
    # a distance (the GANs' FD): an infinite one is met by any finite FD, so every run "reaches" it at epoch 1
    elif not (isinstance(cfg.target, (int, float)) and 0 < cfg.target < math.inf):
        raise BenchError(f"the {cfg.workload} target is a distance, lower is better: a positive finite number, "
                         f"got {cfg.target!r}")
    if cfg.limit_train is not None and cfg.limit_train < cfg.batch_size:
        raise BenchError(f"limit-train {cfg.limit_train} is smaller than one batch ({cfg.batch_size})")
    for name, flag, holds, what in RANGES:
        v = getattr(cfg, name)
        if v is not None and not holds(v):
            raise BenchError(f"{flag} must be {what}, got {v!r}")
    from . import fast  # fast: issue #17's settings
    fast.check(cfg, BenchError)
    try:  # on the meta device: checks the shapes without allocating the weights
        net = _on_meta(lambda: models.create(cfg.model, inplace=cfg.inplace, **cfg.model_kwargs))
    except Exception:  # noqa: BLE001 - a factory that needs real values (a weight's norm, .item()): for real
        try:
            net = models.create(cfg.model, inplace=cfg.inplace, **cfg.model_kwargs)
        except Exception as e:  # noqa: BLE001 - a user's factory can raise anything: one line
            raise BenchError(f"model {cfg.model!r} with {cfg.model_kwargs}: {' '.join(str(e).split())}") from None
    _check_output(cfg, net)
    return cfg


def _on_meta(fn):
    import warnings

    import torch
    with warnings.catch_warnings(), torch.device("meta"):  # what meta tensors provoke is not the user's to read
        warnings.simplefilter("ignore")
        return fn()


def _check_workload(cfg, wl):
    # checked here, before torchrun starts processes that would each fail with a traceback
    if cfg.world_size > 1 and not wl.distributed:
        raise BenchError(f"the {cfg.workload} workload runs in one process; use --world-size 1")
    if cfg.fused is not None and not wl.fusable:
        raise BenchError(f"the {cfg.workload} workload's optimizers have no fused kernel, so --fused/--no-fused "
                         f"would change nothing: leave them out")
    if hasattr(wl, "check_config"):  # what else it needs (a GAN: its judge's recipe)
        wl.check_config(cfg)
    for name, flag, value in wl.unused:
        if getattr(cfg, name) != value:
            raise BenchError(f"the {cfg.workload} workload does not use {flag} (a classifier's setting), "
                             f"got {getattr(cfg, name)!r}; leave it at {_flag_value(value)}"
                             + (f" (the {cfg.recipe} recipe sets it: a GAN runs without --recipe)" if cfg.recipe else ""))


def _flag_value(v):
    return ("on" if v else "off") if isinstance(v, bool) else repr(v)


# (field, its flag, the rule, what the rule says): checked in order, one line for the first that fails;
# NaN fails every comparison, so it fails here too
RANGES = [("lr", "--lr", lambda v: 0 < v < math.inf, "a positive finite number"),
          ("div", "--div", lambda v: 0 < v < math.inf, "a positive finite number"),
          ("pct", "--pct", lambda v: 0 <= v < 100, "in [0, 100)"),
          ("label_smoothing", "--label-smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
          ("weight_decay", "--wd", lambda v: 0 <= v < math.inf, "a finite number >= 0"),
          ("mom_max", "--mom-max", lambda v: 0 <= v <= 1, "in [0, 1]"),
          ("mom_min", "--mom-min", lambda v: 0 <= v <= 1, "in [0, 1]"),
          ("cutout", "--cutout", lambda v: 0 <= v <= 32, "a square's side in [0, 32] pixels (the images are 32)"),
          ("warmup_steps", "--warmup-steps", lambda v: v >= 0, "a count >= 0"),
          ("time_limit_s", "--time-limit", lambda v: 0 < v < math.inf, "a positive finite number of seconds")]


def _check_output(cfg, net):
    """A classifier must have weights to train, and a user's must map a CIFAR-10 batch to 10 logits.
    On the meta device, or on a real batch on the CPU for a network that cannot run there."""
    import torch

    import models

    if cfg.workload == "classify" and hasattr(net, "generator") and hasattr(net, "critic"):
        raise BenchError(f"model {cfg.model!r} is a GAN (a generator and a critic): run it with --workload dcgan "
                         "or --workload wgan")
    if cfg.workload != "classify":
        return
    # else the run crashes at its first backward on autograd's "does not require grad"
    if not any(p.requires_grad for p in net.parameters()):
        raise BenchError(f"model {cfg.model!r} has no trainable parameters, so there is nothing to train; "
                         "return a network with at least one parameter that requires grad")
    if not models.is_user_spec(cfg.model):
        return
    try:
        out = _on_meta(lambda: net.to("meta")(torch.empty(2, 3, 32, 32)))
    except Exception:  # noqa: BLE001 - data-dependent code: a real batch on the CPU, else the run would
        try:  # train, and record as ok, a network with the wrong number of outputs
            real = models.create(cfg.model, inplace=cfg.inplace, **cfg.model_kwargs).eval()
            with torch.no_grad():
                out = real(torch.zeros(2, 3, 32, 32))
        except Exception:  # noqa: BLE001 - one that runs only on its own device: the run judges it
            return
    if not (isinstance(out, torch.Tensor) and tuple(out.shape) == (2, 10)):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BenchError(f"model {cfg.model!r} maps a batch of 2 images to {shape}; it must give "
                         f"(2, 10), one logit per CIFAR-10 class")


_WORDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string",
          "dict": "a table of keywords"}
_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,), "dict": (dict,)}


def _check_types(cfg):
    for name, f in FIELDS.items():
        v = getattr(cfg, name)
        kind = getattr(f.type, "__name__", str(f.type)).replace(" | None", "")
        if v is None and "None" in str(f.type):
            continue
        ok = isinstance(v, _TYPES[kind]) and not (kind in ("int", "float") and isinstance(v, bool))
        if not ok:
            raise BenchError(f"{name.replace('_', '-')} must be {_WORDS[kind]}, got {v!r}")


def resolve_device(cfg):
    import torch

    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def usable_cpus():
    """The cores this process may run on: a Slurm or container allocation restricts them (its
    affinity mask), while os.cpu_count counts the whole machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
