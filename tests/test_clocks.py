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


@pytest.mark.parametrize("epochs", [0, 1], ids=["before-its-first-epoch", "after-an-epoch"])
def test_a_run_recorded_from_outside_has_no_wall_clock_beyond_what_it_recorded(epochs, tmp_path, monkeypatch):
    """A run process stopped (exit 130) before it recorded its run: the row made for it from outside
    keeps the run's own wall clock (from its first timed step, at its last recorded epoch), not the
    process's lifetime, which holds start-up, setup and any seeds trained before it in that process;
    the seed the process never started has no clock at all."""
    import sys

    from bench import isolate, results
    from bench.config import RunConfig

    if epochs:
        ep = results.new_row("epochs")
        ep.update(run_id="r0", epoch=1, elapsed_s=0.25, wall_s=0.5, test_acc=0.1)
        results.write(tmp_path, "epochs", "r0", [ep])
    monkeypatch.setattr(isolate, "command", lambda *a: [sys.executable, "-c", "import time; time.sleep(1); exit(130)"])
    cfg = RunConfig(model="resnet9", model_kwargs={"width": 0.125}, device="cpu", epochs=2)
    out = isolate._child(cfg, [(0, "r0"), (1, "r1")], None, tmp_path, None, "s", "sid", None, None, None, (), False)
    assert out["r0"]["status"] == "crashed" and out["r1"]["status"] == "interrupted"
    assert out["r0"]["wall_time_s"] == (0.5 if epochs else None)
    assert out["r1"]["wall_time_s"] is None


def test_setup_includes_the_reset_after_the_warm_up(small_data, tmp_path, monkeypatch):
    """Every seed's weights and optimiser are reset before its clock starts (the first seed's after its
    warm-up): that reset is setup for the first seed as for the later ones. The runner's clock is made to
    jump 1000 s inside each reset, so only a setup that covers the reset can hold it."""
    import types

    from bench import runner

    offset, real, reset = [0.0], runner.time.perf_counter, classify.Classify.reset
    monkeypatch.setattr(runner, "time", types.SimpleNamespace(perf_counter=lambda: real() + offset[0]))

    def slow_reset(self, seed):
        offset[0] += 1000.0
        return reset(self, seed)

    monkeypatch.setattr(classify.Classify, "reset", slow_reset)
    rows = bench.run(data=small_data, results=tmp_path, seeds=[0, 1], warmup_steps=1, **SMALL)
    assert [r["seed_index"] for r in rows] == [0, 1] and all(r["status"] == "ok" for r in rows)
    assert all(1000 <= r["setup_time_s"] for r in rows) and rows[0]["data_time_s"] > 0
    assert all(r["train_time_s"] < 1000 for r in rows)  # the jump stays off the training clock


@pytest.mark.parametrize("finished", [True, False], ids=["queue-drained", "queue-stuck"])
def test_a_run_stopped_mid_epoch_waits_a_bounded_time_for_its_queued_work(finished, small_data, tmp_path, monkeypatch):
    """Stopped from outside in its second step: the partial epoch counts, after waiting (at most 10 s:
    a stuck collective never finishes) for the device's queued work; if that wait gives up, the row
    says its training time leaves the queue out."""
    from bench import faults, meters, stops
    waits = []

    def stop(fault, step, loss):
        if step == 1:
            raise stops.Interrupted("interrupted by SIGTERM")
        return loss

    monkeypatch.setattr(faults, "inject", stop)
    monkeypatch.setattr(faults, "parse", lambda: ("crash", 99))
    monkeypatch.setattr(meters, "sync_within", lambda device, timeout_s: waits.append(timeout_s) or finished)
    row = bench.run(data=small_data, results=tmp_path, limit_train=400, warmup_steps=0, **SMALL)
    assert row["status"] == "interrupted" and waits == [10.0] and row["train_time_s"] > 0
    assert row["epochs_completed"] in (0, None)
    assert ("did not finish within 10 s" in row["error"]) is not finished, row["error"]


def test_sync_within_gives_up_on_a_queue_that_never_drains(monkeypatch):
    from bench import meters

    class Event:
        queries = 0

        def record(self, stream):
            pass

        def query(self):
            Event.queries += 1
            return Event.queries > 3 and drains

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: None)
    drains = True
    assert meters.sync_within("cuda:0", 5.0) and Event.queries == 4
    drains = False
    assert not meters.sync_within("cuda:0", 0.05)
    assert meters.sync_within("cpu", 0.0)  # nothing queued on a CPU


def _oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory (the test's)")


def test_a_crash_whose_device_cannot_even_be_waited_for_is_still_recorded(small_data, tmp_path, monkeypatch):
    """A crash that poisons the CUDA context makes the end-of-run wait for the device's queue raise too:
    the row is written all the same, crashed, and says the wait failed (the wait raises here on a CPU)."""
    from bench import faults, meters, results

    def crash(fault, step, loss):
        if step == 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered (the test's)")
        return loss

    def poisoned(device, timeout_s):
        raise RuntimeError("CUDA error: an illegal memory access was encountered (again)")

    monkeypatch.setattr(faults, "inject", crash)
    monkeypatch.setattr(faults, "parse", lambda: ("crash", 99))
    monkeypatch.setattr(meters, "sync_within", poisoned)
    row = bench.run(data=small_data, results=tmp_path, limit_train=400, warmup_steps=0, **SMALL)
    assert row["status"] == "crashed" and "illegal memory access was encountered (the test's)" in row["error"]
    assert "could not be waited for (RuntimeError: CUDA error: an illegal memory access" in row["error"]
    written = results.read(tmp_path, "runs")
    assert list(written.run_id) == [row["run_id"]] and list(written.status) == ["crashed"]


def test_an_epoch_cut_short_still_counts_its_syncs_and_compilations(monkeypatch):
    """An OOM or a stop in the middle of an epoch: the host syncs and torch.compile graphs its steps made
    still reach timed_syncs and timed_compiles (the sync debug mode is CUDA's: a stand-in here), and an
    epoch that ended is not counted twice, nor evaluation's compilations after it."""
    import warnings

    from bench import meters
    graphs = [3]
    monkeypatch.setattr(meters, "compiled_graphs", lambda: graphs[0])
    comp = meters.Compiles(True).start()
    comp.begin_epoch()
    graphs[0] += 1
    assert comp.end_epoch() == 1
    graphs[0] += 5  # evaluation's graphs
    assert comp.stop() == {"timed_compiles": 1}
    syncs, comp = meters.HostSyncs("cpu", set_mode=lambda mode: None).start(), comp.start()
    comp.begin_epoch()
    with pytest.raises(torch.OutOfMemoryError), syncs.steps():
        warnings.warn("called a synchronizing CUDA operation")
        graphs[0] += 2  # a recompilation on the clock
        _oom()
    assert syncs.stop() == {"timed_syncs": 1} and comp.stop() == {"timed_compiles": 2}


def test_the_warm_up_time_leaves_out_the_setups_queued_device_work(small_data, tmp_path, monkeypatch):
    """The setup (data to the device, the model's build) queues device work, which the warm-up's clock
    must not inherit: the device is synchronised before that clock starts. Here the setup queues 1000 s
    of "work" that the next synchronisation waits for."""
    import types

    from bench import meters, runner
    offset, queued, real = [0.0], [0.0], runner.time.perf_counter
    sync, setup = meters.sync, classify.Classify.setup
    monkeypatch.setattr(runner, "time", types.SimpleNamespace(perf_counter=lambda: real() + offset[0]))

    def waiting_sync(device):
        offset[0], queued[0] = offset[0] + queued[0], 0.0
        return sync(device)

    def queueing_setup(self, ds):
        queued[0] = 1000.0
        return setup(self, ds)

    monkeypatch.setattr(meters, "sync", waiting_sync)
    monkeypatch.setattr(classify.Classify, "setup", queueing_setup)
    row = bench.run(data=small_data, results=tmp_path, warmup_steps=1, **SMALL)
    assert row["status"] == "ok" and row["setup_time_s"] >= 1000 and row["warmup_time_s"] < 1000


def test_a_run_that_fails_before_its_clock_leaves_no_gpu_sampler_running(small_data, tmp_path, monkeypatch):
    """The GPU sampler (a thread) starts with the run's meters, before its clock: seeds that fail in
    between (an OOM, a stop) must stop it, and a second start must not leave the first one sampling.
    NVML is a stand-in here; the thread is real."""
    import types

    from bench import meters, runner
    fake = types.SimpleNamespace(
        nvmlDeviceGetTotalEnergyConsumption=lambda h: 0, nvmlDeviceGetPowerUsage=lambda h: 1000,
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=1), nvmlDeviceGetClockInfo=lambda h, c: 1,
        NVML_CLOCK_SM=0, nvmlDeviceGetCurrentClocksEventReasons=lambda h: 0)
    threads = []

    class Gpu(meters.Nvml):
        def __init__(self, device):
            super().__init__(device, interval=0.01)
            self.handle, self.nvml = "gpu", fake

        def start(self):
            super().start()
            threads.append(self._thread)
            return self

    monkeypatch.setattr(meters, "Nvml", Gpu)
    monkeypatch.setattr(runner, "RunProgress", _oom)  # after the sampler started, before the clock
    rows = bench.run(data=small_data, results=tmp_path, seeds=[0, 1], **SMALL)
    assert [r["status"] for r in rows] == ["oom", "oom"] and len(threads) == 2
    assert not any(t.is_alive() for t in threads)
    gpu = Gpu("cpu").start()
    gpu.start()
    assert not threads[-2].is_alive() and threads[-1].is_alive()
    gpu.stop()


def test_a_row_that_cannot_be_built_leaves_no_time_limit_behind(small_data, tmp_path, monkeypatch):
    """The row's fingerprint raises (there is no row to record that in): the caller gets the exception,
    and the run's time limit is cancelled rather than left to SIGTERM the caller's process later."""
    import threading

    from bench import measure

    def broken(*args, **kwargs):
        raise RuntimeError("the fingerprint failed (the test's)")

    monkeypatch.setattr(measure, "fingerprint", broken)
    before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="the test's"):
        bench.run(data=small_data, results=tmp_path, time_limit_s=3600, **SMALL)
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t not in before]
    armed = [t for t in timers if not t.finished.is_set()]
    for t in armed:
        t.cancel()  # else this test process is sent SIGTERM in an hour
    assert not armed
