"""The benchmark scripts run (their numbers are for people, not for asserts), and the GPU suite
passes in its CPU smoke mode."""
import json
import os
import subprocess
import sys

import pandas as pd

from .conftest import ROOT, shared_archive


def test_gpu_suite_cpu_smoke(tmp_path):
    env = dict(os.environ, BENCH_DATA=str(shared_archive()), PYTHON=sys.executable,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    p = subprocess.run([str(ROOT / "benchmarks" / "gpu_suite.sh"), str(tmp_path / "out"), "--cpu-smoke"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    assert "failed steps: none" in p.stdout
    out = tmp_path / "out"
    fp = json.loads((out / "fingerprint.json").read_text())
    assert fp["device"] == "cpu" and fp["torch_version"]
    for name, key in (("overhead", "median_ratio"), ("pipeline", "ratio"), ("inplace_memory", None)):
        doc = json.loads((out / "benchmarks" / f"{name}.json").read_text())
        assert doc["smoke"] and doc["fingerprint"]["hardware_id"]
        if key:
            assert doc["figures"][key] > 0
    runs = pd.read_parquet(out / "results" / "runs")
    assert len(runs) == 6 and set(runs.status) == {"ok"}   # 4 darknet cells + 2 dawn seeds
    assert set(runs[runs.recipe == "dawn"].seed) == {0, 1}
    mb = pd.read_parquet(out / "results" / "maxbatch")
    assert sorted(mb.inplace) == [False, True] and (mb.max_batch > 0).all()
    assert (out / "report" / "index.html").exists() and (out / "report" / "leaderboard.md").exists()


def test_airbench_gets_the_same_images_in_its_format(small_data, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch

    from airbench_side_by_side import export
    from bench import data
    ds = data.load(str(small_data))
    d = export(ds, tmp_path)
    train = torch.load(d / "train.pt", weights_only=True)
    assert train["images"].shape == (600, 32, 32, 3) and train["images"].dtype == torch.uint8
    assert torch.equal(train["images"].permute(0, 3, 1, 2), ds.train_x)
    assert torch.equal(train["labels"], ds.train_y) and train["classes"][0] == "airplane"
    assert torch.load(d / "test.pt", weights_only=True)["images"].shape == (200, 32, 32, 3)
