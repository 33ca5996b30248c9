"""The WGAN's critic schedule as the lesson's loop runs it, the speed columns recomputed from the
epoch rows, and a GAN run that fails midway keeping the epochs it finished."""
import json

import pandas as pd
import pytest

from bench import schedule

from .conftest import bench
from .test_gan import TINY_JUDGE

GAN = ["--model", "dcgan", "--model-kwargs", "nf=8", "nz=16", "--device", "cpu", "--precision", "bf16",
       "--target", "1000", "--no-progress-bar"]


def lessons_loop(n, epochs, first):
    """The notes' train(niter, first) (../shared/seeds/001_*.txt), its data loop counted, not run."""
    gen_iterations, out = 0, []
    for _ in range(epochs):
        i, plan = 0, []
        while i < n:
            d_iters = 100 if (first and (gen_iterations < 25) or (gen_iterations % 500 == 0)) else 5
            j = 0
            while (j < d_iters) and (i < n):
                j += 1
                i += 1
            plan.append(j)
            gen_iterations += 1
        out.append(plan)
    return out


@pytest.mark.parametrize("n", [1, 7, 30, 101, 781, 1900])
@pytest.mark.parametrize("first", [False, True])
def test_the_wgan_critic_plan_is_the_lessons_loop(n, first, monkeypatch):
    monkeypatch.setattr(schedule, "FIRST_BURSTS", 25 if first else 0)  # the lesson ran first=False
    done, plans = 0, []
    for _ in range(3):
        plan, done = schedule.critic_plan(n, 5, done)
        plans.append(plan)
    assert plans == lessons_loop(n, 3, first)
    assert schedule.critic_plan(n, 1)[0] == [1] * n  # the DCGAN: one critic update per generator update


def test_gan_speed_columns_recompute_from_the_epoch_rows(small_data, tmp_path):
    """2 epochs of 600 images in batches of 20: 30 critic updates before the first generator update
    (a burst of 100, cut at the epoch's end), then 6 of 5."""
    res = tmp_path / "r"
    bench("run", "--workload", "wgan", *GAN, "--batch-size", "20", "--epochs", "2", "--data", small_data,
          "--results", res, env={"BENCH_JUDGE": json.dumps(TINY_JUDGE)}, check=0)
    run, ep = pd.read_parquet(res / "runs").iloc[0], pd.read_parquet(res / "epochs").sort_values("epoch")
    assert run.critic_steps_per_gen_step == pytest.approx(60 / 7)
    seconds = ep.elapsed_s.diff().fillna(ep.elapsed_s)
    assert (ep.train_images_per_s * seconds).round(6).tolist() == [600, 600]
    assert run.train_images_per_s == pytest.approx(1200 / run.train_time_s)
    gen_steps_per_s = run.train_images_per_s / (run.batch_size * run.critic_steps_per_gen_step)
    assert gen_steps_per_s == pytest.approx(7 / run.train_time_s)


@pytest.mark.parametrize("name", ["dcgan", "wgan"])
@pytest.mark.parametrize("fault, status", [("crash", "crashed"), ("nan", "diverged")])
def test_a_gan_run_that_fails_midway_keeps_its_finished_epochs(small_data, tmp_path, name, fault, status):
    res = tmp_path / "r"
    at = {"dcgan": 20, "wgan": 3}[name]  # in epoch 2: 15 steps an epoch; 1 then 3
    p = bench("run", "--workload", name, *GAN, "--batch-size", "40", "--epochs", "3", "--data", small_data,
              "--results", res, env={"BENCH_JUDGE": json.dumps(TINY_JUDGE), "BENCH_FAULT": f"{fault}:{at}"})
    assert p.returncode != 0
    run, ep = pd.read_parquet(res / "runs").iloc[0], pd.read_parquet(res / "epochs")
    assert run.status == status and run.epochs_completed == len(ep) and "Traceback" not in p.stderr
    # a crash ends epoch 2 unrecorded; NaN weights end it recorded, with no distance (it was a LinAlgError)
    assert ep.sort_values("epoch").fd.notna().tolist() == {"crashed": [True], "diverged": [True, False]}[status]
    # over the finished epochs: the WGAN's 15 batches of 40 in one burst, then 5, 5, 5
    assert run.critic_steps_per_gen_step == {"dcgan": 1, "wgan": {1: 15, 2: 30 / 4}[len(ep)]}[name]
