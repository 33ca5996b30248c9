"""What the clocks and setup columns of a run row cover, on real runs in this process."""
import pytest
import torch

import bench
from bench.workloads import classify

SMALL = dict(model="resnet9", model_kwargs={"width": 0.125}, batch_size=100, epochs=1, target=0.3,
             precision="bf16", device="cpu", progress=False)


def test_a_seed_that_sets_up_again_records_its_setup(small_data, tmp_path, monkeypatch):
    """The first seed runs out of memory in its warm-up (an oom: the next seed runs in the same
    process). The next seed then loads the data, builds and warms up itself: its row says so, and
    does not pass for a later seed that only paid a reset."""
    warmup, calls = classify.Classify.warmup, []

    def oom_once(self, steps):
        calls.append(steps)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected in the warm-up)")
        return warmup(self, steps)

    monkeypatch.setattr(classify.Classify, "warmup", oom_once)
    first, second, third = bench.run(data=small_data, results=tmp_path, seeds=[0, 1, 2], warmup_steps=1, **SMALL)
    assert first["status"] == "oom" and second["status"] == third["status"] == "ok" and len(calls) == 2
    assert second["seed_index"] == 0 and third["seed_index"] == 1
    assert second["data_time_s"] > 0 and second["warmup_time_s"] > 0
    assert second["setup_time_s"] >= second["data_time_s"] + second["warmup_time_s"]
    assert third["data_time_s"] == 0 and third["warmup_time_s"] == 0
