"""The Python API, for notebooks and scripts: the same runs, files and leaderboard as the CLI.

    import bench
    row = bench.run(model="net.py:make_net", epochs=2, data="cifar10.tar.xz", results="results/nb")
    board = bench.report(["results/nb"])       # the leaderboard, a pandas DataFrame
    bench.models()                             # the registered models, their keywords and FLOPs

Settings are RunConfig's fields (bench/config.py) with the CLI's names for two of them
(`wd`, `time_limit`); bad settings raise BenchError with one line, before anything runs.
"""
import contextlib
import dataclasses
import json
import os
import sys

from .config import RECIPES, BenchError, RunConfig, from_recipe, validate

ALIASES = {"wd": "weight_decay", "time_limit": "time_limit_s"}  # the CLI's flag names


def run(config=None, *, data=None, results="results", save=None, progress=True, seeds=None, **settings):
    """Train one configuration to its target and record it, as `bench run` does. `config` is a
    RunConfig (settings then override its fields) or None (settings on top of the recipe's or the
    lesson's defaults). `model` may be a registered name, 'MODULE:FUNCTION', 'FILE.py:FUNCTION',
    or a function importable from a module. Returns the run row as a dict; a run that failed is
    recorded and returned with its `status` (oom, diverged, ...), not raised; one stopped by Ctrl-C
    or SIGTERM is recorded `interrupted` and the signal then goes on to the caller's handler
    (Ctrl-C raises KeyboardInterrupt, as anywhere in the script). With `seeds=[...]`
    the seeds train one after another in this process and a list of rows comes back."""
    from . import data as data_mod
    from .paths import check_writable
    from .row import check_save

    # validate() may build the network for real (a forward that the meta device cannot run), drawing
    # from the caller's generator; and a model file edited since this process last ran it is taken up
    with _callers_state_kept():
        cfg = make_config(config, settings)
        _refresh(cfg.model)
        cfg = validate(cfg)
    if seeds is not None:
        given = seeds
        try:  # any iterable (a generator is read once, here)
            seeds = None if isinstance(seeds, (str, bytes)) else list(seeds)
        except TypeError:
            seeds = None
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise BenchError(f"seeds must be a non-empty list of ints, got {given!r}")
    save = os.fspath(save) if save is not None else None  # a pathlib.Path as well as a str
    check_save(save, len(seeds or [cfg.seed]))
    check_writable(results, save=save)  # before training, as the CLI does: a finished run must not be lost
    rows = _execute(cfg, seeds or [cfg.seed], data_mod.resolve_source(data), results, save, progress)
    rows = [{k: _plain(v) for k, v in r.items()} for r in rows]
    return rows if seeds is not None else rows[0]


def _execute(cfg, seeds, source, results_dir, save, progress):
    """The one call into the runner, as the CLI's `bench run` makes it."""
    with _callers_state_kept():
        rows, signals = _call_runner(cfg, seeds, source, results_dir, save, progress)
    _pass_on_stop(signals)
    return rows


def _pass_on_stop(signals):
    """A Ctrl-C or SIGTERM that this process received during the run (stopping it, or while it recorded
    itself) goes on to the caller's own handler once the run is recorded: else a script looping over
    bench.run calls went on to the next run at each Ctrl-C, and a SIGTERM'd job ran to its end and
    exited 0. Only a real signal: a run that a fault or its time limit stopped returns as usual."""
    if signals:
        os.kill(os.getpid(), signals[0])


@contextlib.contextmanager
def _callers_state_kept():
    """The process-wide state a run sets for itself (each seed reseeds torch's generator, a GPU run
    turns on cudnn.benchmark) put back as the caller had it: a notebook's next cell must not draw
    other random numbers, or pick other kernels, because a benchmark ran before it."""
    import random

    import numpy as np
    import torch

    cuda = torch.cuda.is_initialized()
    kept = (torch.get_rng_state(), torch.cuda.get_rng_state_all() if cuda else None, random.getstate(),
            np.random.get_state(), torch.get_num_threads(), torch.get_default_dtype(), torch.is_grad_enabled(),
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.get_float32_matmul_precision())
    try:
        yield
    finally:
        torch.set_rng_state(kept[0])
        if cuda:
            torch.cuda.set_rng_state_all(kept[1])
        random.setstate(kept[2])
        np.random.set_state(kept[3])
        torch.set_num_threads(kept[4])
        torch.set_default_dtype(kept[5])
        torch.set_grad_enabled(kept[6])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = kept[7], kept[8]
        torch.set_float32_matmul_precision(kept[9])


def _call_runner(cfg, seeds, source, results_dir, save, progress):
    if cfg.world_size > 1:
        from . import isolate
        from .ui import say
        return isolate.run_seeds(cfg, seeds, source, results_dir, save=save, on_line=say if progress else None)[0], []
    from .runner import Runner
    runner = Runner(cfg, source, results_dir, seeds=seeds, save=save, progress=progress, live=False)
    return runner.execute(), runner.signals


def make_config(config=None, settings=None):
    """A RunConfig from a RunConfig and/or settings, with the CLI's rules: another model than the
    recipe's starts from its own keyword defaults."""
    settings = {ALIASES.get(k, k): v for k, v in (settings or {}).items()}
    if "model" in settings:
        settings["model"] = model_spec(settings["model"])
    if isinstance(settings.get("model_kwargs"), dict):
        settings["model_kwargs"] = {k: list(v) if isinstance(v, tuple) else v
                                    for k, v in settings["model_kwargs"].items()}
    if config is not None:
        if not isinstance(config, RunConfig):
            raise BenchError(f"config must be a bench.RunConfig, got {type(config).__name__}")
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(RunConfig)})
        if unknown:
            raise BenchError(f"unknown setting {unknown[0]!r}")
        if settings.get("model", config.model) != config.model:  # the config's keywords are its model's
            settings.setdefault("model_kwargs", {})
        return dataclasses.replace(config, **settings)
    recipe = settings.pop("recipe", None)
    start = _workload_defaults(recipe, settings.get("workload"))
    own_model = start.get("model", RECIPES.get(recipe, {}).get("model", "darknet"))
    if settings.get("model", own_model) != own_model:
        settings.setdefault("model_kwargs", {})
    elif "model_kwargs" in settings and isinstance(settings["model_kwargs"], dict):
        own_kwargs = start["model_kwargs"] if "model_kwargs" in start else from_recipe(recipe).model_kwargs
        settings["model_kwargs"] = {**own_kwargs, **settings["model_kwargs"]}
    return from_recipe(recipe, **{**start, **settings})


def _workload_defaults(recipe, name):
    """`bench run`'s rule: without a recipe, a workload other than classify (a GAN) starts from its
    own settings, not the lesson's Darknet's."""
    from . import workload
    if recipe or not isinstance(name, str) or name not in workload.names():
        return {}  # validate() names a bad workload
    return dict(getattr(workload.get(name), "defaults", {}))


def model_spec(model):
    """A model given as a Python function becomes its 'module:function' spec (a name stays)."""
    if isinstance(model, str) or not callable(model):
        return model
    module, name = getattr(model, "__module__", None), getattr(model, "__qualname__", "")
    if not module or module == "__main__" or "<" in name:
        raise BenchError(f"model {getattr(model, '__name__', model)!r} is defined in the notebook or "
                         f"script itself; put it in a .py file and pass 'FILE.py:FUNCTION'")
    return f"{module}:{name}"


def report(dirs, prices=None):
    """The leaderboard of these results directories as a pandas DataFrame (one row per
    configuration and hardware, ranked as `bench report` ranks them)."""
    from . import report as report_mod

    dirs = [dirs] if isinstance(dirs, (str, os.PathLike)) else dirs
    return report_mod.build([str(d) for d in dirs], prices).board


def models(specs=()):
    """The registered models (and any `specs` given, e.g. 'net.py:make_net') at their defaults:
    keywords (type, default), which run settings they take, parameters and training FLOPs per image."""
    import models as registry

    specs = [specs] if isinstance(specs, str) else specs  # else one spec is read as its characters: "unknown model 'm'"
    names = list(registry.registered()) + [s for s in specs if s not in registry.registered()]
    with _callers_state_kept():  # a network built for real draws its weights from the caller's generator
        return [describe_model(n) for n in names]


def _refresh(model):
    from models.registry import refresh
    try:
        refresh(model)
    except ValueError as e:
        raise BenchError(str(e)) from None


def describe_model(name):
    import torch

    import models as registry
    from models.kwtypes import short
    from models.registry import plain

    from .flops import flops_per_image

    _refresh(name)
    try:
        spec = registry.resolve(name)  # import a user's file outside the meta device
    except ValueError as e:
        raise BenchError(str(e)) from None
    info = {"model": spec.name, "source": spec.import_path, "honours": spec.honours,
            "keywords": {k: {"type": short(kw.annotation), "default": None if kw.required else plain(kw.default),
                             "required": kw.required}
                         for k, kw in spec.keywords.items()},
            "param_count": None, "flops_per_image": None}
    if any(kw.required for kw in spec.keywords.values()):
        return info  # nothing to build without the user's keywords
    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            net = registry.create(name)
    except Exception:  # noqa: BLE001 - a factory that needs real tensors: build it for real
        try:
            net = registry.create(name)
        except Exception as e:  # noqa: BLE001 - the user's code: one line
            raise BenchError(f"model {name!r} at its defaults: {' '.join(str(e).split())}") from None
    try:
        flops = flops_per_image(net)
    except Exception:  # noqa: BLE001 - a model whose forward is not one training step (the GAN pair)
        flops = None
    info.update(param_count=registry.param_count(net), flops_per_image=flops)
    return info


def models_main(a):
    """`bench models`: a table on stdout, or JSON with --json."""
    rows = models(a.specs)
    if a.json:
        print(json.dumps(rows, indent=1), file=getattr(a, "stdout", sys.stdout))
        return 0
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = Console(file=getattr(a, "stdout", sys.stdout), highlight=False, width=100)
    t = Table(title=Text("models (FLOPs: forward + backward of one 32x32 training image)"),
              title_justify="left")
    for h in ("model", "keywords (type = default)", "takes", "params", "GFLOP/img"):
        t.add_column(Text(h), justify="right" if h in ("params", "GFLOP/img") else "left",
                     no_wrap=h.startswith("keywords"), overflow="fold" if h == "model" else "ellipsis")
    for r in rows:
        kws = "\n".join(f"{k}: {v['type']}" + ("" if v["required"] else f" = {_literal(v['default'])}")
                        for k, v in r["keywords"].items()) or "-"
        takes = "\n".join(k for k, yes in r["honours"].items() if yes) or "-"
        params = f"{r['param_count']:,}" if r["param_count"] is not None else "-"
        gflop = f"{r['flops_per_image'] / 1e9:#.3g}" if r["flops_per_image"] is not None else "-"
        t.add_row(Text(r["model"]), Text(kws), Text(takes), Text(params), Text(gflop))
    out.print(t)
    return 0


def _literal(v):
    return ",".join(map(str, v)) if isinstance(v, list) else repr(v)


def _plain(v):
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v
