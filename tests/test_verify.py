"""`bench verify` names each inconsistency; `bench maxbatch` searches and records."""
import json
import shutil

import pandas as pd
import pytest

from bench import maxbatch
from bench.config import BenchError, RunConfig

from .conftest import bench


@pytest.fixture()
def copy(finished_sweep, tmp_path):
    _, results, _, _ = finished_sweep
    d = tmp_path / "results"
    shutil.copytree(results, d)
    return d


def edit_first_run(d, **changes):
    path = sorted((d / "runs").glob("*.parquet"))[0]
    row = pd.read_parquet(path)
    for k, v in changes.items():
        row[k] = v
    row.to_parquet(path, index=False)
    return path


def test_clean_results_pass(copy):
    p = bench("verify", copy)
    assert p.returncode == 0 and "0 problem(s)" in p.stderr


@pytest.mark.parametrize("changes,message", [
    (dict(time_to_target_s=1e9), "time_to_target_s 1000000000.000 > wall_time_s"),
    (dict(time_to_target_s=1e9), "time_to_target_s 1000000000.000 > train_time_s"),
    (dict(train_time_s=1e9), "train_time_s 1000000000.000 > wall_time_s"),
    (dict(final_acc=1.5), "final_acc 1.5 is outside [0, 1]"),
    (dict(best_acc=0.99), "best_acc 0.99 is not the best epoch's accuracy"),
    (dict(status="exploded"), "status 'exploded' is not one of"),
    (dict(epochs_completed=7), "epochs_completed 7 but the epoch file has 2 epochs"),
    (dict(schema_version=99), "unknown schema version 99"),
    (dict(reached_target=False), "reached_target disagrees"),
    (dict(tset_acc=0.5), "columns not in the schema (bench/columns.py): tset_acc"),  # an unknown column
    # a hand-edited or foreign file: named, never a traceback or a pass
    (dict(best_acc="high"), "columns of the wrong type: best_acc is"),
    (dict(schema_version="two"), "columns of the wrong type: schema_version is"),
    (dict(reached_target="yes"), "columns of the wrong type: reached_target is"),
    (dict(train_time_s=-5.0), "train_time_s -5 is negative"),
    # a required value left empty: null reached_target read as False and passed
    (dict(reached_target=None, time_to_target_s=None), "required columns without a value: reached_target"),
    (dict(device_name=None), "required columns without a value: device_name"),
    # a row edited after it ran: its numbers filed under a configuration that did not produce them
    (dict(lr=9.5), "is not the hash of the row's settings"),
    (dict(seed=77), "is not the hash of the row's settings"),
    (dict(config_key="0123456789abcdef"), "config_key 0123456789abcdef is not the hash"),
    # a time to target shorter than the training clock at the epoch it names
    (dict(time_to_target_s=0.001), "time_to_target_s 0.001 is not epoch"),
    # ...with the epoch it names removed, nothing pinned it
    (dict(time_to_target_s=0.001, epoch_reached=None), "time_to_target_s 0.001 but no epoch_reached"),
    # the leaderboard publishes the wall clock to target too
    (dict(wall_time_to_target_s=0.001), "wall_time_to_target_s 0.001 is not epoch"),
])
def test_each_inconsistency_is_named(copy, changes, message):
    path = edit_first_run(copy, **changes)
    p = bench("verify", copy)
    assert p.returncode == 1
    assert any(line.startswith(str(path)) and message in line for line in p.stdout.splitlines()), p.stdout


def test_missing_epoch_file_and_columns(copy):
    run = sorted((copy / "runs").glob("*.parquet"))[0]
    (copy / "epochs" / run.name).unlink()
    p = bench("verify", copy)
    assert p.returncode == 1 and "finished run has no epoch file" in p.stdout
    other = sorted((copy / "runs").glob("*.parquet"))[1]
    pd.read_parquet(other).drop(columns=["dataset"]).to_parquet(other, index=False)
    p = bench("verify", copy)
    assert "missing required columns: dataset" in p.stdout


def test_a_finished_run_with_an_empty_epoch_file_or_an_epoch_past_its_clock_is_named(copy):
    run = sorted((copy / "runs").glob("*.parquet"))[0]
    epochs = pd.read_parquet(copy / "epochs" / run.name)
    epochs.iloc[0:0].to_parquet(copy / "epochs" / run.name, index=False)
    edit_first_run(copy, epochs_completed=0, reached_target=False, time_to_target_s=None, epoch_reached=None,
                   best_acc=None, final_acc=None)
    p = bench("verify", copy)
    assert p.returncode == 1 and f"{run}: status ok but the epoch file has no epochs" in p.stdout, p.stdout
    epochs.assign(elapsed_s=epochs.elapsed_s * 1000).to_parquet(copy / "epochs" / run.name, index=False)
    edit_first_run(copy, epochs_completed=len(epochs))
    p = bench("verify", copy)
    assert "> train_time_s" in p.stdout and "an epoch's elapsed_s" in p.stdout, p.stdout


def test_runs_of_a_sweep_call_without_its_summary_are_noted(copy):
    p = bench("verify", copy)
    assert "no row in" not in p.stderr
    sid = pd.read_parquet(sorted((copy / "runs").glob("*.parquet"))[0]).sweep_run_id.iloc[0]
    for f in (copy / "sweeps").glob("*.parquet"):
        f.unlink()
    p = bench("verify", copy)
    assert p.returncode == 0 and f"4 run(s) name sweep call {sid}, which has no row in" in p.stderr


def test_a_missing_or_empty_directory_is_bad_input_not_a_pass(tmp_path):
    (tmp_path / "empty" / "logs").mkdir(parents=True)
    for d, message in ((tmp_path / "nowhere", "results directory not found"), (tmp_path / "empty", "no results in")):
        p = bench("verify", d)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and message in p.stderr, p.stderr


def test_search_doubles_then_bisects():
    calls = []

    def probe(cfg, b, limit):
        calls.append(b)
        return b <= 100, b * 10, ""

    best, peak, probes = maxbatch.search(RunConfig(), None, start=16, granularity=8, probe=probe, log=lambda m: None)
    assert best == 96 and peak == 960
    assert calls[:4] == [16, 32, 64, 128] and all(b % 8 == 0 for b in calls)
    best, _, _ = maxbatch.search(RunConfig(), None, start=16, granularity=1, probe=probe, log=lambda m: None)
    assert best == 100
    best, _, _ = maxbatch.search(RunConfig(), None, start=256, granularity=8, probe=probe, log=lambda m: None)
    assert best == 96
    none, _, _ = maxbatch.search(RunConfig(), None, start=16, granularity=8,
                                 probe=lambda c, b, l: (False, None, "x"), log=lambda m: None)
    assert none == 0


def test_search_probes_up_to_max_where_doubling_overshoots_it():
    # with --max 100 and 90 fitting, doubling stopped at 64 (128 > 100) and answered 64
    for limit, expected in ((1000, 100), (90, 90), (70, 70)):
        best, _, probes = maxbatch.search(RunConfig(), None, start=16, max_batch=100, granularity=1,
                                          probe=lambda c, b, l: (b <= limit, b, ""), log=lambda m: None)
        assert best == expected and not any(ok for b, ok, _, _ in probes if b == best + 1)
        assert all(b <= 100 for b, _, _, _ in probes)


def test_sizes():
    assert maxbatch.parse_size("16GiB") == 16 * 2**30 and maxbatch.parse_size("2000MB") == 2 * 10**9
    assert maxbatch.parse_size("1.5g") == 1_500_000_000
    assert maxbatch.parse_size("4096B") == 4096
    for bad in ("lots", "-1GiB", "3 parsecs", "0", "16"):  # a bare 16 is not 16 bytes: its unit is asked for
        with pytest.raises(BenchError, match="memory limit"):
            maxbatch.parse_size(bad)


def test_maxbatch_end_to_end_on_the_cpu(tmp_path):
    p = bench("maxbatch", "--model", "resnet9", "--model-kwargs", "width=0.125", "--device", "cpu",
              "--memory-limit", "1.2GiB", "--start", "64", "--max", "512", "--granularity", "64",
              "--results", tmp_path, check=0)
    best = int(p.stdout.strip().splitlines()[-1])
    row = pd.read_parquet(tmp_path / "maxbatch").iloc[0]
    assert row.max_batch == best and row.memory_limit_bytes == int(1.2 * 2**30)
    probes = json.loads(row.probes)
    fits = {b: ok for b, ok, _, _ in probes}
    assert fits[64] and best >= 64 and all(ok == (b <= best) for b, ok in fits.items())
    assert row.peak_mem_bytes_at_max <= 1.2 * 2**30
    p = bench("maxbatch", "--memory-limit", "lots", "--results", tmp_path)
    assert p.returncode == 2 and "memory limit must be" in p.stderr
    p = bench("maxbatch", "--model", "resnet9", "--model-kwargs", "width=0.125", "--device", "cpu",
              "--memory-limit", "1KB", "--start", "8", "--results", tmp_path / "none", check=0)
    assert p.stdout.strip() == "0" and "no batch fits: the smallest probe, 8, already exceeds" in p.stderr


def test_a_probe_that_breaks_for_another_reason_is_an_error_not_a_batch_that_does_not_fit():
    # On the H200 a probe died of a device-index bug and the search recorded "largest batch: 0".
    cfg = RunConfig(model="resnet9", model_kwargs={"width": 0.125, "no_such_setting": 1}, device="cpu")
    with pytest.raises(BenchError, match="other than memory"):
        maxbatch.probe_once(cfg, 8, None)
    ok, peak, note = maxbatch.probe_once(RunConfig(model="resnet9", model_kwargs={"width": 0.125}, device="cpu"), 8, None)
    assert ok and peak > 0


def test_a_fast_run_with_tta_off_verifies(small_data, tmp_path):
    """With TTA off the row's tta_views says 1 (the views evaluated) while the key hashed the recipe's
    6: the key check must read the row as its configuration was, not flag every such run as edited
    (the GPU suite's smoke ablation failed `bench verify` on all 8 of its fast runs)."""
    bench("run", "--recipe", "fast", "--no-tta", "--epochs", "2", "--batch-size", "200", "--device", "cpu",
          "--model-kwargs", "widths=[8,16,16]", "--no-compile", "--warmup-steps", "0", "--target", "0.2",
          "--data", small_data, "--results", tmp_path, "--no-progress-bar", check=0)
    p = bench("verify", tmp_path, check=0)
    assert "0 problem(s)" in p.stdout + p.stderr, p.stdout + p.stderr
