"""`bench`: the command line. Bad input prints one line and exits 2; a run that fails is
recorded and exits 1; success exits 0."""
import argparse
import contextlib
import json
import os
import signal
import sys

from .cli_config import MAXBATCH_FIELDS, add_config_args, config_from_args
from .config import DEVICES, BenchError, validate
from .paths import SWEEP_SUBDIRS, check_writable

# commands that import a user's network: its prints (at import, in forward) go to stderr, so that
# stdout holds only what the command writes there (`--json`, infer's line, maxbatch's number)
USER_CODE = ("run", "models", "infer", "maxbatch")
EPILOG = "Results land under RESULTS/runs and RESULTS/epochs as parquet; see results/README.md for the schema."


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kw):
        kw.setdefault("allow_abbrev", False)  # `--epoch 2` must be an error, not a silent --epochs 2
        super().__init__(*args, **kw)

    def error(self, message):
        # one line, no usage dump: say what was wrong and where to look
        print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


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
    relayed = set()

    def relay(line):  # a child's output, shown as it comes
        relayed.add(line)
        say(line)

    check_writable(a.results, save=a.save)  # before training: a finished run must not be lost at the end
    source = data_mod.resolve_source(a.data)
    under_torchrun = "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ
    if cfg.world_size > 1 and not under_torchrun:
        from . import isolate, stops, workload
        stops.release()  # torchrun's ranks record a stop; this parent just passes it on (PR_SET_PDEATHSIG)
        ds = data_mod.load(source, warn=say)  # check the data (and fill the cache) once, before forking
        workload.get(cfg.workload).check_data(cfg, ds)
        del ds  # the ranks load their own
        say(f"starting {cfg.world_size} processes through torchrun")
        rows, late = isolate.run_seeds(cfg, seeds, source, a.results, run_ids or [new_run_id(cfg, s) for s in seeds],
                                       save=a.save, sweep=a.sweep, sweep_run_id=a.sweep_run_id, on_line=relay)[0], []
    else:
        from .runner import Runner
        runner = Runner(cfg, source, a.results, seeds=seeds, run_ids=run_ids, save=a.save, sweep=a.sweep,
                        sweep_run_id=a.sweep_run_id, live=False if a.no_progress_bar else None)
        rows, late = runner.execute(), runner.held_stops  # late: a stop that came as the last run recorded itself
        if int(os.environ.get("RANK", "0")) != 0:
            return max((exit_code(r) for r in rows), default=1)
        done = {r["seed"] for r in rows}
        rest = [s for s in seeds if s not in done]
        if rest and rows and rows[-1]["status"] == "crashed" and cfg.world_size > 1:
            # not a torchrun inside this rank, which torchrun is about to stop now that its peers have ended
            say(f"seed {rows[-1]['seed']} crashed; the remaining seeds {rest} need fresh processes: the "
                f"parent that started torchrun starts them (started by hand: run them again)")
        elif rest and rows and rows[-1]["status"] == "crashed":  # the process may be poisoned: a fresh one
            from . import isolate
            say(f"seed {rows[-1]['seed']} crashed; the remaining seeds {rest} run in a fresh process")
            # under their given run ids: a sweep looks for those, and ran a seed again when it found none
            ids = dict(zip(seeds, run_ids)) if run_ids else {}
            rows += isolate.run_seeds(cfg, rest, source, a.results, [ids[s] for s in rest] if ids else None,
                                      save=a.save, sweep=a.sweep, sweep_run_id=a.sweep_run_id, on_line=relay)[0]
    for row in rows:
        path = os.path.join(a.results, "runs", f"{row.get('run_id')}.parquet")
        if run_summary(row, path) not in relayed:  # a child's own summary was shown as it came
            say(run_summary(row, path))
        if a.json:
            summary = {k: _plain(row.get(k)) for k in (
                "run_id", "seed", "status", "reached_target", "epoch_reached", "time_to_target_s",
                "wall_time_to_target_s", "train_time_s", "final_acc", "best_acc", "train_images_per_s",
                "peak_gpu_mem_bytes", "peak_host_rss_bytes")}
            summary["results"] = path
            if row.get("status") != "ok":
                summary["error"] = str(row.get("error", "")).splitlines()[-1:] or None
            print(json.dumps(summary), file=a.stdout)
    code = max((exit_code(r) for r in rows), default=1)
    if code == 0 and late:  # the runs are whole, but a caller's script must still stop
        say("stopped after the last run was recorded")
        return 130 if isinstance(late[0], KeyboardInterrupt) else 128 + signal.SIGTERM
    return code


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
    from . import slurm, sweep
    if a.status is not None:  # reads only
        return slurm.main(a)
    if not a.dry_run:
        check_writable(a.results, subdirs=SWEEP_SUBDIRS)
    if slurm.handles(a):  # --slurm writes and submits a job array (bench/slurm.py)
        return slurm.main(a)
    return sweep.main(a)


def cmd_report(a):
    from . import report_cli
    return report_cli.main(a)


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


def build_parser(recipe=None, workload=None):
    """RECIPE, WORKLOAD: the --recipe and --workload on the command line, if any, so that --help
    shows the values that apply."""
    p = Parser(prog="bench", description="Time-to-accuracy benchmarks for CIFAR-10 on PyTorch.",
               epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"bench (cifar-bench) {package_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    r = sub.add_parser("run", help="train one configuration to its target and record it",
                       description="Train one configuration to a target test accuracy and record time to "
                                   "target, throughput and memory as parquet.", epilog=EPILOG)
    add_config_args(r, recipe=recipe, workload=workload)
    r.add_argument("--data", help="CIFAR-10 source: directory, .tar/.tar.xz archive, or 'download' "
                                  "(default $BENCH_DATA, else download)")
    r.add_argument("--results", default="results", help="results directory (default: results/)")
    r.add_argument("--save", metavar="PATH", help="save a checkpoint (for `bench infer`) (default: none)")
    r.add_argument("--run-id", help=argparse.SUPPRESS)
    r.add_argument("--run-ids", help=argparse.SUPPRESS)
    r.add_argument("--sweep-run-id", help=argparse.SUPPRESS)
    r.add_argument("--sweep", help=argparse.SUPPRESS)
    r.add_argument("--config-json", help=argparse.SUPPRESS)
    r.add_argument("--no-progress-bar", action="store_true", help="plain log lines instead of a live bar (default: a live bar when stderr is a terminal)")
    r.add_argument("--json", action="store_true",
                   help="print the run's summary as one JSON line on stdout (default: a line for people on stderr)")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("sweep", help="run a TOML sweep: every cell in its own process, resumable",
                       description="Run every cell of a sweep file (base configuration x axes x seeds); a "
                                   "configuration's seeds share one process. Cells already completed are skipped.")
    s.add_argument("file", help="sweep file, e.g. configs/smoke.toml")
    s.add_argument("--results", default="results", help="results directory (default: results/)")
    s.add_argument("--data", help="data source (default: the file's data, else $BENCH_DATA, else download)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override the file for this invocation, e.g. --set epochs=2 --set seeds=[0]: a [sweep] "
                        "key replaces the file's; any run setting is forced on every cell, over [base], [axes] "
                        "and [[cells]] (repeatable; the rows record the settings, so a shortened cell is a "
                        "cell of its own; default: the file as written)")
    s.add_argument("--dry-run", action="store_true", help="print the matrix and stop (default: run it)")
    s.add_argument("--retry-failed", action="store_true", help="run again cells whose runs all failed (default: a failed cell counts as done)")
    s.add_argument("--retry-interrupted", action="store_true",
                   help="run again cells whose runs were all interrupted (SIGTERM, SIGINT, preemption), not "
                        "those that failed on their own (a requeued Slurm task uses this; default: an interrupted cell counts as done)")
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
                    help="write an sbatch script, print it and submit it with sbatch (--dry-run: print only; "
                         "default: run here)")
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
    m.add_argument("--memory-limit", metavar="SIZE", help="cap with its unit, e.g. 16GiB or 2000MB (default: the device)")
    m.add_argument("--start", type=int, default=16, help="first batch size probed (default: 16)")
    m.add_argument("--max", type=int, default=1 << 16, dest="max_batch", metavar="BATCH",
                   help="stop doubling here: the largest batch size probed (default: 65536)")
    m.add_argument("--granularity", type=int, default=8, help="bisection stops at this step (default: 8)")
    m.add_argument("--results", default="results", help="results directory (default: results/)")
    m.set_defaults(func=cmd_maxbatch)

    rep = sub.add_parser("report", help="leaderboards from results: terminal, or files with --out",
                         description="Rank configurations and hardware from result directories.")
    rep.add_argument("results", nargs="+", help="results directories")
    rep.add_argument("--out", help="write leaderboard.md, index.html, .csv, .json here (default: the boards on the terminal only)")
    rep.add_argument("--prices", help="TOML/JSON of {device name: dollars per GPU-hour} (default: PRICES in bench/report.py)")
    rep.add_argument("--entry", metavar="GROUP_ID", help="also write DAWNBench entry files for this group (default: none)")
    rep.add_argument("--author", default="cifar-bench", help="author for DAWNBench entry files (default: cifar-bench)")
    rep.add_argument("--thresholds", default="0.85,0.90,0.93,0.94", metavar="ACC,...", help="accuracies for the "
                     "time-to-accuracy board and the time_to_<pct>_s export columns (default 0.85,0.90,0.93,0.94)")
    rep.add_argument("--same-code", action="append", metavar="CODE,CODE", help="pool runs of these code hashes as one "
                     "code, for commits that changed nothing a run executes; repeatable (default: each code apart)")
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
    ms.add_argument("--json", action="store_true", help="JSON on stdout instead of a table (default: a table)")
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


def flag_in(argv, flag):
    """The value of FLAG (--recipe, --workload) in ARGV, found before parsing so that --help can
    show the values that apply."""
    for k, arg in enumerate(argv):
        if arg == flag and k + 1 < len(argv):
            return argv[k + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = build_parser(flag_in(argv, "--recipe"), flag_in(argv, "--workload"))
    a = p.parse_args(argv)
    if not getattr(a, "func", None):
        p.print_help(sys.stderr)
        return 2
    a.stdout = sys.stdout
    try:
        if a.command not in USER_CODE:
            return a.func(a)
        with contextlib.redirect_stdout(sys.stderr):
            return a.func(a)
    except BenchError as e:
        print(f"bench {a.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bench {a.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bench env | head`: the reader has what it wanted; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush finds no pipe
        return 141  # as a shell reports a process ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
