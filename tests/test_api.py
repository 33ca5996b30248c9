"""The Python API (bench/api.py), `bench models`, and a user's own network timed end to end."""
import hashlib
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

import bench
from bench.config import BenchError

from .conftest import ROOT
from .conftest import bench as bench_cli

SMALL = dict(batch_size=100, epochs=1, target=0.3, precision="bf16", device="cpu", progress=False)


def readme_block(heading, lang="python"):
    """The first ```lang block under a README heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n{heading}\n", 1)[1].split("\n### ", 1)[0]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def user_net(tmp_path):
    """The README's own example network, written to a directory outside the repository."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    p = d / "mynet.py"
    p.write_text(readme_block("### Your own model"))
    return p


def test_the_readme_notebook_example_runs(user_net, small_data, monkeypatch, capsys):
    code = readme_block("### From Python")
    data = '"../shared/data/cifar10-jpeg.tar.xz"'
    assert data in code, "the README example's data path changed: update this test"
    monkeypatch.chdir(user_net.parent)
    exec(compile(code.replace(data, repr(str(small_data))), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("ok ")
    assert "mynet.small_net" in out and "'darknet', 31410922, 2403790848" in out
    row = pd.read_parquet(user_net.parent / "results" / "mine" / "runs").iloc[0]
    assert row["model"] == "mynet.small_net" and row["status"] == "ok" and row["train_images"] == 600


def test_a_network_from_a_file_is_timed_by_the_cli_and_the_api_and_reported(user_net, small_data, tmp_path):
    results = tmp_path / "results"
    spec = f"{user_net}:small_net"
    p = bench_cli("run", "--model", spec, "--model-kwargs", "width=4", "--batch-size", "100", "--epochs", "1",
                  "--target", "0.3", "--precision", "bf16", "--device", "cpu", "--data", small_data,
                  "--results", results, "--no-progress-bar", "--json", check=0)
    cli_row = json.loads(p.stdout)
    api_row = bench.run(model=spec, model_kwargs={"width": 4}, data=small_data, results=results, **SMALL)
    assert cli_row["status"] == api_row["status"] == "ok"
    runs = pd.read_parquet(results / "runs").set_index("run_id")
    assert set(runs.index) == {cli_row["run_id"], api_row["run_id"]}
    for _, r in runs.iterrows():
        assert r["model"] == "mynet.small_net" and r["model_source"] == spec
        assert r["model_source_hash"] == hashlib.sha256(user_net.read_bytes()).hexdigest()
        assert json.loads(r["model_honours"]) == {"num_classes": True, "inplace": False}
        assert json.loads(r["model_kwargs"]) == {"width": 4}
    assert runs["config_key"].nunique() == 1  # the CLI and the API ran the same configuration
    board = bench.report([results])
    assert list(board["model"]) == ["mynet.small_net"] and board["runs"].iloc[0] == 2
    shown = bench_cli("report", results, check=0).stdout
    assert f"mynet.small_net(width=4)@{hashlib.sha256(user_net.read_bytes()).hexdigest()[:7]}" in shown


@pytest.mark.parametrize("settings,message", [
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(nonsense=1), "unknown setting 'nonsense'"),
    (dict(model="missing.py:net"), "model file not found"),
    (dict(model="resnet9", model_kwargs={"width": "wide"}), "keyword 'width' takes a number"),
    (dict(model=print), "put it in a .py file"),
    # not "model 'resnet9' has no keyword 'num_classes'": misleading for a function that declares it
    (dict(model="resnet9", model_kwargs={"num_classes": 100}), "'num_classes' is a run setting, not a model keyword"),
])
def test_bad_settings_raise_one_clear_bencherror_and_write_nothing(settings, message, tmp_path):
    def local_net():
        pass
    if settings.get("model") is print:
        settings["model"] = local_net
    with pytest.raises(BenchError, match=re.escape(message)):
        bench.run(data="/nonexistent", results=tmp_path / "r", **settings)
    assert not (tmp_path / "r").exists()


def test_two_versions_of_a_users_file_are_told_apart_on_the_board():
    """Their configuration keys differ (the source hash), so the board has a line for each: without
    the hash in the label both lines read 'mynet.small_net(width=16) fp32 bs256'."""
    from bench.report_fmt import config_name, model_label
    base = {"model": "mynet.small_net", "model_kwargs": '{"width": 16}', "precision": "fp32", "batch_size": 256}
    old, new = ({**base, "model_source_hash": h * 64} for h in "ab")
    assert config_name(old) == "mynet.small_net(width=16)@aaaaaaa fp32 bs256" != config_name(new)
    assert model_label(new) == "mynet.small_net(width=16)@bbbbbbb"
    assert config_name({**base, "model": "resnet9", "model_source_hash": None}) == "resnet9(width=16) fp32 bs256"


def test_no_inplace_for_a_network_that_does_not_take_inplace_is_refused(user_net, small_data, tmp_path):
    """Else the row says inplace=False (the board: 'no-inplace'), under a key of its own, for a network
    that ran exactly as with --inplace."""
    p = bench_cli("run", "--model", f"{user_net}:small_net", "--no-inplace", "--epochs", "1", "--device", "cpu",
                  "--data", small_data, "--results", tmp_path / "r", check=2)
    assert p.stderr.count("\n") == 1 and "does not take an `inplace` keyword" in p.stderr, p.stderr
    assert not (tmp_path / "r").exists()
    with pytest.raises(BenchError, match="does not take an `inplace` keyword"):
        bench.run(model=f"{user_net}:small_net", inplace=False, data=small_data, results=tmp_path / "r", **SMALL)


CHATTY_NET = """
import torch
from torch import nn

print("hello from chatty.py")


class Chatty(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3072, 10)

    def forward(self, x):
        print("forward", tuple(x.shape))
        return self.fc(x.flatten(1))


def net():
    return Chatty()
"""


def test_a_network_that_prints_leaves_stdout_to_the_json(small_data, tmp_path):
    """A user's print (at import, in forward) went to stdout, before `--json`'s line: `json.loads` failed."""
    (tmp_path / "chatty.py").write_text(CHATTY_NET)
    spec, out, ckpt = f"{tmp_path / 'chatty.py'}:net", tmp_path / "results", tmp_path / "c.pt"
    p = bench_cli("run", "--model", spec, "--batch-size", "100", "--epochs", "1", "--target", "0.01", "--device", "cpu",
                  "--data", small_data, "--results", out, "--save", ckpt, "--no-progress-bar", "--json", check=0)
    assert json.loads(p.stdout)["status"] == "ok" and "hello from chatty.py" in p.stderr
    assert json.loads(bench_cli("models", spec, "--json", check=0).stdout)[-1]["model"] == "chatty.net"
    p = bench_cli("infer", "--checkpoint", ckpt, "--data", small_data, "--results", out, "--limit", "5", check=0)
    assert "top1_acc" in json.loads(p.stdout) and "forward" in p.stderr


REAL_VALUES = """
import torch
from torch import nn


def normed(width: int = 8):  # its build reads a weight's value, which the meta device does not have
    net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(width, 10))
    scale = float(net[0].weight.norm())
    with torch.no_grad():
        net[0].weight.div_(scale)
    return net


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3072, 100)

    def forward(self, x):
        y = self.fc(x.flatten(1))
        return y if y.abs().sum() >= 0 else -y  # data-dependent: cannot run on the meta device


def hundred_classes():
    return Branchy()
"""


def test_networks_that_need_real_values_are_checked_on_a_real_batch(small_data, tmp_path):
    """A build that reads a weight was refused ('Tensor.item() cannot be called on meta tensors'), and a
    data-dependent forward skipped the output check: 100 outputs trained and were recorded as ok."""
    (tmp_path / "real.py").write_text(REAL_VALUES)
    out = tmp_path / "results"
    p = bench_cli("run", "--model", f"{tmp_path / 'real.py'}:hundred_classes", "--device", "cpu", "--data", small_data,
                  "--results", out, check=2)
    assert p.stderr.count("\n") == 1 and "maps a batch of 2 images to (2, 100)" in p.stderr, p.stderr
    assert not out.exists()
    row = bench.run(model=f"{tmp_path / 'real.py'}:normed", data=small_data, results=out, **SMALL)
    assert row["status"] == "ok" and row["param_count"] == 3 * 8 * 9 + 8 + 8 * 10 + 10 and row["flops_per_image"] > 0


NO_PARAMS = """
from torch import nn


class Crop(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10]


def crop():
    return Crop()


def frozen():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3072, 10))
    net.requires_grad_(False)
    return net
"""


@pytest.mark.parametrize("fn", ["crop", "frozen"])
def test_a_network_with_nothing_to_train_is_bad_input_not_a_crash(fn, small_data, tmp_path):
    """Else the run crashes inside FLOP counting on autograd's 'element 0 of tensors does not require grad'."""
    (tmp_path / "nop.py").write_text(NO_PARAMS)
    with pytest.raises(BenchError, match="no trainable parameters"):
        bench.run(model=f"{tmp_path / 'nop.py'}:{fn}", data=small_data, results=tmp_path / "r", **SMALL)
    assert not (tmp_path / "r").exists()


def test_a_runconfig_naming_a_users_model_starts_from_its_keywords_not_darknets(user_net, small_data, tmp_path):
    cfg = bench.RunConfig(model=f"{user_net}:small_net", **{k: v for k, v in SMALL.items() if k != "progress"})
    assert cfg.model_kwargs == {} and bench.RunConfig().model_kwargs == {"blocks": [1, 2, 4, 6, 3], "nf": 32, "width": 0.5}
    row = bench.run(cfg, data=small_data, results=tmp_path / "r", progress=False)
    assert row["status"] == "ok" and json.loads(row["model_kwargs"]) == {"width": 16}


LAZY_NET = """
from torch import nn


def lazy_net(width: int = 8):  # nn.LazyLinear learns its input size from the first batch
    return nn.Sequential(nn.Conv2d(3, width, 3, stride=2), nn.BatchNorm2d(width), nn.ReLU(), nn.Flatten(),
                         nn.LazyLinear(10))
"""


def test_a_network_with_lazy_modules_is_counted_and_timed(small_data, tmp_path):
    (tmp_path / "lazy.py").write_text(LAZY_NET)
    spec = f"{tmp_path / 'lazy.py'}:lazy_net"
    params = 3 * 8 * 9 + 8 + 2 * 8 + 8 * 15 * 15 * 10 + 10  # conv and bias, BatchNorm, a 1800 -> 10 linear
    [row] = json.loads(bench_cli("models", spec, "--json", check=0).stdout)[-1:]
    assert row["param_count"] == params and row["flops_per_image"] > 0
    run = bench.run(model=spec, data=small_data, results=tmp_path / "results", **SMALL)
    assert run["status"] == "ok" and run["param_count"] == params


def test_a_keyword_taken_only_through_kwargs_is_run_with_a_note_that_nothing_checks_it(small_data, tmp_path, capsys):
    """resnet18(**kwargs) takes any keyword: a misspelt one trained the default while the row recorded it
    as given, and nothing said so. Keywords the factory names get no note."""
    run = bench.run(model="torchvision.models:resnet18", model_kwargs={"zero_init_residual": True},
                    data=small_data, results=tmp_path / "r", **SMALL)
    err = capsys.readouterr().err
    assert run["status"] == "ok" and json.loads(run["model_kwargs"])["zero_init_residual"] is True
    assert "'zero_init_residual' only through **kwargs" in err and "cannot check" in err, err
    assert json.loads(run["model_kwargs_unchecked"]) == ["zero_init_residual"]  # and the row marks it
    checked = bench.run(model="resnet9", model_kwargs={"width": 0.125}, data=small_data, results=tmp_path / "r", **SMALL)
    assert "**kwargs" not in capsys.readouterr().err and checked["model_kwargs_unchecked"] is None
    bench_cli("report", tmp_path / "r", "--out", tmp_path / "rep", check=0)
    notes = [ln for ln in (tmp_path / "rep" / "leaderboard.md").read_text().splitlines() if "**kwargs" in ln]
    assert len(notes) == 1 and "resnet18" in notes[0] and "zero_init_residual" in notes[0], notes


def test_a_torchvision_factory_gets_num_classes_through_its_kwargs(small_data, tmp_path):
    """torchvision's resnet18(*, weights, progress, **kwargs) takes num_classes the way its (and timm's)
    factories do; without it the harness would train a 1000-way head on CIFAR-10's 10 classes."""
    [row] = json.loads(bench_cli("models", "torchvision.models:resnet18", "--json", check=0).stdout)[-1:]
    assert row["honours"] == {"num_classes": True, "inplace": False}
    assert row["param_count"] == 11_689_512 - 990 * 512 - 990  # ImageNet's 1000 classes less 990 of them
    run = bench.run(model="torchvision.models:resnet18", data=small_data, results=tmp_path / "results", **SMALL)
    assert run["status"] == "ok" and run["param_count"] == row["param_count"]
    assert json.loads(run["model_honours"]) == row["honours"]


def test_a_runconfig_and_overrides_and_the_clis_names():
    cfg = bench.make_config(bench.RunConfig(model="resnet9", model_kwargs={"width": 0.25}), {"wd": 0.001})
    assert cfg.weight_decay == 0.001 and cfg.model_kwargs == {"width": 0.25}
    other = bench.make_config(None, {"model": "wrn"})
    assert other.model_kwargs == {} and bench.make_config(None, {"model_kwargs": {"width": 1}}).model_kwargs == \
        {"blocks": [1, 2, 4, 6, 3], "nf": 32, "width": 1}
    assert bench.make_config(None, {"model": bench.make_config}).model == "bench.api:make_config"
    # a RunConfig's keywords are its model's: another model starts from its own defaults, as on the CLI
    lesson = bench.RunConfig()
    assert bench.make_config(lesson, {"model": "wrn"}).model_kwargs == {}
    assert bench.make_config(lesson, {"lr": 0.1}).model_kwargs == lesson.model_kwargs != {}


def test_import_bench_stays_cheap_and_bench_report_is_module_and_function():
    code = ("import sys, bench; assert 'torch' not in sys.modules and 'pandas' not in sys.modules; "
            "from bench import report; assert callable(report) and report.build and bench.report is report")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_bench_models_lists_keywords_params_and_flops_and_a_users_file(user_net):
    table = bench_cli("models", f"{user_net}:small_net", check=0).stdout
    assert max(len(line) for line in table.splitlines()) <= 100
    assert re.search(r"darknet .*blocks: tuple\[int, \.\.\.\] = 1,2,4,6,3 .* 31,410,922 .* 2\.40", table)
    assert re.search(r"mynet.small_net .*width: int = 16 .*num_classes .*", table)
    rows = {r["model"]: r for r in json.loads(bench_cli("models", f"{user_net}:small_net", "--json", check=0).stdout)}
    assert rows["wrn"]["keywords"]["depth"] == {"type": "int", "default": 22, "required": False}
    assert rows["resnet9"]["param_count"] == 6_573_120 and rows["darknet"]["flops_per_image"] == 2_403_790_848
    mine = rows["mynet.small_net"]
    assert mine["source"] == f"{user_net}:small_net" and mine["honours"] == {"num_classes": True, "inplace": False}
    assert mine["keywords"] == {"width": {"type": "int", "default": 16, "required": False}}
    assert mine["param_count"] == 3 * 16 * 9 + 2 * 16 + 16 * 32 * 9 + 2 * 32 + 32 * 10 + 10


def test_bench_models_takes_one_spec_as_a_string(user_net):
    """bench.models('mynet.py:small_net') read the string as a list of specs: "unknown model 'm'"."""
    assert bench.models(f"{user_net}:small_net")[-1]["model"] == "mynet.small_net"


def test_bench_models_refuses_a_missing_file_in_one_line(tmp_path, capsys):
    from bench.cli import main
    assert main(["models", f"{tmp_path}/nope.py:small_net"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model file not found" in err


def test_a_model_file_named_with_an_underscore_is_recorded_read_and_inferred(user_net, small_data, tmp_path):
    """Readers skip files named '_*' (and '.*'): no run or inference of a user's `_priv.py` may be named so."""
    from bench import results as res
    priv = user_net.with_name("_priv.py")
    priv.write_text(user_net.read_text())
    out, ckpt = tmp_path / "results", tmp_path / "m.pt"
    row = bench.run(model=f"{priv}:small_net", model_kwargs={"width": 4}, data=small_data, results=out,
                    save=ckpt, **SMALL)
    assert row["status"] == "ok" and list(res.read(out, "runs").run_id) == [row["run_id"]]
    bench_cli("infer", "--checkpoint", ckpt, "--data", small_data, "--results", out, "--limit", "20", check=0)
    assert res.read(out, "inference").infer_id.iloc[0].startswith("priv.small_net-")
    priv.write_text(user_net.read_text().replace("def small_net", "def renamed"))  # the source changed since
    p = bench_cli("infer", "--checkpoint", ckpt, "--data", small_data, "--results", out, "--limit", "20")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "cannot rebuild the checkpoint's model" in p.stderr


def test_a_checkpoint_of_a_relative_model_file_is_inferred_from_any_directory_until_the_file_changes(
        user_net, small_data, tmp_path, monkeypatch):
    monkeypatch.chdir(user_net.parent)  # the run names the file relative to here; `bench infer` runs elsewhere
    ckpt, out = tmp_path / "m.pt", tmp_path / "results"
    row = bench.run(model="mynet.py:small_net", data=small_data, results=out, save=ckpt, **SMALL)
    p = bench_cli("infer", "--checkpoint", ckpt, "--data", small_data, "--results", out, "--limit", "20", check=0)
    assert json.loads(p.stdout)["top1_acc"] == row["final_acc"]
    from bench import results as res
    inf = res.read(out, "inference").iloc[0]  # named as its run, not by the path relative to where it ran
    assert (inf["model"], inf["model_source_hash"]) == ("mynet.small_net", row["model_source_hash"])
    # an edit that still loads the weights would be measured silently as the trained network
    user_net.write_text(user_net.read_text().replace("nn.ReLU()", "nn.GELU()"))
    p = bench_cli("infer", "--checkpoint", ckpt, "--data", small_data, "--results", out, "--limit", "20")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "changed since the run" in p.stderr, p.stderr


def test_maxbatch_of_a_users_file_names_it_as_its_runs_do_with_its_version(user_net, tmp_path):
    """The row said only 'mynet.py:small_net', the path as typed, relative to a directory it did not
    record, and no version: two versions of the file were indistinguishable."""
    out = tmp_path / "results"
    subprocess.run([sys.executable, "-m", "bench", "maxbatch", "--model", "mynet.py:small_net", "--model-kwargs",
                    "width=4", "--device", "cpu", "--memory-limit", "8GiB", "--start", "16", "--max", "16",
                    "--results", out], cwd=user_net.parent, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    from bench import results as res
    r = res.read(out, "maxbatch").iloc[0]
    assert r["max_batch"] == 16 and r["model"] == "mynet.small_net" and r["model_source"] == f"{user_net}:small_net"
    assert r["model_source_hash"] == hashlib.sha256(user_net.read_bytes()).hexdigest()


def test_model_kwargs_given_twice_are_refused_and_a_second_flag_adds_to_the_first(user_net, tmp_path):
    """`--model-kwargs nf=16 --model-kwargs width=1` trained nf=32 (argparse kept only the last flag), and
    `width=4 width=8` trained width 8: either way the row recorded a model that was not asked for."""
    from bench.cli import build_parser
    from bench.cli_config import config_from_args
    a = build_parser().parse_args(["run", "--model-kwargs", "nf=16", "--model-kwargs", "width=1"])
    assert config_from_args(a).model_kwargs == {"blocks": [1, 2, 4, 6, 3], "nf": 16, "width": 1}
    for twice in (["width=4", "width=8"], ["width=4", "--model-kwargs", "width=8"]):
        p = bench_cli("run", "--model", f"{user_net}:small_net", "--model-kwargs", *twice, "--device", "cpu",
                      "--data", "/nonexistent", "--results", tmp_path / "r", check=2)
        assert p.stderr.count("\n") == 1 and "--model-kwargs gives 'width' twice" in p.stderr, p.stderr
    assert not (tmp_path / "r").exists()


def test_bad_results_path_and_empty_seeds_are_refused_before_training(tmp_path, small_data):
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    for results in (blocker, blocker / "sub"):
        with pytest.raises(BenchError, match="results"):
            bench.run(model="resnet9", model_kwargs={"width": 0.125}, data=small_data, results=results, **SMALL)
    for bad in ([], 5, "01", [0, 1.5]):
        with pytest.raises(BenchError, match="seeds must be a non-empty list"):
            bench.run(model="resnet9", data=small_data, results=tmp_path / "r", seeds=bad, **SMALL)
    assert not (tmp_path / "r").exists()


def test_a_run_leaves_the_callers_random_streams_signal_handlers_and_torch_settings_as_they_were(small_data, tmp_path):
    # a notebook that seeded its own generators draws the same numbers after a benchmark as before it
    import random
    import signal

    import numpy as np
    import torch

    def mine(signum, frame):
        pass

    previous, sigint = signal.signal(signal.SIGTERM, mine), signal.getsignal(signal.SIGINT)
    threads, grad = torch.get_num_threads(), torch.is_grad_enabled()
    try:
        torch.manual_seed(123), random.seed(7), np.random.seed(5)
        expected = torch.rand(3), random.random(), np.random.rand()
        torch.manual_seed(123), random.seed(7), np.random.seed(5)
        row = bench.run(model="resnet9", model_kwargs={"width": 0.125}, data=small_data, results=tmp_path / "r",
                        **SMALL)
        assert row["status"] == "ok", (row["status"], row["error"])
        drawn = torch.rand(3), random.random(), np.random.rand()
        assert torch.equal(drawn[0], expected[0]) and drawn[1:] == expected[1:], (drawn, expected)
        handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        assert handlers == (mine, sigint), handlers
        assert (torch.get_num_threads(), torch.is_grad_enabled(), torch.get_default_dtype()) == (threads, grad, torch.float32)
        recorded = pd.read_parquet(tmp_path / "r" / "runs").iloc[0]
        assert all(recorded[k] == row[k] for k in ("run_id", "config_key", "final_acc", "train_time_s", "epochs_completed"))
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_ctrl_c_during_a_run_records_it_then_stops_the_callers_script(small_data, tmp_path, monkeypatch):
    # a loop of bench.run calls went on to its next run at each Ctrl-C: the stop was kept by the run
    import signal
    import threading
    import time
    import types

    from bench import faults

    # Ctrl-C once the run is in its training loop (the fault's hang), not after a fixed delay: on a busy
    # machine a timer could fire before the run began, where Ctrl-C rightly raises with nothing to record
    monkeypatch.setenv("BENCH_FAULT", "hang:1")
    hanging = threading.Event()
    monkeypatch.setattr(faults, "time", types.SimpleNamespace(sleep=lambda s: (hanging.set(), time.sleep(s))))
    stopping = threading.Event()
    ctrl_c = threading.Thread(target=lambda: hanging.wait(600) and not stopping.is_set()
                              and os.kill(os.getpid(), signal.SIGINT), daemon=True)
    ctrl_c.start()
    try:  # the time limit bounds the hang: a Ctrl-C that got lost fails this test instead of stalling the suite
        with pytest.raises(KeyboardInterrupt):
            bench.run(model="resnet9", model_kwargs={"width": 0.125}, data=small_data, results=tmp_path / "r",
                      time_limit_s=300, **SMALL)
    finally:
        stopping.set(), hanging.set()
        ctrl_c.join()
    row = pd.read_parquet(tmp_path / "r" / "runs").iloc[0]
    assert row.status == "interrupted" and "SIGINT" in row.error, (row.status, row.error)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_run_that_its_time_limit_stops_is_returned_not_passed_on(small_data, tmp_path, monkeypatch):
    """The time limit stops a run with a SIGTERM of its own: that is the run's business (a `timeout`
    row, returned), not a stop for the caller's script, which would otherwise be killed here."""
    import signal

    monkeypatch.setenv("BENCH_FAULT", "hang:1")
    passed_on = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: passed_on.append(signum))  # not pytest's death
    try:
        row = bench.run(model="resnet9", model_kwargs={"width": 0.125}, data=small_data, results=tmp_path / "r",
                        time_limit_s=3, **SMALL)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert row["status"] == "timeout" and passed_on == []
