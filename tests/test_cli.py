"""Bad input: one clear line on stderr, exit 2, no traceback, nothing written."""
import os
import pickle
import shlex
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from bench.cli import main

from .conftest import ROOT, TINY, TINY_SWEEP, bench, write

CASES = [
    (["--model", "vgg"], "unknown model 'vgg'"),
    (["--model", "darknet", "--model-kwargs", "depth=3"], "no keyword 'depth'"),
    (["--model-kwargs", "nonsense"], "KEY=VALUE"),
    (["--model", "resnet9", "--model-kwargs", "width=wide"], "keyword 'width' takes a number"),
    (["--model", "darknet", "--model-kwargs", "blocks=1,x"], "keyword 'blocks' takes a list of integers"),
    (["--model", "wrn", "--model-kwargs", "depth=22.5"], "keyword 'depth' takes an integer"),
    # in range for the type, not for the network: they trained at chance or crashed mid-build
    (["--model", "resnet9", "--model-kwargs", "width=-1"], "resnet9 width must be > 0, got -1"),
    (["--model", "darknet", "--model-kwargs", "blocks=1,-2"], "darknet needs nf >= 1, width > 0 and block counts >= 0"),
    (["--model", "wrn", "--model-kwargs", "k=0", "depth=10"], "wrn needs k >= 1 and dropout in [0, 1)"),
    (["--batch-size", "0"], "batch-size must be a positive integer"),
    (["--batch-size", "-8"], "batch-size must be a positive integer"),
    (["--world-size", "0"], "world-size must be a positive integer"),
    (["--world-size", "-1"], "world-size must be a positive integer"),
    (["--target", "1.5"], "target must be an accuracy in (0, 1]"),
    (["--target", "0"], "target must be an accuracy in (0, 1]"),
    (["--precision", "fp64"], "unknown precision 'fp64'"),
    (["--precision", "fp16", "--device", "cpu"], "fp16 needs a CUDA GPU"),
    (["--device", "cuda"], "no CUDA GPU is visible"),
    (["--device", "tpu"], "invalid choice: 'tpu'"),
    (["--batch-size", "lots"], "invalid int value: 'lots'"),
    (["--data", "/nonexistent/cifar.tar.xz", "--device", "cpu"], "data not found: /nonexistent/cifar.tar.xz"),
    (["--recipe", "fastest"], "invalid choice: 'fastest'"),
    (["--epochs", "0"], "epochs must be a positive integer"),
    # the ranges (bench/config.py RANGES): NaN and infinities fail them too
    (["--time-limit", "nan"], "--time-limit must be a positive finite number of seconds, got nan"),
    (["--time-limit", "inf"], "--time-limit must be a positive finite number of seconds, got inf"),
    (["--lr", "inf"], "--lr must be a positive finite number, got inf"),
    (["--wd", "-1"], "--wd must be a finite number >= 0, got -1.0"),
    (["--mom-max", "2"], "--mom-max must be in [0, 1], got 2.0"),
    (["--cutout", "100"], "--cutout must be a square's side in [0, 32] pixels"),
    (["--warmup-steps", "-1"], "--warmup-steps must be a count >= 0, got -1"),
    (["--model", "dcgan"], "model 'dcgan' is a GAN (a generator and a critic): run it with --workload dcgan"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[c[1][:30] for c in CASES])
def test_bad_run_input(args, message, tmp_path, capsys):
    results = tmp_path / "results"
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["run", "--results", str(results), *args]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not results.exists()


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    for args, message in [(["--model", "vgg"], "unknown model"), (["--target", "1.5"], "target must be"),
                          (["--data", str(tmp_path / "missing"), "--device", "cpu"], "data not found")]:
        p = bench("run", "--results", tmp_path / "r", *args)
        assert p.returncode == 2
        assert "Traceback" not in p.stderr and message in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = bench("infer", "--checkpoint", tmp_path / "none.pt", "--results", tmp_path / "r")
    assert p.returncode == 2 and "checkpoint not found" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "r").exists()


def test_limit_train_below_one_batch(tmp_path, capsys, small_data):
    rc = main(["run", *TINY, "--limit-train", "10", "--data", str(small_data), "--results", str(tmp_path / "r")])
    assert rc == 2 and "smaller than one batch" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flags, message", [(["--limit-train", "100000"], "limit-train 100000 exceeds the 600"),
                                            (["--batch-size", "1000"], "batch size 1000 exceeds the 600")])
def test_settings_the_data_cannot_meet_are_bad_input_under_ddp_too(tmp_path, small_data, flags, message):
    """Checked in the parent, against the data it loads anyway: else each rank said so, torchrun added its
    traceback, and a `crashed` row recorded the user's typo as a failed run."""
    p = bench("run", *TINY, *flags, "--world-size", "2", "--data", small_data, "--results", tmp_path / "r")
    assert p.returncode == 2 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "r" / "runs").exists()


def test_help_explains_every_command():
    for cmd in ("run", "sweep", "maxbatch", "report", "verify", "infer", "env"):
        p = bench(cmd, "--help")
        assert p.returncode == 0 and "usage: bench" in p.stdout


def test_env_prints_the_fingerprint():
    import json
    p = bench("env", check=0)
    fp = json.loads(p.stdout)
    for k in ("device_name", "cpu_model", "torch_version", "hostname", "git_commit", "hardware_id"):
        assert k in fp
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    if head:  # a git checkout (CI's is one)
        assert fp["git_commit"] == head and fp["git_dirty"] in (True, False)
    # a copy whose git metadata is not its own (the first H200 rows read an older commit's) is told
    fp = json.loads(bench("env", env={"BENCH_GIT_COMMIT": "7f473fd"}, check=0).stdout)
    assert fp["git_commit"] == "7f473fd" and fp["git_dirty"] is None


@pytest.mark.parametrize("args", [["env"], ["models", "--json"]])
def test_a_reader_that_stops_early_gets_no_traceback(args):
    """`bench env | head` printed a BrokenPipeError traceback; a closed pipe is the reader's choice."""
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first write
    p = subprocess.run([sys.executable, "-m", "bench", *args], stdout=w, stderr=subprocess.PIPE, text=True,
                       cwd=ROOT, timeout=300)
    os.close(w)
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr[-2000:]
    assert p.returncode == 141


def test_broken_archive_is_one_line_and_nothing_written(real_members, tmp_path):
    from .conftest import write_archive
    bad = write_archive(tmp_path / "bad.tar", real_members, skip={("test", "horse")})
    p = bench("run", *TINY, "--data", bad, "--results", tmp_path / "r")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [f"bench run: error: {bad}: test/ is missing classes: horse"]
    assert not (tmp_path / "r").exists()


# --- everything a command writes is checked before it works ------------------------------------

def read_only(directory, *args):
    """Run `bench ARGS` with DIRECTORY bind-mounted read-only in a private mount namespace.

    The tests run as root, and root writes through chmod 0o555, so a permission bit would test
    nothing; a read-only mount refuses root too, as a read-only disk or NFS export does."""
    cmd = (f"mount --bind -o ro {shlex.quote(str(directory))} {shlex.quote(str(directory))} && "
           f"exec {shlex.quote(sys.executable)} -m bench {' '.join(shlex.quote(str(a)) for a in args)}")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare --mount is not permitted here (needs root); the /proc case still runs")
    return subprocess.run(["unshare", "--mount", "sh", "-c", cmd], capture_output=True, text=True, cwd=ROOT,
                          timeout=1500)


def one_line_exit_2(p, *needles):
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_results_that_is_a_file_stops_the_run_before_training(small_data, tmp_path):
    f = tmp_path / "results.txt"
    f.write_text("not a directory\n")
    p = bench("run", *TINY, "--data", small_data, "--results", f)
    one_line_exit_2(p, "--results", str(f), "not a directory")
    assert f.read_text() == "not a directory\n" and p.stdout == ""
    # a file as a component of the path: the directory could never be created
    p = bench("run", *TINY, "--data", small_data, "--results", f / "sub")
    one_line_exit_2(p, "is a file")
    for cmd in (["infer", "--checkpoint", f], ["maxbatch", "--device", "cpu"]):
        one_line_exit_2(bench(*cmd, "--results", f), "not a directory")
    assert sorted(os.listdir(tmp_path)) == ["results.txt"]


def test_results_under_proc_cannot_be_created():
    """/proc refuses new entries even to root, whatever its permission bits say."""
    p = bench("run", *TINY, "--device", "cpu", "--results", "/proc/bench-results")
    one_line_exit_2(p, "/proc/bench-results", "give a writable path")
    assert not os.path.exists("/proc/bench-results")


def test_read_only_results_and_save_stop_before_training(small_data, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    p = read_only(ro, "run", *TINY, "--data", small_data, "--results", ro / "results")
    one_line_exit_2(p, "Read-only file system")
    # results writable, checkpoint not: the run must not train and then fail to save
    p = read_only(ro, "run", *TINY, "--data", small_data, "--results", tmp_path / "r", "--save", ro / "m.pt")
    one_line_exit_2(p, "--save", "Read-only file system")
    assert not (tmp_path / "r").exists() and os.listdir(ro) == []
    p = bench("run", *TINY, "--data", small_data, "--results", tmp_path / "r", "--save", tmp_path)
    one_line_exit_2(p, "--save", "is a directory")


def test_read_only_sweep_results_stop_before_any_cell(small_data, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    p = read_only(ro, "sweep", s, "--results", ro, "--data", small_data)
    one_line_exit_2(p, "--results", str(ro), "Read-only file system")
    assert os.listdir(ro) == []
    # a dry run writes nothing, so it may look at a read-only directory
    p = read_only(ro, "sweep", s, "--results", ro, "--data", small_data, "--dry-run")
    assert p.returncode == 0, p.stderr


def test_infer_refuses_what_is_not_a_checkpoint(tmp_path):
    """README.md, a truncated file and a pickle that would run code: one line naming the file,
    no advice to load with weights_only=False, no torch warning, nothing run, nothing written."""
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "ran"
    evil.write_bytes(pickle.dumps(RunsCode(str(marker)), protocol=4))
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(b"PK\x03\x04" + os.urandom(600))
    for path in (ROOT / "README.md", trunc, evil):
        p = bench("infer", "--checkpoint", path, "--results", tmp_path / "r")
        line = one_line_exit_2(p, f"{path} is not a cifar-bench checkpoint")
        assert "weights_only" not in line and "Warning" not in p.stderr
    assert not marker.exists() and not (tmp_path / "r").exists()


class RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


# --- Ctrl-C ---------------------------------------------------------------------------------------

def _sigint_as_at_a_terminal():
    """A shell starts background jobs with SIGINT ignored, and Python then installs no Ctrl-C
    handler: give the child the default disposition a command typed at a terminal has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_mid_run_exits_130_with_its_clocks_and_finished_epochs(small_data, tmp_path):
    """SIGINT (what Ctrl-C sends) while epoch 2's steps run: exit 130 like the sweep; the row is
    `interrupted` and its training clock holds epoch 1 and the part of epoch 2 that ran; the
    epochs file has epoch 1. BENCH_FAULT=hang:14 holds the run inside epoch 2 (12 steps an
    epoch), so the signal lands there whatever the machine's load."""
    log = tmp_path / "log"
    res = tmp_path / "r"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bench", "run", *TINY, "--data", str(small_data),
                                 "--results", str(res), "--no-progress-bar"], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "BENCH_FAULT": "hang:14"},
                                start_new_session=True, preexec_fn=_sigint_as_at_a_terminal)
        try:
            deadline = time.monotonic() + 600
            # the end-of-epoch line (a busy machine also prints progress lines within the epoch)
            while "epoch 1/2  loss" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            # well inside the hang: epoch 2's clock starts a moment after that line (its epoch row is
            # written first), so 3 s here leave it at least the 1 s asserted below on a loaded machine
            time.sleep(3.0)
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert rc == 130 and "Traceback" not in text, (rc, text[-3000:])
    r = pd.read_parquet(res / "runs").iloc[0]
    ep = pd.read_parquet(res / "epochs")
    assert r.status == "interrupted" and "SIGINT" in r.error
    assert list(ep.epoch) == [1] and r.epochs_completed == 1 and r.final_acc == ep.test_acc.iloc[0]
    assert r.train_time_s >= ep.elapsed_s.iloc[0] + 1.0, (r.train_time_s, ep.elapsed_s.iloc[0])
    assert r.wall_time_s >= r.train_time_s
    assert r.train_images_per_s == pytest.approx(12 * 50 / ep.elapsed_s.iloc[0])  # finished epochs only


# --- help and names -----------------------------------------------------------------------------

def sub_parsers():
    import argparse

    from bench.cli import build_parser
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return p, sub.choices


def test_every_option_of_every_command_has_help_and_its_default():
    """Walks every sub-parser: each option has a help string that says its default, switches and the
    report's options included (hidden internal options excepted), and each command has a description."""
    import argparse
    _, commands = sub_parsers()
    assert {"run", "sweep", "maxbatch", "report", "verify", "infer", "env"} <= set(commands)
    for name, parser in commands.items():
        assert parser.description, f"bench {name} has no description"
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or action.help == argparse.SUPPRESS:
                continue
            flag = "/".join(action.option_strings) or action.dest
            assert action.help, f"bench {name} {flag} has no help"
            if action.option_strings and not action.required:
                assert "default" in action.help, f"bench {name} {flag}: no default in {action.help!r}"
                assert action.help.count("default:") <= 1, f"bench {name} {flag}: two defaults in {action.help!r}"


def test_the_help_points_to_the_file_that_holds_the_schema():
    """`bench run --help` sends readers to the parquet schema; the file it names must hold it."""
    import re

    from bench.cli import EPILOG
    path = re.search(r"see (\S+) for the schema", EPILOG).group(1)
    assert "## Columns" in (ROOT / path).read_text(), f"{path} does not document the columns"


def test_help_shows_the_recipes_values_as_the_defaults():
    lesson = bench("run", "--help", check=0).stdout
    cpu = bench("run", "--recipe", "cpu", "--help", check=0).stdout
    squash = " ".join(cpu.split())
    assert "defaults shown: the cpu recipe's" in squash and "--epochs EPOCHS epochs in the one-cycle schedule (default: 10)" in squash
    assert "(default: 0.85)" in squash and "(default: width=0.5)" in squash
    assert "(default: 30)" in " ".join(lesson.split()) and "(default: 0.94)" in " ".join(lesson.split())


def test_abbreviations_are_errors_and_weight_decay_has_its_full_name(tmp_path, capsys):
    # each line is also bad input another way, so that code which takes the abbreviation stops at once
    for argv in (["run", "--epoch", "2", "--batch-size", "0"], ["run", "--weight", "0.1", "--batch-size", "0"],
                 ["sweep", "x.toml", "--dry"],
                 ["infer", "--checkpoint", "m.pt", "--lim", "5"]):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--results", str(tmp_path / "r")])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "unrecognized arguments" in err[0], (argv, err)
    from bench.cli import build_parser, config_from_args
    for flag in ("--weight-decay", "--wd"):
        a = build_parser().parse_args(["run", flag, "0.002"])
        assert config_from_args(a).weight_decay == 0.002
    assert not (tmp_path / "r").exists()


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version
    p = bench("--version", check=0)
    assert p.stdout.strip() == f"bench (cifar-bench) {version('cifar-bench')}"


def test_maxbatch_lists_only_the_flags_that_change_its_memory():
    text = bench("maxbatch", "--help", check=0).stdout
    for flag in ("--model", "--model-kwargs", "--precision", "--channels-last", "--compile", "--memory-limit",
                 "--max BATCH"):
        assert flag in text, flag
    for flag in ("--lr", "--epochs", "--target", "--weight-decay", "--label-smoothing", "--seed", "--tta"):
        assert flag not in text, flag


def test_thread_splits_count_the_cores_this_process_may_use():
    """In a Slurm or container allocation the affinity mask, not the machine, says how many cores a
    run has: a DDP run on CPUs splits those between its processes (os.cpu_count() oversubscribed them)."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 cores to restrict to 1")
    code = "import os; from bench.config import usable_cpus; print(usable_cpus(), os.cpu_count())"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
    assert p.stdout.split() == ["1", str(os.cpu_count())], p.stderr
    for path in (ROOT / "bench").rglob("*.py"):  # every split goes through usable_cpus()
        uses = path.read_text().count("os.cpu_count()")
        assert uses == (1 if path.name == "config.py" else 0), path
