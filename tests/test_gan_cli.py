"""What a user of the GAN workloads meets at the command line and in Python: settings a GAN does
not use are refused in one line, its checkpoint is not taken for a classifier's, the Python API
starts from the same settings as `bench run`, and the report and sweep name the FD as an FD."""
import json

import pandas as pd
import pytest

from .conftest import bench
from .test_gan import TINY_JUDGE

GAN = ["--model", "dcgan", "--model-kwargs", "nf=8", "nz=16", "--batch-size", "40", "--epochs", "1",
       "--device", "cpu", "--precision", "bf16"]


@pytest.mark.parametrize("flags, message", [
    (["--tta"], "--tta"),
    (["--label-smoothing", "0.1"], "--label-smoothing"),
    (["--cutout", "8"], "--cutout"),
    (["--wd", "0.1"], "--wd"),
    (["--recipe", "cpu"], "--tta"),           # a classifier recipe's settings, not only flags
    (["--div", "5"], "--div"),                # the one-cycle schedule's: a GAN's lr is constant
    (["--no-nesterov"], "--nesterov"),
    (["--world-size", "2"], "--world-size 1"),
    (["--fused"], "no fused kernel"),         # the WGAN's RMSprop is the harness's own
])
def test_settings_a_gan_does_not_use_are_refused_in_one_line(small_data, tmp_path, flags, message):
    p = bench("run", "--workload", "wgan", *GAN, *flags, "--data", small_data, "--results", tmp_path / "r", check=2)
    assert message in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "runs").exists()


@pytest.mark.parametrize("flags, judge, message", [
    (["--target", "inf"], None, "positive finite number, got inf"),   # every run would "reach" it at epoch 1
    ([], {"model": "nope"}, "unknown model 'nope'"),                   # was a crashed run, exit 1
    ([], {"epochs": 0}, "epochs must be a positive integer"),          # was the judge's IndexError after the load
    ([], {"model": "dcgan", "model_kwargs": {}}, "is a GAN"),           # a judge must be a classifier
])
def test_a_senseless_target_or_judge_is_refused_before_the_run(small_data, tmp_path, flags, judge, message):
    env = {"BENCH_JUDGE": json.dumps(judge or TINY_JUDGE)}
    p = bench("run", "--workload", "wgan", *GAN, *flags, "--data", small_data, "--results", tmp_path / "r",
              env=env, check=2)
    assert message in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "training the FD judge" not in p.stderr and not (tmp_path / "r").exists()


@pytest.mark.parametrize("setting, value", [("alt_flip", True), ("translate", 2), ("lookahead_every", 5),
                                            ("muon_lr", 0.1), ("schedule", "triangle"), ("dirac", True)])
def test_classifier_settings_without_a_flag_are_refused_too(setting, value):
    """Settings a recipe, a sweep file or the Python API can give: recorded in a GAN's row, unread."""
    from bench.api import make_config
    from bench.config import BenchError, validate

    with pytest.raises(BenchError, match=f"does not use {setting} "):
        validate(make_config(None, {"workload": "wgan", setting: value}), cuda_available=False)


def test_a_wgan_row_never_says_fused(monkeypatch):
    """The WGAN's RMSprop has no fused kernel: its row must not say `fused` where the setting's default
    (on CUDA) or a value given through Python would claim one."""
    from bench import measure
    from bench.api import make_config
    from bench.row import base_row

    monkeypatch.setattr(measure, "fingerprint", lambda device, world: {})  # no CUDA to describe here
    for fused in (None, True):
        cfg = make_config(None, {"workload": "wgan", "fused": fused})
        assert base_row(cfg, "r", "cuda", 1, None)["fused"] is False
    assert base_row(make_config(None, {"workload": "dcgan", "fused": True}), "r", "cpu", 1, None)["fused"] is True


def test_bench_infer_refuses_a_gan_checkpoint_in_one_line(small_data, tmp_path):
    env = {"BENCH_JUDGE": json.dumps(TINY_JUDGE)}
    bench("run", "--workload", "dcgan", *GAN, "--target", "1000", "--data", small_data, "--results", tmp_path / "r",
          "--save", tmp_path / "g.pt", "--no-progress-bar", env=env, check=0)
    p = bench("infer", "--checkpoint", tmp_path / "g.pt", "--data", small_data, "--results", tmp_path / "r", check=2)
    assert "dcgan" in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "inference").exists()


def test_the_python_api_starts_a_gan_from_the_workload_settings_as_the_cli_does():
    from bench.api import make_config
    from bench.cli import build_parser
    from bench.cli_config import config_from_args
    from bench.config import validate

    for name in ("dcgan", "wgan"):
        cli = config_from_args(build_parser().parse_args(["run", "--workload", name, "--model-kwargs", "nf=8"]))
        api = validate(make_config(None, {"workload": name, "model_kwargs": {"nf": 8}}), cuda_available=False)
        assert api == cli and api.target == 100.0 and api.weight_decay == 0.0, name


def test_effect_boards_name_the_setting_that_is_held_fixed():
    """Both precisions x in-place on/off: each effect row must say which precision (or in-place
    setting) it holds, else two rows read alike with different numbers."""
    from bench import report_gan

    rows = []
    for i, (prec, ip) in enumerate([(p, ip) for p in ("fp32", "bf16") for ip in (True, False)]):
        rows.append({"run_id": f"r{i}", "workload": "dcgan", "status": "ok", "model_kwargs": '{"nf": 8}',
                     "precision": prec, "inplace": ip, "channels_last": False, "compile": False, "batch_size": 64,
                     "epochs": 1, "target": 100.0, "lr": 2e-4, "train_images": 320, "judge": "j",
                     "device_name": "CPU", "critic_steps_per_gen_step": 1.0, "train_images_per_s": 100.0 + i,
                     "peak_host_rss_bytes": 2 ** 30, "reached_target": False, "final_acc": 500.0, "best_acc": 500.0})
    boards = dict(report_gan.gan_boards(pd.DataFrame(rows), None))
    inplace = next(df for t, df in boards.items() if t.startswith("GAN in-place effect"))
    prec = next(df for t, df in boards.items() if t.startswith("GAN precision effect"))
    assert len(inplace) == 2 and inplace.configuration.is_unique
    assert set(inplace.configuration.str.extract(r"\b(fp32|bf16)\b")[0]) == {"fp32", "bf16"}
    assert len(prec) == 2 and prec.configuration.is_unique
    assert set(prec.configuration.str.extract(r"\b(inplace|out-of-place)\b")[0]) == {"inplace", "out-of-place"}


def test_the_target_help_says_a_gan_target_is_a_distance():
    p = bench("run", "--help", check=0)
    text = " ".join(p.stdout.split())
    assert "at or below" in text and "FD" in text


def test_help_with_a_gan_workload_shows_the_gans_values_as_the_defaults():
    text = " ".join(bench("run", "--workload", "wgan", "--help", check=0).stdout.split())
    assert "defaults shown: the wgan workload's" in text
    assert "(default: dcgan)" in text and "(default: 100)" in text and "(default: 0.94)" not in text


def test_a_gan_sweep_reports_its_fd_not_an_accuracy(small_data, tmp_path):
    s = tmp_path / "g.toml"
    s.write_text('[sweep]\nname = "g"\nseeds = [0]\n[base]\nworkload = "dcgan"\nmodel = "dcgan"\n'
                 'model_kwargs = { nf = 8, nz = 16 }\nbatch_size = 40\nepochs = 1\ntarget = 1000.0\nlr = 2e-4\n'
                 'weight_decay = 0.0\ndevice = "cpu"\nprecision = "bf16"\n')
    p = bench("sweep", s, "--results", tmp_path / "r", "--data", small_data,
              env={"BENCH_JUDGE": json.dumps(TINY_JUDGE)}, check=0)
    assert "final fd " in p.stderr and "final acc" not in p.stderr


def test_a_time_limit_while_the_judge_trains_is_the_gan_runs_timeout(small_data, tmp_path):
    """The judge trains in a nested run on first use, which takes the GAN run's stop (its time limit's
    SIGTERM, a Ctrl-C) for its own: the GAN run must still record itself timed out, not exit as bad input
    with no row."""
    env = {"BENCH_JUDGE": json.dumps({**TINY_JUDGE, "epochs": 400})}  # minutes: the limit comes first
    p = bench("run", "--workload", "wgan", *GAN, "--time-limit", "8", "--no-progress-bar", "--data", small_data,
              "--results", tmp_path / "r", env=env, check=1)
    run = pd.read_parquet(tmp_path / "r" / "runs").iloc[0]
    assert run.status == "timeout" and "time limit" in run.error, (run.error, p.stderr[-2000:])
    assert "Traceback" not in p.stderr
