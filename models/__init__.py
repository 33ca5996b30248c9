"""Model zoo: `models.create(name, **kwargs) -> nn.Module`.

Every model takes `num_classes` and `inplace`; the other keywords are each model's own
(see its module). Unknown names or keywords raise `ValueError` with the valid choices.
"""
import inspect

from .darknet import darknet
from .dcgan import dcgan
from .resnet9 import resnet9
from .wrn import wrn

MODELS = {"darknet": darknet, "wrn": wrn, "resnet9": resnet9,
          # the GAN pair (generator + critic) for the dcgan and wgan workloads (bench/gan.py);
          # with @register_model: decorate models/dcgan.py's `dcgan` instead
          "dcgan": dcgan}


def model_keywords(name):
    """The keywords `name` accepts besides num_classes and inplace, with their defaults."""
    fn = _lookup(name)
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if k not in ("num_classes", "inplace")}


def check_kwargs(name, kwargs):
    allowed = model_keywords(name)
    for k, v in kwargs.items():
        if k not in allowed:
            raise ValueError(f"model {name!r} has no keyword {k!r}; it takes: {', '.join(allowed)}")
        if not _same_kind(v, allowed[k]):
            raise ValueError(f"model {name!r} keyword {k!r} takes {_kind(allowed[k])} "
                             f"(default {allowed[k]!r}), got {v!r}")


def _kind(default):
    if isinstance(default, (tuple, list)):
        return "a list of integers"
    return "an integer" if isinstance(default, int) else "a number"


def _same_kind(value, default):
    """Judged by the default's type, so that a sweep file or the CLI cannot pass a string
    where the network's arithmetic expects a number."""
    def number(x, integer):
        return not isinstance(x, bool) and isinstance(x, int if integer else (int, float))
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list)) and all(number(x, True) for x in value)
    return number(value, isinstance(default, int))


def create(name, num_classes=10, inplace=True, **kwargs):
    check_kwargs(name, kwargs)
    return _lookup(name)(num_classes=num_classes, inplace=inplace, **kwargs)


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def _lookup(name):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name]
