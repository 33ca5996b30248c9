"""`bench`: the command line. Bad input prints one line and exits 2; a run that fails is
recorded and exits 1; success exits 0."""
import argparse
import ast
import json
import os
import sys

import models

from .config import COMPILE_MODES, DEVICES, FIELDS, PRECISIONS, RECIPES, BenchError, RunConfig, from_recipe, validate
from .paths import SWEEP_SUBDIRS, check_writable

EPILOG = "Results land under RESULTS/runs and RESULTS/epochs as parquet; see README.md for the schema."


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kw):
        kw.setdefault("allow_abbrev", False)  # `--epoch 2` must be an error, not a silent --epochs 2
        super().__init__(*args, **kw)

    def error(self, message):
        # one line, no usage dump: say what was wrong and where to look
        print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def parse_kv(items):
    """KEY=VALUE ... -> dict, VALUE read as a Python literal when it is one (1,2 -> [1, 2])."""
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise BenchError(f"--model-kwargs takes KEY=VALUE pairs, got {item!r}")
        try:
            v = ast.literal_eval(value)
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
                   "device")


class _Only:
    """An argument group that adds only the settings in `only` (None: all of them), so a command
    lists just the flags that can change what it measures."""

    def __init__(self, group, only):
        self.group, self.only = group, only

    def add_argument(self, *flags, **kw):
        dest = kw.get("dest") or flags[0].lstrip("-").replace("-", "_")
        if self.only is None or dest in self.only:
            self.group.add_argument(*flags, **kw)


def add_config_args(p, only=None, recipe=None):
    """The run configuration's flags. Their defaults stay None (a flag given overrides the recipe);
    the help shows the values that apply: the recipe's when --recipe is on the command line."""
    shown = recipe if recipe in RECIPES else None
    g = _Only(p.add_argument_group(
        f"configuration (defaults shown: the {shown} recipe's)" if shown else
        "configuration (defaults shown: the lesson's Darknet; `--recipe NAME --help` shows that recipe's)"), only)
    g.add_argument("--recipe", choices=sorted(RECIPES), help="start from a named configuration; the flags "
                   "below change it")
    g.add_argument("--model", help=" | ".join(models.registered()) + " (`bench models` lists them), or your own network: "
                                   "MODULE:FUNCTION or FILE.py:FUNCTION returning an nn.Module")
    g.add_argument("--model-kwargs", nargs="+", metavar="KEY=VALUE",
                   help="model keywords, e.g. blocks=1,2,4,6,3 nf=32 width=1; for the same model they "
                        "update its keywords, for another model they start from its own defaults")
    g.add_argument("--precision", help=f"{' | '.join(PRECISIONS)} (fp16 needs a GPU)")
    g.add_argument("--inplace", action=argparse.BooleanOptionalAction, default=None,
                   help="in-place activations")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory format for the model and its inputs")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile; pair with --warmup-steps so compilation stays off the clock")
    g.add_argument("--compile-mode", choices=COMPILE_MODES,
                   help="torch.compile mode; reduce-overhead adds CUDA graphs")
    g.add_argument("--workload", help="what is trained: classify (a CIFAR-10 classifier) or another registered "
                                      "workload")
    g.add_argument("--batch-size", type=int, help="global batch size, split over --world-size processes")
    g.add_argument("--world-size", type=int, help="processes/GPUs; >1 starts DDP through torchrun")
    g.add_argument("--epochs", type=int, help="epochs in the one-cycle schedule")
    g.add_argument("--target", type=float, help="target test accuracy in (0, 1]")
    g.add_argument("--seed", type=int, help="seed for the initial weights, the batch order and augmentation")
    g.add_argument("--seeds", type=_seed_list, metavar="S,S,...",
                   help="train these seeds one after another in this process (data, compilation and "
                        "autotuning paid once), each its own run; overrides --seed (default: --seed only)")
    g.add_argument("--stop-at-target", action=argparse.BooleanOptionalAction, default=None,
                   help="stop at the first epoch at target (DAWNBench); off trains the whole schedule")
    g.add_argument("--limit-train", type=int, metavar="N", help="train on a seeded subset of N images")
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
    show_defaults(p, from_recipe(shown))


def show_defaults(p, cfg):
    """Append each setting's value in CFG to its flag's help (also for flags others add later)."""
    for action in p._actions:
        if action.dest in FIELDS and action.help not in (None, argparse.SUPPRESS) and "(default" not in action.help:
            action.help += f" (default: {_shown(action.dest, getattr(cfg, action.dest))})"


def _shown(name, v):
    if name == "recipe":
        return v or "none: the lesson's settings"
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


# --- commands ---------------------------------------------------------------------------------

def cmd_run(a):
    from . import data as data_mod
    from .row import check_save, new_run_id
    from .ui import run_summary, say

    cfg = validate(config_from_args(a))
    seeds = a.seeds or [cfg.seed]
    run_ids = a.run_ids.split(",") if a.run_ids else ([a.run_id] if a.run_id else None)
    if run_ids is not None and len(run_ids) != len(seeds):
        raise BenchError(f"--run-ids names {len(run_ids)} runs for {len(seeds)} seeds")
    check_save(a.save, len(seeds))
    check_writable(a.results, save=a.save)  # before training: a finished run must not be lost at the end
    source = data_mod.resolve_source(a.data)
    under_torchrun = "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ
    if cfg.world_size > 1 and not under_torchrun:
        from . import isolate
        data_mod.load(source, warn=say)  # check the data (and fill the cache) once, before forking
        say(f"starting {cfg.world_size} processes through torchrun")
        rows, _ = isolate.run_seeds(cfg, seeds, source, a.results, run_ids or [new_run_id(cfg, s) for s in seeds],
                                    save=a.save, sweep=a.sweep, sweep_run_id=a.sweep_run_id, on_line=say)
    else:
        from .runner import Runner
        rows = Runner(cfg, source, a.results, seeds=seeds, run_ids=run_ids, save=a.save, sweep=a.sweep,
                      sweep_run_id=a.sweep_run_id, live=False if a.no_progress_bar else None).execute()
        if int(os.environ.get("RANK", "0")) != 0:
            return max((exit_code(r) for r in rows), default=1)
        done = {r["seed"] for r in rows}
        rest = [s for s in seeds if s not in done]
        if rest and rows and rows[-1]["status"] == "crashed":  # the process may be poisoned: a fresh one
            from . import isolate
            say(f"seed {rows[-1]['seed']} crashed; the remaining seeds {rest} run in a fresh process")
            rows += isolate.run_seeds(cfg, rest, source, a.results, save=a.save, sweep=a.sweep,
                                      sweep_run_id=a.sweep_run_id, on_line=say)[0]
    for row in rows:
        path = os.path.join(a.results, "runs", f"{row.get('run_id')}.parquet")
        say(run_summary(row, path))
        if a.json:
            summary = {k: _plain(row.get(k)) for k in (
                "run_id", "seed", "status", "reached_target", "epoch_reached", "time_to_target_s",
                "wall_time_to_target_s", "train_time_s", "final_acc", "best_acc", "train_images_per_s",
                "peak_gpu_mem_bytes", "peak_host_rss_bytes")}
            summary["results"] = path
            if row.get("status") != "ok":
                summary["error"] = str(row.get("error", "")).splitlines()[-1:] or None
            print(json.dumps(summary))
    return max((exit_code(r) for r in rows), default=1)


def exit_code(row):
    """0 for a run that finished, 130 for one stopped by Ctrl-C (as the sweep and the shell say), else 1."""
    if row.get("status") == "ok":
        return 0
    if row.get("status") == "interrupted" and "SIGINT" in str(row.get("error") or ""):
        return 130
    return 1


def _plain(v):
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def cmd_env(a):
    import torch

    from .measure import fingerprint
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fp = fingerprint(device, torch.cuda.device_count() if device == "cuda" else 1)
    print(json.dumps(fp, indent=1, default=str))
    return 0


def cmd_sweep(a):
    from . import sweep
    if not a.dry_run:
        check_writable(a.results, subdirs=SWEEP_SUBDIRS)
    return sweep.main(a)


def cmd_report(a):
    from . import report
    return report.main(a)


def cmd_verify(a):
    from . import verify
    return verify.main(a)


def cmd_maxbatch(a):
    from . import maxbatch
    check_writable(a.results, subdirs=("maxbatch",))
    return maxbatch.main(a)


def cmd_infer(a):
    from . import infer
    check_writable(a.results, subdirs=("inference",))
    return infer.main(a)


def cmd_models(a):
    from . import api
    return api.models_main(a)


def build_parser(recipe=None):
    """RECIPE: the --recipe on the command line, if any, so that --help shows its values."""
    p = Parser(prog="bench", description="Time-to-accuracy benchmarks for CIFAR-10 on PyTorch.",
               epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"bench (cifar-bench) {package_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    r = sub.add_parser("run", help="train one configuration to its target and record it",
                       description="Train one configuration to a target test accuracy and record time to "
                                   "target, throughput and memory as parquet.", epilog=EPILOG)
    add_config_args(r, recipe=recipe)
    r.add_argument("--data", help="CIFAR-10 source: directory, .tar/.tar.xz archive, or 'download' "
                                  "(default $BENCH_DATA, else download)")
    r.add_argument("--results", default="results", help="results directory (default: results/)")
    r.add_argument("--save", metavar="PATH", help="save a checkpoint (for `bench infer`) (default: none)")
    r.add_argument("--run-id", help=argparse.SUPPRESS)
    r.add_argument("--run-ids", help=argparse.SUPPRESS)
    r.add_argument("--sweep-run-id", help=argparse.SUPPRESS)
    r.add_argument("--sweep", help=argparse.SUPPRESS)
    r.add_argument("--config-json", help=argparse.SUPPRESS)
    r.add_argument("--no-progress-bar", action="store_true", help="plain log lines instead of a live bar")
    r.add_argument("--json", action="store_true",
                   help="print the run's summary as one JSON line on stdout (default: a line for people on stderr)")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("sweep", help="run a TOML sweep: every cell in its own process, resumable",
                       description="Run every cell of a sweep file (base configuration x axes x seeds); a "
                                   "configuration's seeds share one process. Cells already completed are skipped.")
    s.add_argument("file", help="sweep file, e.g. configs/smoke.toml")
    s.add_argument("--results", default="results", help="results directory (default: results/)")
    s.add_argument("--data", help="data source (default: the file's data, else $BENCH_DATA, else download)")
    s.add_argument("--dry-run", action="store_true", help="print the matrix and stop")
    s.add_argument("--retry-failed", action="store_true", help="run again cells whose runs all failed")
    s.add_argument("--shard", metavar="I/N", help="run only shard I of N (0-based), for N machines (default: all cells)")
    s.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="per-run limit (default: the file's time_limit_s, else none)")
    s.add_argument("--stop-after", type=float, metavar="SECONDS",
                   help="start no process that would end after this many seconds of the invocation (estimated "
                        "from the runs so far); the rest stays pending for the next invocation (default: none)")
    s.add_argument("--isolate-seeds", action="store_true",
                   help="one process per run (default: a configuration's seeds share one process, so data, "
                        "compilation and autotuning are paid once)")
    s.add_argument("--status", nargs="?", const="", metavar="RESULTS",
                   help="show done / running / failed / pending cells of RESULTS (default --results), "
                        "whoever runs them, and stop")
    sl = s.add_argument_group("Slurm (a job array of shards into one results directory; see README)")
    sl.add_argument("--slurm", action="store_true",
                    help="write an sbatch script, print it and submit it with sbatch (--dry-run: print only)")
    sl.add_argument("--array", type=int, metavar="N", help="array tasks, i.e. shards (default: one per configuration)")
    sl.add_argument("--partition", metavar="P", help="Slurm partition (default: the cluster's)")
    sl.add_argument("--gpus-per-task", type=int, metavar="G",
                    help="GPUs per task (default: the largest world_size of a GPU cell; 0 for CPU sweeps)")
    sl.add_argument("--time", metavar="T", help="Slurm time limit per task, e.g. 4:00:00 (default: the partition's)")
    sl.add_argument("--sbatch-arg", action="append", metavar="ARG",
                    help="one more #SBATCH line, e.g. --sbatch-arg=--account=abc (repeatable; default: none)")
    s.set_defaults(func=cmd_sweep)

    m = sub.add_parser("maxbatch", help="largest batch that trains a step within a memory limit",
                       description="Find the largest batch size that trains a step without running out of "
                                   "memory (doubling, then bisection; each probe in a fresh process).")
    add_config_args(m, only=MAXBATCH_FIELDS, recipe=recipe)
    m.add_argument("--memory-limit", metavar="SIZE", help="cap, e.g. 16GiB or 2000MB (default: the device)")
    m.add_argument("--start", type=int, default=16, help="first batch size probed (default: 16)")
    m.add_argument("--max", type=int, default=1 << 16, dest="max_batch", metavar="BATCH",
                   help="stop doubling here: the largest batch size probed (default: 65536)")
    m.add_argument("--granularity", type=int, default=8, help="bisection stops at this step (default: 8)")
    m.add_argument("--results", default="results", help="results directory (default: results/)")
    m.set_defaults(func=cmd_maxbatch)

    rep = sub.add_parser("report", help="leaderboards from results: terminal, or files with --out",
                         description="Rank configurations and hardware from result directories.")
    rep.add_argument("results", nargs="+", help="results directories")
    rep.add_argument("--out", help="write leaderboard.md, index.html, .csv, .json here")
    rep.add_argument("--prices", help="TOML/JSON of {device name: dollars per GPU-hour}")
    rep.add_argument("--entry", metavar="GROUP_ID", help="also write DAWNBench entry files for this group")
    rep.add_argument("--author", default="cifar-bench", help="author for DAWNBench entry files")
    rep.add_argument("--thresholds", default="0.85,0.90,0.93,0.94", metavar="ACC,...",
                     help="accuracies for the time-to-accuracy board and the time_to_<pct>_s export columns "
                          "(default 0.85,0.90,0.93,0.94)")
    rep.add_argument("--wide", action="store_true", help="terminal: every column (default: fits 100-120 columns)")
    rep.set_defaults(func=cmd_report)

    v = sub.add_parser("verify", help="check a results directory (the harness's compliance checker)",
                       description="Check that every result file is readable and follows the schema, and that "
                                   "each run's figures agree with each other and with its epochs (the "
                                   "harness's compliance checker). Exit 1 if a problem is found.")
    v.add_argument("results", nargs="+", help="results directories")
    v.set_defaults(func=cmd_verify)

    i = sub.add_parser("infer", help="DAWNBench inference latency of a saved checkpoint",
                       description="Per-image latency at batch 1 over the test set, throughput at a large "
                                   "batch, and top-1 accuracy of a checkpoint saved by `bench run --save`.")
    i.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a checkpoint written by `bench run --save PATH` (required)")
    i.add_argument("--data", help="data source (default: $BENCH_DATA, else download)")
    i.add_argument("--results", default="results",
                   help="results directory; the row goes to RESULTS/inference (default: results/)")
    i.add_argument("--device", choices=DEVICES, default="auto", help="auto: cuda if visible, else cpu (default: auto)")
    i.add_argument("--limit", type=int, metavar="N",
                   help="time only the first N test images at batch 1 (default: all of them)")
    i.add_argument("--batch-size", type=int, default=1000,
                   help="batch for the throughput measurement (default: 1000)")
    i.set_defaults(func=cmd_infer)

    ms = sub.add_parser("models", help="the models: keywords, parameters, FLOPs per training image",
                        description="List the registered models with their keywords (type and default), "
                                    "parameters and FLOPs per training image at their defaults.")
    ms.add_argument("specs", nargs="*", metavar="MODEL", help="also describe these, e.g. net.py:make_net")
    ms.add_argument("--json", action="store_true", help="JSON on stdout instead of a table")
    ms.set_defaults(func=cmd_models)

    e = sub.add_parser("env", help="print the hardware and software fingerprint as JSON",
                       description="Print the fingerprint every result row carries (device, CPU, memory, "
                                   "driver, torch and git versions) as JSON on stdout.")
    e.set_defaults(func=cmd_env)
    return p


def package_version():
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("cifar-bench")
    except PackageNotFoundError:  # run from a checkout without `pip install -e .`
        return "unknown (not installed)"


def recipe_in(argv):
    """The value of --recipe in ARGV, found before parsing so that --help can show its values."""
    for k, arg in enumerate(argv):
        if arg == "--recipe" and k + 1 < len(argv):
            return argv[k + 1]
        if arg.startswith("--recipe="):
            return arg.split("=", 1)[1]
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = build_parser(recipe_in(argv))
    a = p.parse_args(argv)
    if not getattr(a, "func", None):
        p.print_help(sys.stderr)
        return 2
    try:
        return a.func(a)
    except BenchError as e:
        print(f"bench {a.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bench {a.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
