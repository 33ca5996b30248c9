"""`bench`: the command line. Bad input prints one line and exits 2; a run that fails is
recorded and exits 1; success exits 0."""
import argparse
import ast
import json
import os
import sys

from .config import COMPILE_MODES, DEVICES, FIELDS, PRECISIONS, RECIPES, BenchError, RunConfig, from_recipe, validate

EPILOG = "Results land under RESULTS/runs and RESULTS/epochs as parquet; see README.md for the schema."


class Parser(argparse.ArgumentParser):
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


def add_config_args(p):
    g = p.add_argument_group("configuration (defaults: the recipe's, else the lesson's Darknet)")
    g.add_argument("--recipe", choices=sorted(RECIPES), help="start from a named configuration")
    g.add_argument("--model", help="darknet | wrn | resnet9")
    g.add_argument("--model-kwargs", nargs="+", metavar="KEY=VALUE",
                   help="model keywords, e.g. blocks=1,2,4,6,3 nf=32 width=1")
    g.add_argument("--precision", help=f"{' | '.join(PRECISIONS)} (fp16 needs a GPU)")
    g.add_argument("--inplace", action=argparse.BooleanOptionalAction, default=None,
                   help="in-place activations (default on)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile; pair with --warmup-steps so compilation stays off the clock")
    g.add_argument("--compile-mode", choices=COMPILE_MODES,
                   help="torch.compile mode (default 'default'; reduce-overhead adds CUDA graphs)")
    g.add_argument("--workload", help="what is trained: classify (default), or a registered workload")
    g.add_argument("--batch-size", type=int, help="global batch size (default 256)")
    g.add_argument("--world-size", type=int, help="processes/GPUs; >1 starts DDP through torchrun")
    g.add_argument("--epochs", type=int, help="epochs in the one-cycle schedule (default 30)")
    g.add_argument("--target", type=float, help="target test accuracy in (0, 1] (default 0.94)")
    g.add_argument("--seed", type=int, help="seed for init, data order and augmentation (default 0)")
    g.add_argument("--seeds", type=_seed_list, metavar="S,S,...",
                   help="train these seeds one after another in this process (data, compilation and "
                        "autotuning paid once), each its own run; overrides --seed")
    g.add_argument("--stop-at-target", action=argparse.BooleanOptionalAction, default=None,
                   help="stop at the first epoch at target (DAWNBench); default trains the whole schedule")
    g.add_argument("--limit-train", type=int, metavar="N", help="train on a seeded subset of N images")
    g.add_argument("--device", choices=DEVICES, help="default auto: cuda if visible, else cpu")
    g.add_argument("--time-limit", type=float, dest="time_limit_s", metavar="SECONDS",
                   help="record the run as timeout after this long")
    h = p.add_argument_group("training hyperparameters")
    h.add_argument("--lr", type=float, help="peak learning rate (default 1.3)")
    h.add_argument("--div", type=float, help="one-cycle: lr starts at lr/div (default 20)")
    h.add_argument("--pct", type=float, help="one-cycle: %% of steps in the final annealing (default 20)")
    h.add_argument("--mom-max", type=float, help="one-cycle momentum high (default 0.95)")
    h.add_argument("--mom-min", type=float, help="one-cycle momentum low (default 0.85)")
    h.add_argument("--wd", type=float, dest="weight_decay", help="weight decay (default 1e-4)")
    h.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    h.add_argument("--label-smoothing", type=float)
    h.add_argument("--cutout", type=int, metavar="PIXELS", help="cutout square side (default 0: off)")
    h.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="evaluate on the image and its mirror")
    h.add_argument("--warmup-steps", type=int, help="untimed steps before the clock (model reset after)")
    h.add_argument("--eval-batch-size", type=int)


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
    from .ui import say

    cfg = validate(config_from_args(a))
    seeds = a.seeds or [cfg.seed]
    run_ids = a.run_ids.split(",") if a.run_ids else ([a.run_id] if a.run_id else None)
    if run_ids is not None and len(run_ids) != len(seeds):
        raise BenchError(f"--run-ids names {len(run_ids)} runs for {len(seeds)} seeds")
    check_save(a.save, len(seeds))
    source = data_mod.resolve_source(a.data)
    under_torchrun = "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ
    if cfg.world_size > 1 and not under_torchrun:
        from . import isolate
        data_mod.load(source, warn=say)  # check the data (and fill the cache) once, before forking
        say(f"starting {cfg.world_size} processes through torchrun")
        rows, _ = isolate.run_seeds(cfg, seeds, source, a.results, run_ids or [new_run_id(cfg, s) for s in seeds],
                                    save=a.save, sweep=a.sweep, sweep_run_id=a.sweep_run_id, on_line=say)
        interrupted = False
    else:
        from .runner import Runner
        runner = Runner(cfg, source, a.results, seeds=seeds, run_ids=run_ids, save=a.save, sweep=a.sweep,
                        sweep_run_id=a.sweep_run_id, live=False if a.no_progress_bar else None)
        rows = runner.execute()
        interrupted = getattr(runner, "keyboard_interrupt", False)
        if int(os.environ.get("RANK", "0")) != 0:
            return 0 if all(r.get("status") == "ok" for r in rows) else 1
        done = {r["seed"] for r in rows}
        rest = [s for s in seeds if s not in done]
        if rest and not interrupted and rows and rows[-1]["status"] == "crashed":
            from . import isolate
            say(f"seed {rows[-1]['seed']} crashed; the remaining seeds {rest} run in a fresh process")
            more, _ = isolate.run_seeds(cfg, rest, source, a.results, save=a.save, sweep=a.sweep,
                                        sweep_run_id=a.sweep_run_id, on_line=say)
            rows += more
    for row in rows:
        summary = {k: _plain(row.get(k)) for k in ("run_id", "seed", "status", "reached_target", "epoch_reached",
                                                   "time_to_target_s", "wall_time_to_target_s", "train_time_s",
                                                   "final_acc", "best_acc", "train_images_per_s",
                                                   "peak_gpu_mem_bytes", "peak_host_rss_bytes")}
        summary["results"] = os.path.join(a.results, "runs", f"{row.get('run_id')}.parquet")
        if row.get("status") != "ok":
            summary["error"] = str(row.get("error", "")).splitlines()[-1:] or None
        print(json.dumps(summary))
    if interrupted:
        return 130
    return 0 if rows and all(r.get("status") == "ok" for r in rows) else 1


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
    return sweep.main(a)


def cmd_report(a):
    from . import report
    return report.main(a)


def cmd_verify(a):
    from . import verify
    return verify.main(a)


def cmd_maxbatch(a):
    from . import maxbatch
    return maxbatch.main(a)


def cmd_infer(a):
    from . import infer
    return infer.main(a)


def build_parser():
    p = Parser(prog="bench", description="Time-to-accuracy benchmarks for CIFAR-10 on PyTorch.",
               epilog=EPILOG)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    r = sub.add_parser("run", help="train one configuration to its target and record it",
                       description="Train one configuration to a target test accuracy and record time to "
                                   "target, throughput and memory as parquet.", epilog=EPILOG)
    add_config_args(r)
    r.add_argument("--data", help="CIFAR-10 source: directory, .tar/.tar.xz archive, or 'download' "
                                  "(default $BENCH_DATA, else download)")
    r.add_argument("--results", default="results", help="results directory (default results/)")
    r.add_argument("--save", metavar="PATH", help="save a checkpoint (for `bench infer`)")
    r.add_argument("--run-id", help=argparse.SUPPRESS)
    r.add_argument("--run-ids", help=argparse.SUPPRESS)
    r.add_argument("--sweep-run-id", help=argparse.SUPPRESS)
    r.add_argument("--json", action="store_true", help="print each run's summary as one JSON line on stdout")
    r.add_argument("--sweep", help=argparse.SUPPRESS)
    r.add_argument("--config-json", help=argparse.SUPPRESS)
    r.add_argument("--no-progress-bar", action="store_true", help="plain log lines instead of a live bar")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("sweep", help="run a TOML sweep: every cell in its own process, resumable",
                       description="Run every cell of a sweep file (base configuration x axes x seeds), "
                                   "each in its own process. Cells already completed are skipped.")
    s.add_argument("file", help="sweep file, e.g. configs/smoke.toml")
    s.add_argument("--results", default="results", help="results directory (default results/)")
    s.add_argument("--data", help="data source (overrides the file's and $BENCH_DATA)")
    s.add_argument("--dry-run", action="store_true", help="print the matrix and stop")
    s.add_argument("--retry-failed", action="store_true", help="run again cells whose runs all failed")
    s.add_argument("--shard", metavar="I/N", help="run only shard I of N (0-based), for N machines")
    s.add_argument("--stop-after", type=float, metavar="SECONDS",
                   help="start no process that would end after this many seconds of the invocation (estimated "
                        "from the runs so far); the rest stays pending for the next invocation")
    s.add_argument("--isolate-seeds", action="store_true",
                   help="one process per run (default: a configuration's seeds share one process, so data, "
                        "compilation and autotuning are paid once)")
    s.add_argument("--time-limit", type=float, metavar="SECONDS", help="per-run limit (overrides the file)")
    s.set_defaults(func=cmd_sweep)

    m = sub.add_parser("maxbatch", help="largest batch that trains a step within a memory limit",
                       description="Find the largest batch size that trains a step without running out of "
                                   "memory (doubling, then bisection; each probe in a fresh process).")
    add_config_args(m)
    m.add_argument("--memory-limit", metavar="SIZE", help="cap, e.g. 16GiB or 2000MB (default: the device)")
    m.add_argument("--start", type=int, default=16, help="first batch size probed (default 16)")
    m.add_argument("--max", type=int, default=1 << 16, dest="max_batch", help="largest batch tried")
    m.add_argument("--granularity", type=int, default=8, help="bisection stops at this step (default 8)")
    m.add_argument("--results", default="results", help="results directory (default results/)")
    m.set_defaults(func=cmd_maxbatch)

    rep = sub.add_parser("report", help="leaderboards from results: terminal, or files with --out",
                         description="Rank configurations and hardware from result directories.")
    rep.add_argument("results", nargs="+", help="results directories")
    rep.add_argument("--out", help="write leaderboard.md, index.html, .csv, .json here")
    rep.add_argument("--prices", help="TOML/JSON of {device name: dollars per GPU-hour}")
    rep.add_argument("--entry", metavar="GROUP_ID", help="also write DAWNBench entry files for this group")
    rep.add_argument("--author", default="cifar-bench", help="author for DAWNBench entry files")
    rep.set_defaults(func=cmd_report)

    v = sub.add_parser("verify", help="check a results directory (the harness's compliance checker)")
    v.add_argument("results", nargs="+", help="results directories")
    v.set_defaults(func=cmd_verify)

    i = sub.add_parser("infer", help="DAWNBench inference latency of a saved checkpoint",
                       description="Per-image latency at batch 1 over the test set, throughput at a large "
                                   "batch, and top-1 accuracy of a checkpoint saved by `bench run --save`.")
    i.add_argument("--checkpoint", required=True)
    i.add_argument("--data", help="data source (default $BENCH_DATA, else download)")
    i.add_argument("--results", default="results")
    i.add_argument("--device", choices=DEVICES, default="auto")
    i.add_argument("--limit", type=int, help="time only the first N test images at batch 1")
    i.add_argument("--batch-size", type=int, default=1000, help="batch for the throughput measurement")
    i.set_defaults(func=cmd_infer)

    e = sub.add_parser("env", help="print the hardware and software fingerprint as JSON")
    e.set_defaults(func=cmd_env)
    return p


def main(argv=None):
    p = build_parser()
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
