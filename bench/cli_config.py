"""The run configuration as command-line flags: one flag per RunConfig field that a user sets,
with help that shows the value in force (the recipe's when --recipe is given), and the parsing
back into a RunConfig. Shared by `bench run`, `bench maxbatch` and the sweep's child processes."""
import argparse
import ast
import json

import models

from .config import COMPILE_MODES, DEVICES, FIELDS, PRECISIONS, RECIPES, BenchError, RunConfig, from_recipe


# spelt as sweep files and --set spell them; else `flag=false` was the string 'false', which is truthy
_WORDS = {"true": True, "false": False, "null": None}


def parse_kv(items):
    """KEY=VALUE ... -> dict, VALUE read as a Python literal when it is one (1,2 -> [1, 2]; true, false
    and null in any case too)."""
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise BenchError(f"--model-kwargs takes KEY=VALUE pairs, got {item!r}")
        if key in out:  # else the last one silently wins, and the row records a model that was not asked for
            raise BenchError(f"--model-kwargs gives {key!r} twice")
        word = value.strip().lower()
        try:
            v = _WORDS[word] if word in _WORDS else ast.literal_eval(value)
        except (ValueError, SyntaxError):
            v = value
        out[key] = list(v) if isinstance(v, tuple) else v
    return out


def _seed_list(text):
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes integers separated by commas, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds needs distinct integers, got {text!r}")
    return seeds


# the settings that can change how much memory a training step takes: all `bench maxbatch` lists
MAXBATCH_FIELDS = ("recipe", "model", "model_kwargs", "precision", "inplace", "channels_last", "compile",
                   "fused", "device")


class _Only:
    """An argument group that adds only the settings in `only` (None: all of them), so a command
    lists just the flags that can change what it measures."""

    def __init__(self, group, only):
        self.group, self.only = group, only

    def add_argument(self, *flags, **kw):
        dest = kw.get("dest") or flags[0].lstrip("-").replace("-", "_")
        if self.only is None or dest in self.only:
            self.group.add_argument(*flags, **kw)


def add_config_args(p, only=None, recipe=None, workload=None):
    """The run configuration's flags. Their defaults stay None (a flag given overrides the recipe);
    the help shows the values that apply: the recipe's when --recipe is on the command line, else
    the workload's when --workload is."""
    shown = recipe if recipe in RECIPES else None
    own = {} if shown else workload_defaults(argparse.Namespace(recipe=None, workload=workload))
    g = _Only(p.add_argument_group(
        f"configuration (defaults shown: the {shown} recipe's)" if shown else
        f"configuration (defaults shown: the {workload} workload's)" if own else
        "configuration (defaults shown: the lesson's Darknet; `--recipe NAME --help` or `--workload NAME --help` "
        "shows that one's)"), only)
    g.add_argument("--recipe", choices=sorted(RECIPES), help="start from a named configuration; the flags "
                   "below change it")
    g.add_argument("--model", help=" | ".join(models.registered()) + " (`bench models` lists them), or your own network: "
                                   "MODULE:FUNCTION or FILE.py:FUNCTION returning an nn.Module")
    g.add_argument("--model-kwargs", nargs="+", action="extend", metavar="KEY=VALUE",
                   help="model keywords, e.g. blocks=1,2,4,6,3 nf=32 width=1; for the same model they "
                        "update its keywords, for another model they start from its own defaults")
    g.add_argument("--precision", help=f"{' | '.join(PRECISIONS)} (fp16 needs a GPU)")
    g.add_argument("--inplace", action=argparse.BooleanOptionalAction, default=None,
                   help="in-place activations")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory format for the model and its inputs")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile (in `bench run`, pair with --warmup-steps so compilation stays off the "
                        "clock)")
    g.add_argument("--compile-mode", choices=COMPILE_MODES,
                   help="torch.compile mode; reduce-overhead adds CUDA graphs")
    g.add_argument("--fused", action=argparse.BooleanOptionalAction, default=None,
                   help="fused optimizer steps (SGD, Adam): with fp16, no host sync for GradScaler's "
                        "overflow check")
    g.add_argument("--workload", help="what is trained: classify (a CIFAR-10 classifier) or another registered "
                                      "workload")
    g.add_argument("--batch-size", type=int, help="global batch size, split over --world-size processes")
    g.add_argument("--world-size", type=int, help="processes/GPUs; >1 starts DDP through torchrun")
    g.add_argument("--epochs", type=int, help="epochs in the one-cycle schedule")
    g.add_argument("--target", type=float, help="target test accuracy in (0, 1]; for --workload dcgan/wgan an FD, "
                                                "reached at or below it (theirs: 100)")
    g.add_argument("--seed", type=int, help="seed for the initial weights, the batch order and augmentation")
    g.add_argument("--seeds", type=_seed_list, metavar="S,S,...",
                   help="train these seeds one after another in this process (data, compilation and "
                        "autotuning paid once), each its own run; overrides --seed (default: --seed only)")
    g.add_argument("--stop-at-target", action=argparse.BooleanOptionalAction, default=None,
                   help="stop at the first epoch at target (DAWNBench); off trains the whole schedule")
    g.add_argument("--limit-train", type=int, metavar="N",
                   help="train on N images drawn with seed 0: the same ones in every run, not class-balanced")
    g.add_argument("--device", choices=DEVICES, help="auto: cuda if visible, else cpu")
    g.add_argument("--time-limit", type=float, dest="time_limit_s", metavar="SECONDS",
                   help="record the run as timeout after this long")
    h = _Only(p.add_argument_group("training hyperparameters"), only)
    h.add_argument("--lr", type=float, help="peak learning rate")
    h.add_argument("--div", type=float, help="one-cycle: lr starts at lr/div")
    h.add_argument("--pct", type=float, help="one-cycle: %% of steps in the final annealing")
    h.add_argument("--mom-max", type=float, help="one-cycle momentum high")
    h.add_argument("--mom-min", type=float, help="one-cycle momentum low")
    h.add_argument("--weight-decay", "--wd", type=float, dest="weight_decay",
                   help="SGD weight decay (the sweep key weight_decay; --wd is an alias)")
    h.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov momentum in SGD")
    h.add_argument("--label-smoothing", type=float, help="cross-entropy label smoothing in [0, 1)")
    h.add_argument("--cutout", type=int, metavar="PIXELS", help="cutout square side, 0: off")
    h.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="evaluate on the image and its mirror")
    h.add_argument("--warmup-steps", type=int, help="untimed steps before the clock (model reset after)")
    h.add_argument("--eval-batch-size", type=int, help="batch size of the test-set evaluation")
    show_defaults(p, from_recipe(shown, **own))


def show_defaults(p, cfg):
    """Append each setting's value in CFG to its flag's help (also for flags others add later)."""
    for action in p._actions:
        if action.dest in FIELDS and action.help not in (None, argparse.SUPPRESS) and "(default" not in action.help:
            action.help += f" (default: {_shown(action.dest, getattr(cfg, action.dest))})"


def _shown(name, v):
    if name == "recipe":
        return v or "none: the lesson's settings"
    if name == "fused" and v is None:
        return "on CUDA, off on the CPU"
    if name == "time_limit_s" and v is None:
        return "none"
    if name == "limit_train" and v is None:
        return "all images"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, dict):
        return " ".join(f"{k}={','.join(map(str, x)) if isinstance(x, (list, tuple)) else x}" for k, x in v.items())
    return f"{v:g}" if isinstance(v, float) else str(v)


def config_from_args(a):
    if getattr(a, "config_json", None):
        try:
            return RunConfig(**json.loads(a.config_json))
        except (TypeError, ValueError) as e:
            raise BenchError(f"--config-json is not a run configuration: {e}") from None
    overrides = {k: getattr(a, k) for k in FIELDS if getattr(a, k, None) is not None and k != "model_kwargs"}
    kwargs = parse_kv(a.model_kwargs)
    start = workload_defaults(a)
    if a.model and a.model != start.get("model", RECIPES.get(a.recipe, {}).get("model", "darknet")):
        overrides["model_kwargs"] = kwargs  # another model: start from its own defaults
    elif kwargs:
        base = dict(start.get("model_kwargs") or from_recipe(a.recipe).model_kwargs)
        base.update(kwargs)
        overrides["model_kwargs"] = base
    return from_recipe(a.recipe, **{**start, **overrides})


def workload_defaults(a):
    """Without --recipe, a workload other than classify starts from its own settings (a GAN's
    model, optimiser lr, batch and FD target: `defaults` on its class), not the lesson's Darknet."""
    if a.recipe or not getattr(a, "workload", None):
        return {}
    from . import workload
    if a.workload not in workload.names():
        return {}  # validate() names the choices
    return dict(getattr(workload.get(a.workload), "defaults", {}))
