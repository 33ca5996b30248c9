"""The benchmark scripts run (their numbers are for people, not for asserts), and the GPU suite
passes in its CPU smoke mode."""
import json
import os
import re
import subprocess
import sys
import tarfile

import pandas as pd
import pytest

from .conftest import ROOT, shared_archive


def test_gpu_prepare_gathers_what_the_suite_carries(tmp_path):
    """The data archive, byte for byte, and airbench's wheel (here already built: no registry in tests)."""
    prep = str(ROOT / "benchmarks" / "gpu_prepare.sh")
    (tmp_path / ".whl").mkdir()
    (tmp_path / ".whl" / "airbench-0.1.8-py3-none-any.whl").write_bytes(b"built earlier")
    env = dict(os.environ, BENCH_DATA=str(shared_archive()), PYTHON=sys.executable)
    p = subprocess.run([prep, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / ".suite-data" / shared_archive().name).read_bytes() == shared_archive().read_bytes()
    env["BENCH_DATA"] = str(tmp_path / "nowhere.tar.xz")
    p = subprocess.run([prep, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "is not a file" in p.stderr


def test_gpu_suite_refuses_an_unknown_step(tmp_path):
    """README once named SUITE_STEPS=darknet, a step the suite does not have: it ran nothing, said nothing."""
    env = dict(os.environ, BENCH_DATA=str(tmp_path / "unused.tar.xz"), SUITE_STEPS="fingerprint,darknet")
    p = subprocess.run([str(ROOT / "benchmarks" / "gpu_suite.sh"), str(tmp_path / "out")], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "unknown step 'darknet'" in p.stderr
    assert "===" not in p.stdout


def test_gpu_suite_refuses_data_that_did_not_travel(tmp_path):
    """Data left behind (not carried with the checkout) failed every step after the fingerprint, one
    by one, on a machine whose minutes are few: one line before anything runs instead."""
    env = dict(os.environ, BENCH_DATA=str(tmp_path / ".suite-data" / "cifar10-jpeg.tar.xz"), SUITE_STEPS="fingerprint")
    p = subprocess.run([str(ROOT / "benchmarks" / "gpu_suite.sh"), str(tmp_path / "out")], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "not found" in p.stderr and "===" not in p.stdout


def test_gpu_suite_cpu_smoke(tmp_path):
    env = dict(os.environ, BENCH_DATA=str(shared_archive()), PYTHON=sys.executable,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    p = subprocess.run([str(ROOT / "benchmarks" / "gpu_suite.sh"), str(tmp_path / "out"), "--cpu-smoke"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=2700)  # 15 min on a busy CPU
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    assert "failed steps: none" in p.stdout
    out = tmp_path / "out"
    fp = json.loads((out / "fingerprint.json").read_text())
    assert fp["device"] == "cpu" and fp["torch_version"]
    for name, key in (("overhead", "median_ratio"), ("pipeline", "ratio"), ("inplace_memory", None)):
        doc = json.loads((out / "benchmarks" / f"{name}.json").read_text())
        assert doc["smoke"] and doc["fingerprint"]["hardware_id"]
        assert doc["settings"]["smoke"] and "data" in doc["settings"]  # defaults too, not only the command line
        if key:
            assert doc["figures"][key] > 0
    timed = json.loads((out / "benchmarks" / "pipeline.json").read_text())["figures"]["timed"]
    assert timed == {"harness_epochs": 1, "torchvision_batches": 2, "training_batch": 256, "training_steps": 2,
                     "torchvision_skipped": 1 + 2 * os.cpu_count()}  # start-up and the workers' prefetched batches
    runs = pd.read_parquet(out / "results" / "runs")
    assert len(runs) == 13 and set(runs.status) == {"ok"}  # 3 lesson-table + 2 dawn + 1 fast + 1 fast_muon + 3 + 3 ablation
    ablation = runs[runs.sweep == "fast-ablation"]  # the preset's shard 0/4, shrunk: the recipe and two ideas off
    assert sorted(ablation.bn_bias_lr_scale) == [1.0, 64.0, 64.0] and sorted(ablation.label_smoothing) == [0.0, 0.2, 0.2]
    assert set(ablation.epochs) == {1} and set(ablation.model_kwargs.map(lambda s: json.loads(s)["widths"][0])) == {8}
    muon_ablation = runs[runs.sweep == "fast-muon-ablation"]  # the same shard of fast_muon's preset
    assert sorted(muon_ablation.bn_weight_frozen) == [False, True, True] and set(muon_ablation.muon_lr) == {0.24}
    assert sorted(muon_ablation.label_smoothing) == [0.0, 0.2, 0.2] and set(muon_ablation.epochs) == {1}
    fast = runs[(runs.recipe == "fast") & (runs.sweep == "fast-gpu")]  # a sweep: a later run resumes it
    assert len(fast) == 1 and fast.tta_views.iloc[0] == 1 and set(runs[runs.recipe == "dawn"].tta_views) == {2}
    muon = runs[(runs.recipe == "fast_muon") & (runs.sweep == "fast-gpu")]
    assert len(muon) == 1 and muon.muon_lr.iloc[0] == 0.24 and muon.batch_size.iloc[0] == 256
    assert set(runs[runs.recipe == "dawn"].seed) == {0, 1}
    lesson = runs[runs.sweep == "lesson-smoke"]
    assert sorted(zip(lesson.inplace, lesson.seed)) == [(False, 0), (True, 0), (True, 1)]
    assert sorted(pd.read_parquet(out / "results" / "sweeps").sweep) == ["fast-ablation", "fast-gpu",
                                                                          "fast-muon-ablation", "lesson-smoke"]
    compiled = json.loads((out / "benchmarks" / "compile_speed.json").read_text())["figures"]["models"]["darknet"]
    assert [r["mode"] for r in compiled] == ["eager", "default"] and all(r["status"] == "ok" for r in compiled)
    assert compiled[0]["timed_compiles"] is None and compiled[1]["timed_compiles"] == 0
    mb = pd.read_parquet(out / "results" / "maxbatch")
    assert sorted(mb.inplace) == [False, True] and (mb.max_batch > 0).all()
    inf = pd.read_parquet(out / "results" / "inference")  # the seed-0 dawn model's DAWNBench latency
    seed0 = runs[(runs.recipe == "dawn") & (runs.seed == 0)].iloc[0]
    assert len(inf) == 1 and inf.run_id.iloc[0] == seed0.run_id and inf.images.iloc[0] == 200
    assert inf.top1_acc.iloc[0] == seed0.final_acc
    assert (out / "report" / "index.html").exists() and (out / "report" / "leaderboard.md").exists()
    with tarfile.open(out / "results.tgz") as tar:   # every row in one file, for a copy that keeps few
        packed = {n for n in tar.getnames() if n.startswith("./runs/")}
    assert packed == {f"./runs/{r}.parquet" for r in runs.run_id}
    gan = pd.read_parquet(out / "gan" / "results" / "runs")  # configs/gan.toml's shard 0/2, one precision
    assert sorted(gan.workload) == ["dcgan", "wgan"] and set(gan.sweep) == {"gan"} and set(gan.status) == {"ok"}
    assert set(gan.precision) == {"bf16"} and set(gan.inplace) == {True} and set(gan.limit_train) == {640}
    with tarfile.open(out / "gan-results.tgz") as tar:
        assert {n for n in tar.getnames() if n.startswith("./runs/")} == {f"./runs/{r}.parquet" for r in gan.run_id}


def test_gpu_suite_stopped_mid_step_packs_what_finished_and_the_next_call_resumes(tmp_path):
    """An outer `timeout` signals the suite's whole process group while the lesson's table runs. The
    results directory lies outside OUT (SUITE_RESULTS, as on a GPU machine), so results.tgz is all
    that comes back: it must hold the rows finished before the signal, each naming the commit given.
    The next run into the same results directory runs the cell that was cut short, and only it."""
    import signal
    import time

    res, out = tmp_path / "res", tmp_path / "out"
    env = dict(os.environ, BENCH_DATA=str(shared_archive()), PYTHON=sys.executable, SUITE_RESULTS=str(res),
               SUITE_STEPS="fingerprint,lesson", BENCH_GIT_COMMIT="feedc0de",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    suite = [str(ROOT / "benchmarks" / "gpu_suite.sh"), str(out), "--cpu-smoke"]
    with open(tmp_path / "log", "w") as log:
        p = subprocess.Popen(suite, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
        # the smoke table: seeds 0 and 1 in one process, then in-place off; stop that third run once it trains
        while p.poll() is None:
            logs = list((res / "logs").glob("darknet-*.log")) if (res / "logs").is_dir() else []
            if len(logs) == 2 and all("classify darknet" in f.read_text() for f in logs):
                os.killpg(p.pid, signal.SIGTERM)  # what `timeout` does when its time is up
                break
            time.sleep(0.5)
        p.wait()
    text = (tmp_path / "log").read_text()
    assert p.returncode == 143 and "stopped by SIGTERM" in text, text[-3000:]
    runs = pd.read_parquet(res / "runs")
    assert list(runs.status).count("ok") == 2 and set(runs.git_commit) == {"feedc0de"}, text[-3000:]
    with tarfile.open(out / "results.tgz") as tar:
        packed = {n for n in tar.getnames() if n.startswith("./runs/")}
    assert packed == {f"./runs/{r}.parquet" for r in runs.run_id}
    p = subprocess.run(suite, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    assert p.returncode == 0 and "failed steps: none" in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]
    ok = pd.read_parquet(res / "runs").query("status == 'ok'")
    assert sorted(zip(ok.inplace, ok.seed)) == [(False, 0), (True, 0), (True, 1)]


def test_gpu_suite_stops_a_step_at_its_own_deadline_and_still_reports(tmp_path):
    """SUITE_BUDGET_S bounds the suite itself: a step still running when only the report's share
    (SUITE_END_S) is left is stopped, not counted as failed, and the report and the packing follow."""
    import shutil
    import signal

    res, out = tmp_path / "res", tmp_path / "out"
    shutil.copytree(ROOT / "results" / "h200", res)  # a GPU call resumes the committed rows
    env = dict(os.environ, BENCH_DATA=str(shared_archive()), PYTHON=sys.executable, SUITE_STEPS="fingerprint,lesson",
               SUITE_RESULTS=str(res), SUITE_BUDGET_S="20", SUITE_END_S="0",
               BENCH_FAULT="hang:0",  # the table's first run never ends: a quiet machine finished it in 17 s
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    p = subprocess.Popen([str(ROOT / "benchmarks" / "gpu_suite.sh"), str(out), "--cpu-smoke"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, start_new_session=True)
    try:
        p.stdout, p.stderr = p.communicate(timeout=600)
    except subprocess.TimeoutExpired:  # the hung run would never end: kill it with the suite
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail("the suite did not stop its hung step at SUITE_BUDGET_S")
    assert p.returncode == 0 and "failed steps: none" in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]
    # the hung table is stopped at the deadline (or, on a crowded machine, not started)
    assert re.search(r"=== time budget: (skipping )?lesson", p.stdout), p.stdout[-3000:]
    assert (out / "report" / "leaderboard.md").exists() and (out / "results.tgz").exists()


def test_gpu_suite_starts_no_step_that_would_run_into_the_report_share(tmp_path):
    """On a GPU (here: the GPU mode's budget checks, which run before anything needs CUDA), a step
    that takes about 240 s is not started with 280 s left: 60 of them are the report's (SUITE_END_S),
    where the suite would stop it half-done and keep nothing of it."""
    import shutil

    res = tmp_path / "res"
    shutil.copytree(ROOT / "results" / "h200", res)
    env = dict(os.environ, BENCH_DATA=str(shared_archive()), PYTHON=sys.executable, SUITE_STEPS="compile",
               SUITE_RESULTS=str(res), SUITE_BUDGET_S="280", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    p = subprocess.run([str(ROOT / "benchmarks" / "gpu_suite.sh"), str(tmp_path / "out")], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=1800)
    assert "=== time budget: skipping compile" in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.returncode == 0 and "failed steps: none" in p.stdout
    # a spent budget says nothing of the steps not asked for (it once said "skipping compile" in a
    # call that never meant to run it)
    env.update(SUITE_STEPS="fingerprint", SUITE_BUDGET_S="1")
    p = subprocess.run([str(ROOT / "benchmarks" / "gpu_suite.sh"), str(tmp_path / "out2")], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=1800)
    assert p.returncode == 0 and "time budget" not in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]


def test_airbench_gets_the_same_images_in_its_format(small_data, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch

    from airbench_side_by_side import export
    from bench import data
    ds = data.load(str(small_data))
    d = export(ds, tmp_path)
    train = torch.load(d / "train.pt", weights_only=True)
    assert train["images"].shape == (600, 32, 32, 3) and train["images"].dtype == torch.uint8
    pairs = lambda x, y: sorted((int(c), bytes(i.numpy())) for i, c in zip(x, y))  # noqa: E731
    assert pairs(train["images"].permute(0, 3, 1, 2), train["labels"]) == pairs(ds.train_x, ds.train_y)
    assert train["classes"][0] == "airplane"
    # airbench whitens from its first 5,000 train images: they must not be one class, as the harness's
    # class-by-class decode order has them (here the first 60, one class's worth)
    assert set(ds.train_y[:60].tolist()) == {0} and len(set(train["labels"][:60].tolist())) >= 8
    assert torch.load(d / "test.pt", weights_only=True)["images"].shape == (200, 32, 32, 3)


def test_airbench_cpu_port_records_a_run(real_members, tmp_path):
    """airbench's own train94 runs on the CPU (fp32, its CUDA calls redirected) and lands as a
    verified row that says it is the CPU port. Real images, each train image twice so that
    airbench's 1024-image batches (it drops the last partial batch) get one full batch."""
    import pytest

    pytest.importorskip("airbench")
    from .conftest import write_archive
    doubled = {k: v + [(f"again-{n}", b) for n, b in v] if k[0] == "train" else v for k, v in real_members.items()}
    archive = write_archive(tmp_path / "doubled.tar", doubled)
    script = str(ROOT / "benchmarks" / "airbench_side_by_side.py")
    res = tmp_path / "res"
    env = dict(os.environ, BENCH_CACHE=str(tmp_path / "cache"))
    p = subprocess.run([sys.executable, script, "--device", "cpu", "--data", str(archive), "--results", str(res),
                        "--runs", "2", "--epochs", "2", "--seed", "7", "--out", str(tmp_path / "ab.json")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    runs = pd.read_parquet(res / "runs").sort_values("seed")
    assert list(runs.seed) == [7, 8] and set(runs.status) == {"ok"}
    assert set(runs.config_key) == {"airbench94-cpu-fp32"} and set(runs.precision) == {"fp32"}
    assert all("CPU" in json.loads(k)["port"] for k in runs.model_kwargs)
    assert set(runs.train_images) == {1200} and set(runs.test_images) == {200} and set(runs.device) == {"cpu"}
    assert runs.final_acc.between(0, 1).all() and (runs.train_time_s > 0).all()
    # contention over the timed call, as the harness's own rows record it (the report's notes read it)
    assert runs.other_cpu_frac.between(0, 1).all() and runs.cpu_steal_frac.between(0, 1).all()
    assert runs.load_avg.notna().all()
    # its FLOPs per image as fast_flops.py counts them (airbench94: 0.68 GFLOP with the whitening bias
    # frozen, 0.71 while it trains, as in all of these 2-epoch runs), and what it achieved with them
    assert runs.flops_per_image.between(0.7e9, 0.75e9).all(), list(runs.flops_per_image)
    assert (runs.achieved_tflops - runs.flops_per_image * runs.train_images_per_s / 1e12).abs().max() < 1e-9
    # issue #13's fair side by side: both clocks (airbench's CUDA events do not exist on the CPU
    # port: null, said so), the views of the accuracy check, the images it really trained on
    assert "airbench_event_time_s" in runs and runs.airbench_event_time_s.isna().all()
    assert set(runs.tta_views) == {6} and (runs.setup_time_s >= runs.data_time_s).all()
    trained = runs.train_images_per_s * runs.train_time_s   # 2 epochs of its 1 batch: 2 steps x 1024
    assert ((trained - 2048).abs() < 1e-6).all(), list(trained)
    # --out: the same figures as the rows, with the command and the fingerprint
    doc = json.loads((tmp_path / "ab.json").read_text())
    assert "--seed 7" in doc["command"] and doc["fingerprint"]
    assert [(r["seed"], r["final_acc"]) for r in doc["figures"]["runs"]] == list(zip(runs.seed, runs.final_acc))
    v = subprocess.run([sys.executable, "-m", "bench", "verify", str(res)], capture_output=True, text=True, cwd=ROOT)
    assert v.returncode == 0, v.stdout + v.stderr
    # --resume (the GPU suite's): a call cut short and run again trains only the seeds with no row yet;
    # other views are another measurement, so their seeds still run
    again = [sys.executable, script, "--device", "cpu", "--data", str(archive), "--results", str(res),
             "--epochs", "2", "--seed", "7", "--resume"]
    p = subprocess.run(again + ["--runs", "3"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert p.returncode == 0 and "2 of 3 seeds already recorded" in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]
    p = subprocess.run(again + ["--runs", "1", "--tta-views", "2"], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=600)
    assert p.returncode == 0 and "0 of 1 seeds already recorded" in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]
    runs = pd.read_parquet(res / "runs")
    assert sorted(zip(runs.seed, runs.tta_views)) == [(7, 2), (7, 6), (8, 6), (9, 6)]


def test_airbench_without_a_gpu_says_so_in_one_line(small_data, tmp_path):
    script = str(ROOT / "benchmarks" / "airbench_side_by_side.py")
    p = subprocess.run([sys.executable, script, "--device", "cuda", "--data", str(small_data),
                        "--results", str(tmp_path / "r")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode != 0 and "--device cpu" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "r").exists()


def test_airbench_event_clock_sums_what_airbench_sums():
    """airbench's own time is the sum of its events' elapsed_time calls; EventClock keeps it."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from airbench_side_by_side import EventClock, train_steps

    class FakeEvent:  # stands in for torch.cuda.Event (this test's own; no GPU here)
        def __init__(self, enable_timing=False):
            self.t = 0.0

        def record(self, t=0.0):
            self.t = t

        def elapsed_time(self, end):
            return end.t - self.t

    clock = EventClock(FakeEvent)
    a, b = clock.event(enable_timing=True), clock.event(enable_timing=True)
    for start, end in ((0.0, 250.0), (300.0, 1300.0)):
        a.record(start)
        b.record(end)
        assert a.elapsed_time(b) == end - start
    assert clock.total_ms == 1250.0
    assert train_steps(48, 9.9) * 1024 == 487_424   # not 9.9 x 50,000


def test_compile_speed_times_the_optimizer_steps_both_ways():
    """A mode's +unfused/+fused reaches `bench run`, so the GPU suite measures the fp16 sync's cost."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import compile_speed
    assert compile_speed.variant("eager") == ["--no-compile"]
    assert compile_speed.variant("eager+unfused") == ["--no-compile", "--no-fused"]
    assert compile_speed.variant("reduce-overhead+fused") == ["--compile", "--compile-mode", "reduce-overhead",
                                                              "--fused"]
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compile_speed.py"), "--modes", "eager+fuzed"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "unknown mode 'eager+fuzed'" in p.stderr and "Traceback" not in p.stderr


SCRIPTS = ["overhead", "pipeline", "inplace_memory", "compile_speed", "lesson_init", "judge_floor", "fast_flops",
           "sweep_efficiency", "airbench_side_by_side"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_shows_the_whole_docstring(name):
    """--help is where a new user learns what is timed and how to reproduce it: its first line alone
    stopped mid-sentence."""
    import ast
    script = ROOT / "benchmarks" / f"{name}.py"
    doc = ast.get_docstring(ast.parse(script.read_text()), clean=False)
    p = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    for line in doc.strip().splitlines()[:3]:
        assert line.strip() in p.stdout
    ignored = {"fast_flops": ["--smoke", "--data", "--device"], "sweep_efficiency": ["--device"]}.get(name, [])
    assert not [flag for flag in ignored if flag in p.stdout], "--help offers a flag the script ignores"


@pytest.mark.parametrize("name, args", [("lesson_init", ["--seeds", "a,b"]), ("judge_floor", ["--nf", "x"]),
                                        ("overhead", ["--reps", "0"]), ("pipeline", ["--batch", "0"]),
                                        ("compile_speed", ["--models", "nope"]),
                                        ("overhead", ["--smoke", "--data", "/nowhere/cifar.tar.xz"])])
def test_bad_input_is_one_line_and_exit_2(name, args):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert f"{name}.py: error:" in p.stderr.strip().splitlines()[-1]


def test_the_torchvision_clock_starts_after_the_prefetched_batches():
    """Its clock started after one batch while the workers' prefetched batches were ready: those
    counted as free. It skips 1 + 2 x workers now, and times only the batches it says it timed."""
    import types

    import torch
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import pipeline
    g = torch.Generator().manual_seed(0)  # synthetic images: this checks the counting, not a speed
    ds = types.SimpleNamespace(train_x=torch.randint(0, 256, (80, 3, 32, 32), dtype=torch.uint8, generator=g),
                               train_y=torch.zeros(80, dtype=torch.long), mean=(125.0,) * 3, std=(60.0,) * 3)
    rate, timed, skipped = pipeline.torchvision_pipeline(ds, torch.device("cpu"), 8, 4, 2)
    assert (timed, skipped) == (4, 5) and rate > 0
    rate, timed, skipped = pipeline.torchvision_pipeline(ds, torch.device("cpu"), 8, 50, 2)
    assert (timed, skipped) == (5, 5)  # as many as the images allow
    with pytest.raises(pipeline.BenchError, match="too few"):
        pipeline.torchvision_pipeline(ds, torch.device("cpu"), 16, 4, 2)


def test_a_benchmark_json_records_every_setting_defaults_included(tmp_path, monkeypatch):
    """The JSON held the command line only: a default (airbench's epochs, its target) went unrecorded."""
    import argparse
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import common
    monkeypatch.setattr(sys, "argv", ["airbench_side_by_side.py", "--runs", "2"])
    common.save(tmp_path / "x.json", "x", {"a": 1}, "cpu", argparse.Namespace(runs=2, epochs=9.9, target=0.9))
    doc = json.loads((tmp_path / "x.json").read_text())
    assert doc["settings"] == {"runs": 2, "epochs": 9.9, "target": 0.9} and doc["command"].endswith("--runs 2")


def test_compile_speed_records_the_sizes_it_ran():
    """--smoke runs batch 64: the JSON said 512, the --batch-size default it ignored."""
    import argparse
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import compile_speed
    s = compile_speed.settings(argparse.Namespace(smoke=True, batch_size=512, precision=None), "cpu")
    assert s["batch_size"] == 64 and s["precision"] == "bf16" and s["runs_per_variant"] == 1
    s = compile_speed.settings(argparse.Namespace(smoke=False, batch_size=256, precision=None), "cuda")
    assert s["batch_size"] == 256 and s["limit_train"] == 50 * 256 and s["precision"] == "fp16"


def test_inplace_memory_says_at_which_batch_it_counted_saved_bytes(tmp_path):
    """The kept-for-backward bytes come from a batch of at most 32; the row's `batch` is the peak's."""
    out = tmp_path / "im.json"
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "inplace_memory.py"), "--device", "cpu", "--smoke",
                        "--batch", "48", "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    row = json.loads(out.read_text())["figures"][0]
    assert row["batch"] == 48 and row["saved_bytes_batch"] == 32 and row["saved_bytes_precision"] == "fp32"


def test_compile_speed_reports_a_crashed_variant_and_goes_on(tmp_path, monkeypatch):
    """A compiled run that crashes writes its run row but no epochs: the script died on the missing
    file and wrote no JSON for the variants that did run."""
    import types
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import compile_speed
    (tmp_path / "runs").mkdir()
    pd.DataFrame([{"run_id": "r1", "status": "crashed", "error": "Traceback...\nImportError: file too short"}]) \
        .to_parquet(tmp_path / "runs" / "r1.parquet")
    monkeypatch.setattr(compile_speed.subprocess, "run",
                        lambda *a, **k: types.SimpleNamespace(stdout='{"run_id": "r1"}\n', stderr="", returncode=0))
    a = types.SimpleNamespace(smoke=True, batch_size=512, precision=None, data=None)
    r = compile_speed.one(compile_speed.SMOKE_MODEL, "default", a, "cpu", str(tmp_path))
    assert r["mode"] == "default" and r["status"].startswith("crashed") and "file too short" in r["status"]
