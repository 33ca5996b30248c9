"""The model registry: built-in networks register themselves, a user's are resolved by name.

    @register_model
    def darknet(blocks: tuple[int, ...] = (1, 2, 4, 6, 3), nf: int = 32, width: float = 0.5,
                num_classes: int = 10, inplace: bool = True): ...

Adding a built-in model is adding a file to models/ with a decorated factory: this module never
changes. A model named `MODULE:FUNCTION` or `FILE.py:FUNCTION` is the user's own (models/user.py).
"""
import inspect
import json
import re
import types
import typing
from dataclasses import dataclass, field

from . import kwtypes

RUN_SETTINGS = ("num_classes", "inplace")  # passed by the runner when the factory takes them
_REGISTRY = {}
_ADDED = {}  # model name -> keywords added after its results were first recorded


def register_model(fn=None, *, name=None, added=()):
    """Decorator: `@register_model` or `@register_model(name="other")` on a model factory.
    `added` names keywords the factory gained after rows were recorded: at their defaults they
    stay out of the configuration key, so those rows keep their keys (see `keyed_kwargs`)."""
    def add(f):
        key = name or f.__name__
        old = _REGISTRY.get(key)
        if old is not None and (old.__module__, old.__qualname__) != (f.__module__, f.__qualname__):
            raise ValueError(f"model name {key!r} is registered twice ({old.__module__} and {f.__module__})")
        _REGISTRY[key] = f
        _ADDED[key] = tuple(added)
        return f
    return add(fn) if fn is not None else add


def registered():
    return dict(sorted(_REGISTRY.items()))


@dataclass(frozen=True)
class Keyword:
    annotation: object      # a type, a generic alias, or kwtypes.ANY
    default: object = inspect.Parameter.empty

    @property
    def required(self):
        return self.default is inspect.Parameter.empty


@dataclass(frozen=True)
class ModelSpec:
    name: str                   # what the run row's `model` column says
    factory: typing.Callable
    import_path: str | None     # 'pkg.mod:fn' or '/abs/net.py:fn'; None for a built-in
    source_hash: str | None     # sha256 of the module's source file; None for a built-in
    honours: dict = field(default_factory=dict)   # {"num_classes": bool, "inplace": bool}
    keywords: dict = field(default_factory=dict)  # name -> Keyword, run settings excluded
    any_keywords: bool = False  # the factory takes **kwargs

    @property
    def builtin(self):
        return self.import_path is None


def model_name(spec):
    """The model's name from its spec alone (no import): 'darknet', 'net.make_net' for
    'path/to/net.py:make_net', 'pkg.mod.make_net' for 'pkg.mod:make_net'. Safe in a file name."""
    target, sep, fn = spec.rpartition(":")
    if not sep:
        return spec
    if target.endswith(".py") or "/" in target:
        target = re.sub(r"\.py$", "", target.rstrip("/").rsplit("/", 1)[-1])
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{target}.{fn}")


def is_user_spec(name):
    return isinstance(name, str) and ":" in name


def resolve(name):
    """The ModelSpec for a registered name or a user's `MODULE:FUNCTION` / `FILE.py:FUNCTION`.
    Raises ValueError with one line saying what is wrong."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"model must be a name, got {name!r}")
    if is_user_spec(name):
        from . import user
        factory, import_path, digest = user.load(name)
        return spec_for(model_name(name), factory, import_path, digest)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(registered())}, "
                         f"or your own as MODULE:FUNCTION or FILE.py:FUNCTION")
    return spec_for(name, _REGISTRY[name], None, None)


def refresh(name):
    """Before a run in a long-lived process: a user's FILE.py edited since this process ran it is run
    anew, a module edited since it was imported is refused (ValueError). Else `resolve` keeps what it
    first found for the whole process, so each seed of a run builds, and names, the same code."""
    if is_user_spec(name):
        from . import user
        user.refresh(name)


def spec_for(name, factory, import_path, digest):
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to read (a C function): pass keywords through
        params = {}
    hints = _type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    keywords, any_kw, var_kw = {}, not params, False
    for k, p in params.items():
        if p.kind is p.VAR_KEYWORD:
            any_kw = var_kw = True
        elif p.kind not in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY) and k not in RUN_SETTINGS:
            unread = p.annotation is p.empty or isinstance(p.annotation, str)  # a string: it did not evaluate
            ann = hints.get(k, kwtypes.ANY if unread else p.annotation)
            if ann is kwtypes.ANY and p.default is not p.empty:
                ann = kwtypes.from_default(p.default)
            keywords[k] = Keyword(ann, p.default)
    honours = {k: k in params and params[k].kind is not params[k].POSITIONAL_ONLY for k in RUN_SETTINGS}
    # num_classes through **kwargs: how torchvision's and timm's factories take it (`inplace` is
    # no such convention, so it is passed only where the factory names it)
    honours["num_classes"] = honours["num_classes"] or var_kw
    return ModelSpec(name, factory, import_path, digest, honours, keywords, any_kw)


def _type_hints(fn):
    """Each annotation evaluated on its own (a class's own annotations are its attributes': its keywords
    are __init__'s): one that does not evaluate (a name imported only under TYPE_CHECKING) is left out,
    to be judged by its default, and the others are still checked."""
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - find the one that does not evaluate
        pass
    hints = {}
    for k, ann in getattr(fn, "__annotations__", {}).items():
        one = types.SimpleNamespace(__annotations__={k: ann})
        try:
            hints[k] = typing.get_type_hints(one, getattr(inspect.unwrap(fn), "__globals__", None))[k]
        except Exception:  # noqa: BLE001 - an annotation that does not evaluate: judge by its default
            pass
    return hints


def model_keywords(name):
    """The keywords `name` accepts besides num_classes and inplace, with their defaults
    (a keyword without a default is left out: the user must give it)."""
    return {k: kw.default for k, kw in resolve(name).keywords.items() if not kw.required}


def canonical(name, kwargs):
    """The model's keywords with defaults filled in, each spelt one way, so equal models hash equally:
    a whole number for a float keyword is that float (width=1 is width=1.0), and a default that is
    not a literal (a class, a function) its repr."""
    spec = resolve(name)
    full = {k: kw.default for k, kw in spec.keywords.items() if not kw.required}
    full.update(kwargs)
    return {k: plain(kwtypes.canonical(v, spec.keywords[k].annotation) if k in spec.keywords else v)
            for k, v in sorted(full.items())}


def keyed_kwargs(name, canonical):
    """The keywords that identify a configuration: `canonical` (defaults filled in) less the
    keywords added later that sit at their defaults."""
    if is_user_spec(name) or not _ADDED.get(name):
        return canonical
    defaults = model_keywords(name)
    return {k: v for k, v in canonical.items() if not (k in _ADDED[name] and v == plain(defaults[k]))}


def check_kwargs(name, kwargs):
    spec = resolve(name)
    for k, v in kwargs.items():
        kw = spec.keywords.get(k)
        if kw is None:
            if spec.any_keywords and k not in RUN_SETTINGS:
                continue
            if k in RUN_SETTINGS:  # else "has no keyword 'num_classes'" for a function that declares it
                raise ValueError(f"{k!r} is a run setting, not a model keyword: the harness passes num_classes=10 "
                                 f"and --inplace/--no-inplace to a model that takes them")
            raise ValueError(f"model {spec.name!r} has no keyword {k!r}; it takes: "
                             f"{', '.join(spec.keywords) or 'none'}")
        if not kwtypes.conforms(v, kw.annotation):
            default = "" if kw.required else f" (default {kw.default!r})"
            raise ValueError(f"model {spec.name!r} keyword {k!r} takes {kwtypes.describe(kw.annotation)}"
                             f"{default}, got {v!r}")
    missing = [k for k, kw in spec.keywords.items() if kw.required and k not in kwargs]
    if missing:
        k = missing[0]
        raise ValueError(f"model {spec.name!r} needs keyword {k!r} "
                         f"({kwtypes.describe(spec.keywords[k].annotation)}); give it in --model-kwargs (model_kwargs in Python and sweep files)")


def unchecked(name, kwargs):
    """The keywords the factory takes only through **kwargs: nothing can check that it uses them, so a
    misspelt one trains the default. The row marks them (`model_kwargs_unchecked`)."""
    spec = resolve(name)
    return [k for k in kwargs if k not in spec.keywords and k not in RUN_SETTINGS] if spec.any_keywords else []


def unchecked_note(name, kwargs):
    """A line for the keywords that `unchecked` names ('' if none)."""
    if not (names := unchecked(name, kwargs)):
        return ""
    return (f"note: model {resolve(name).name!r} takes {', '.join(map(repr, names))} only through **kwargs; the "
            f"harness cannot check that it uses them (the row marks them: model_kwargs_unchecked)")


def create(name, num_classes=10, inplace=True, **kwargs):
    """Build the model. The run settings go to the factory only where it takes them
    (`resolve(name).honours` says which)."""
    from torch import nn

    spec = resolve(name)
    check_kwargs(name, kwargs)
    given = dict(num_classes=num_classes, inplace=inplace)
    settings = {k: v for k, v in given.items() if spec.honours[k]}
    # each keyword as canonical() spells it, so that the rows under one key built one network
    kwargs = {k: kwtypes.canonical(v, spec.keywords[k].annotation) if k in spec.keywords else v
              for k, v in kwargs.items()}
    model = spec.factory(**settings, **kwargs)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {name!r} returned {type(model).__name__}, not a torch.nn.Module")
    if any(nn.parameter.is_lazy(p) for p in model.parameters()):
        materialize(model)
    return model


def materialize(model):
    """Shapes for lazy modules (nn.LazyLinear, ...) from one CIFAR-sized batch, so that parameters
    can be counted, FLOPs measured and optimizers built before training. In eval mode: no BatchNorm
    statistic moves."""
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(2, 3, 32, 32))
    model.train(was_training)


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def identity(name):
    """What identifies a user model in a configuration key: its name and its source's hash, so two
    versions of the file never share a key. Empty for a built-in (its keys stay as they were)."""
    spec = resolve(name)
    if spec.builtin:
        return {}
    return {"model": spec.name, "model_source_hash": spec.source_hash}


def row_fields(name):
    """The run row's model columns: model, model_source, model_source_hash, model_honours."""
    spec = resolve(name)
    return {"model": spec.name, "model_source": spec.import_path, "model_source_hash": spec.source_hash,
            "model_honours": json.dumps(spec.honours, sort_keys=True)}


def plain(value):
    """A default as it goes into JSON: literals as they are, anything else as its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return repr(value)
