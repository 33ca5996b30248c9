import re
from pathlib import Path

import pandas as pd
import pytest

from bench import sweep
from bench.config import BenchError

from .conftest import ROOT, TINY_SWEEP, bench, write

def cells_of(path):
    return sweep.expand(*sweep.load(path), check_gpu=False)


def test_expand_is_the_product_minus_exclusions_times_seeds(tmp_path):
    p = write(tmp_path, """
[sweep]
repeats = 3
[base]
model = "darknet"
model_kwargs = { blocks = [1, 1], nf = 8 }
[axes]
precision = ["fp32", "bf16"]
"model_kwargs.width" = [0.5, 1, 2]
[[exclude]]
precision = "fp32"
"model_kwargs.width" = 2
""")
    cells = cells_of(p)
    assert len(cells) == (2 * 3 - 1) * 3
    combos = {(c.cfg.precision, c.cfg.model_kwargs["width"], c.cfg.seed) for c in cells}
    assert ("fp32", 2, 0) not in combos and ("bf16", 2, 2) in combos
    assert all(c.cfg.model_kwargs["blocks"] == [1, 1] for c in cells)
    assert len({c.cfg.key() for c in cells}) == len(cells)


def test_another_model_starts_from_its_own_keywords(tmp_path):
    # The default (the lesson's Darknet) keywords must not leak into a model named in [base] or on an axis.
    on_base = cells_of(write(tmp_path, '[base]\nmodel = "resnet9"\n[axes]\n"model_kwargs.width" = [0.5, 1]\n'))
    assert [c.cfg.model_kwargs for c in on_base] == [{"width": 0.5}, {"width": 1}]
    on_axis = cells_of(write(tmp_path, '[axes]\nmodel = ["darknet", "resnet9"]\n'))
    assert [c.cfg.model_kwargs for c in on_axis] == [{"blocks": [1, 2, 4, 6, 3], "nf": 32, "width": 0.5}, {}]
    recipe = cells_of(write(tmp_path, '[base]\nrecipe = "wrn"\nmodel_kwargs = { k = 2 }\n'))
    assert recipe[0].cfg.model_kwargs == {"depth": 22, "k": 2}


def test_shards_split_the_matrix_exactly(tmp_path):
    p = write(tmp_path, TINY_SWEEP.format(epochs=1).replace("seeds = [0, 1]", "repeats = 5"))
    cells = cells_of(p)
    shards = [[c for c in cells if c.index % 3 == i] for i in range(3)]
    keys = [c.cfg.key() for s in shards for c in s]
    assert sorted(keys) == sorted(c.cfg.key() for c in cells) and len(set(keys)) == len(cells)
    assert sweep.parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "-1/2", "a/b", "1"):
        with pytest.raises(BenchError, match="--shard must be I/N"):
            sweep.parse_shard(bad)


def test_a_shard_with_no_cells_says_so_rather_than_that_every_cell_is_recorded(small_data, tmp_path):
    p = write(tmp_path, TINY_SWEEP.format(epochs=1))  # 2 configurations: shards 2 to 4 of 5 are empty
    out = bench("sweep", p, "--shard", "3/5", "--results", tmp_path / "r", "--data", small_data, check=0)
    assert "shard 3/5 has no cells" in out.stderr and "every cell is recorded" not in out.stderr, out.stderr
    assert not (tmp_path / "r" / "runs").exists()


BAD_FILES = [
    ("[base]\nmodel = 'vgg'\n", "unknown model 'vgg'"),
    ("[base]\nmodel = 'resnet9'\nmodel_kwargs = { depth = 3 }\n", "no keyword 'depth'"),
    ("[axes]\ncolour = ['red']\n", "unknown setting 'colour'"),
    ("[base]\nmodel = 'resnet9'\n[axes]\n\"model_kwargs.width\" = [1, 'x']\n", "keyword 'width' takes a number"),
    ("[axes]\nprecision = ['fp64']\n", "unknown precision 'fp64'"),
    ("[axes]\nbatch_size = [0]\n", "batch-size must be a positive integer"),
    ("[axes]\nworld_size = [-2]\n", "world-size must be a positive integer"),
    ("[axes]\ntarget = [1.5]\n", "target must be an accuracy in (0, 1]"),
    ("[axes]\ninplace = 'yes'\n", "must be a non-empty list"),
    ("[axes]\nprecision = ['fp16']\n[base]\ndevice = 'cpu'\n", "fp16 needs a CUDA GPU"),
    ("[axes]\ndevice = ['cuda']\n", "no CUDA GPU is visible"),
    ("[sweep]\nseeds = 'many'\n[base]\nepochs = 1\n", "seeds must be a non-empty list"),
    ("[sweep]\nnmae = 'x'\n", "unknown key 'nmae' in [sweep]"),
    ("[sweeps]\n", "unknown section [sweeps]"),
    ("", "no [base], [axes] or [[cells]], so nothing says what to run; add one"),
    ("sweep = 3\n[base]\nepochs = 1\n", "sweep must be a table, [sweep], got 3"),
    ("base = 'resnet9'\n", "base must be a table, [base], got 'resnet9'"),
    ("[base]\nepochs = 1\n[cells]\nprecision = 'fp32'\n", "cells must be tables, [[cells]], got {'precision'"),
    ("[sweep]\nname = 'x'\nseeds = [0]\n", "no [base], [axes] or [[cells]]"),
    ("[axes]\ninplace = [true]\n[[exclude]]\nprecision = 'fp32'\n", "not an axis"),
    ("[base]\nrecipe = 'fastest'\n", "unknown recipe 'fastest'"),
    ("[base]\nlr = 'high'\n", "lr must be a number"),
    ("[base]\nmodel = 'resnet9'\n[axes]\nprecision = fp32\n", "re:invalid TOML: .*line 4"),
    ("[sweep]\nrepeats = '3'\n[base]\nepochs = 1\n", "[sweep] repeats must be an integer, got '3'"),
    ("[sweep]\nrepeats = 2.5\n[base]\nepochs = 1\n", "[sweep] repeats must be an integer, got 2.5"),
    ("[sweep]\ntime_limit_s = 'ten'\n[base]\nepochs = 1\n", "[sweep] time_limit_s must be a number"),
    ("[sweep]\ndata = 5\n[base]\nepochs = 1\n", "[sweep] data must be a path, got 5"),
    ("[sweep]\nname = 5\n[base]\nepochs = 1\n", "[sweep] name must be a string, got 5"),
    ("[axes]\ninplace = [true]\n[[exclude]]\n", "[[exclude]] leaves out every cell"),
    ("[base]\nepochs = 1\n[[exclude]]\n", "[[exclude]] leaves out every cell"),
    # each of these ran fewer cells than the file lists, or a cell the user meant to leave out
    ("[axes]\nprecision = ['fp32', 'bf16']\n[[exclude]]\nprecision = 'fp23'\n",
     "[[exclude]] precision = 'fp23' matches no cell"),
    ("[axes]\ninplace = [true, false]\n[[exclude]]\ninplace = 1\n", "[[exclude]] inplace = 1 matches no cell"),
    ("[axes]\nprecision = ['bf16', 'fp32', 'bf16']\n", "axis 'precision' lists 'bf16' twice"),
    ("[base]\nepochs = 1\n[[cells]]\nlr = 0.1\n[[cells]]\nlr = 0.1\n", "[[cells]] {'lr': 0.1} is listed twice"),
    ("[axes]\neval_batch_size = [500, 1000]\n", "axis 'eval_batch_size' does not change what a run measures"),
    ("[axes]\ntime_limit_s = [60, 120]\n", "axis 'time_limit_s' does not change what a run measures"),
    ("[sweep]\nseeds = [0, 1]\n[axes]\nseed = [2, 3]\n", "axis 'seed' and [sweep] seeds [0, 1] both give seeds"),
]


def test_settings_the_data_cannot_meet_are_bad_input_before_any_cell(small_data, tmp_path):
    """A --limit-train beyond the data's 600 train images: one line and exit 2 from the sweep, as from
    `bench run`, rather than a crashed row for each cell that every child wrote on its own."""
    s = write(tmp_path, "[base]\nmodel = 'resnet9'\nbatch_size = 50\nepochs = 1\ndevice = 'cpu'\n"
                        "[axes]\nlimit_train = [100, 700]\n")
    proc = bench("sweep", s, "--results", tmp_path / "r", "--data", small_data)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].endswith("limit-train 700 exceeds the 600 train images")
    assert not (tmp_path / "r" / "runs").exists()


@pytest.mark.parametrize("text,message", BAD_FILES, ids=[m[:25] for _, m in BAD_FILES])
def test_bad_sweep_files_are_one_clear_line(text, message, tmp_path):
    p = write(tmp_path, text)
    proc = bench("sweep", p, "--results", tmp_path / "r")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    if message.startswith("re:"):
        assert re.search(message[3:], lines[0]), lines[0]
    else:
        assert message in lines[0], lines[0]
    assert not (tmp_path / "r").exists()


def test_missing_sweep_file_and_missing_data(tmp_path):
    p = bench("sweep", tmp_path / "none.toml", "--results", tmp_path / "r")
    assert p.returncode == 2 and "sweep file not found" in p.stderr
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    p = bench("sweep", s, "--results", tmp_path / "r", "--data", tmp_path / "nothing.tar.xz")
    assert p.returncode == 2 and "data not found" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "runs").exists()


def test_dry_run_prints_the_matrix_only(tmp_path):
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    p = bench("sweep", s, "--results", tmp_path / "r", "--dry-run", check=0)
    assert "4 runs" in p.stderr and "pending" in p.stderr
    assert not (tmp_path / "r").exists()


def test_dry_run_shows_what_each_explicit_cell_changes(tmp_path):
    """[[cells]] each change their own settings: the matrix has a column for every one of them
    (it used to take the first cell's only, so a preset like lesson-gpu.toml showed seeds alone)."""
    s = write(tmp_path, """
[sweep]
seeds = [0]
[base]
model = "darknet"
model_kwargs = { blocks = [1, 1], nf = 8 }
precision = "bf16"
device = "cpu"
[[cells]]
[[cells]]
precision = "fp32"
[[cells]]
inplace = false
batch_size = 64
""")
    p = bench("sweep", s, "--results", tmp_path / "r", "--dry-run", env={"COLUMNS": "200"}, check=0)
    assert p.returncode == 0, p.stderr
    header = next(line for line in p.stderr.splitlines() if "state" in line)
    for name in ("seed", "precision", "inplace", "batch_size"):
        assert name in header, header
    rows = [line for line in p.stderr.splitlines() if "pending" in line]
    assert len(rows) == 3 and "fp32" in rows[1] and "False" in rows[2] and "64" in rows[2]
    assert "fp32" not in rows[0] + rows[2] and "blank: the [base] value" in p.stderr


def test_retry_interrupted_reruns_only_cells_stopped_from_outside(tmp_path):
    """What a requeued Slurm task passes: cells whose runs were all interrupted run again; one that
    failed on its own (diverged, crashed) does not, nor one with an ok run. The recorded rows are
    written here, not trained (a test's stand-in for earlier runs)."""
    from datetime import datetime, timezone

    from bench import results
    from bench.row import base_row
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    res = tmp_path / "r"
    recorded = [["interrupted"], ["interrupted", "diverged"], ["crashed"], ["interrupted", "ok"]]
    for k, (cell, statuses) in enumerate(zip(cells_of(s), recorded)):
        for j, status in enumerate(statuses):
            row = base_row(cell.cfg, f"run-{k}-{j}", "cpu", 1, datetime.now(timezone.utc))
            results.write(res, "runs", row["run_id"], [{**row, "status": status}])
    p = bench("sweep", s, "--results", res, "--retry-interrupted", "--dry-run", check=0)
    assert "4 runs (3 already recorded, 1 to run)" in p.stderr, p.stderr
    p = bench("sweep", s, "--results", res, "--retry-failed", "--dry-run", check=0)
    assert "4 runs (1 already recorded, 3 to run)" in p.stderr, p.stderr
    assert [sweep._retry(False, True, st) for st in recorded] == [True, False, False, False]


def test_a_rerun_with_failed_cells_says_how_to_retry_them(tmp_path):
    """Every cell recorded, one of them failed: nothing runs, and the line says how to run the
    failed one again, as --status does. The recorded rows are written here, not trained."""
    from datetime import datetime, timezone

    from bench import results
    from bench.row import base_row
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    res = tmp_path / "r"
    for k, cell in enumerate(cells_of(s)):
        row = base_row(cell.cfg, f"run-{k}", "cpu", 1, datetime.now(timezone.utc))
        results.write(res, "runs", row["run_id"], [{**row, "status": "crashed" if k == 1 else "ok"}])
    p = bench("sweep", s, "--results", res, check=0)
    assert "nothing to do; every cell is recorded in" in p.stderr, p.stderr
    assert "(1 failed; --retry-failed runs them again)" in p.stderr, p.stderr


@pytest.mark.parametrize("args", [["--stop-after", "0"], ["--stop-after", "-5", "--dry-run"],
                                  ["--time-limit", "nan", "--dry-run"], ["--time-limit", "inf", "--dry-run"]],
                         ids=["0", "negative", "nan", "inf"])
def test_bad_seconds_fail_before_anything(args, tmp_path):
    """Checked with the other arguments: before the data (absent here) is looked at, before the
    matrix is printed and before anything is created."""
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    p = bench("sweep", s, "--results", tmp_path / "r", "--data", tmp_path / "absent.tar.xz", *args, check=2)
    assert f"{args[0]} must be a positive finite number of seconds" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_sweep_runs_every_cell_once(finished_sweep):
    _, results, p, _ = finished_sweep
    runs = pd.read_parquet(results / "runs")
    assert len(runs) == 4 and set(runs.status) == {"ok"} and runs.config_key.nunique() == 4
    assert sorted(zip(runs.inplace, runs.seed)) == [(False, 0), (False, 1), (True, 0), (True, 1)]
    assert set(runs.sweep) == {"tiny"}
    # a configuration's two seeds ran in one process: one log per process, the second seed's setup
    # was a reset (no data load, no build), and both rows name the same sweep invocation
    assert len(list((results / "logs").glob("*.log"))) == 2
    assert sorted(runs.seed_index) == [0, 0, 1, 1] and (runs[runs.seed_index == 1].data_time_s == 0).all()
    assert runs.sweep_run_id.nunique() == 1
    # in-place changes memory, not arithmetic: the same seed gives the same accuracy
    by = runs.set_index(["seed", "inplace"]).final_acc
    assert by[(0, True)] == by[(0, False)] and by[(1, True)] == by[(1, False)]


def test_rerun_skips_everything_in_seconds(finished_sweep):
    s, results, _, data = finished_sweep
    before = sorted(p.name for p in (results / "runs").iterdir())
    p = bench("sweep", s, "--results", results, "--data", data, check=0)
    # no clock: that nothing ran shows in the files and the message, not in a bound a busy machine breaks
    assert "nothing to do" in p.stderr and "starting run" not in p.stderr and "--retry-failed" not in p.stderr
    assert sorted(p.name for p in (results / "runs").iterdir()) == before
    # the file says div = 10: the same sweep spelt 10.0 is the same measurement, already recorded
    p = bench("sweep", s, "--results", results, "--data", data, "--set", "div=10.0", "--set", "pct=10.0", check=0)
    assert "nothing to do" in p.stderr and "starting run" not in p.stderr, p.stderr
    p = bench("sweep", s, "--results", results, "--data", data, "--set", "div=11", "--dry-run", check=0)
    assert "4 to run" in p.stdout + p.stderr, p.stdout + p.stderr  # another value is another configuration
    assert sorted(p.name for p in (results / "runs").iterdir()) == before


BROKEN_MODEL = """
from torch import nn


class Broken(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        raise ValueError("this network's forward is broken")


def broken(num_classes: int = 10):
    return Broken(num_classes)
"""


def test_a_crashed_cell_says_why(small_data, tmp_path):
    """A run that crashes records its traceback's tail; the sweep's line for it names the
    exception (the traceback's last line), not a line from inside torch."""
    model = write(tmp_path, BROKEN_MODEL, "broken.py")
    s = write(tmp_path, f'[sweep]\nname = "broken"\n[base]\nmodel = "{model}:broken"\nbatch_size = 50\n'
                        f'epochs = 1\ndevice = "cpu"\n')
    p = bench("sweep", s, "--results", tmp_path / "r", "--data", small_data, check=0)
    runs = pd.read_parquet(tmp_path / "r" / "runs")
    assert list(runs.status) == ["crashed"] and "Traceback" not in runs.error.iloc[0].splitlines()[0]
    assert "seed=0: crashed (ValueError: this network's forward is broken) [0 ok, 1 failed" in p.stderr, p.stderr


def test_a_crashed_seed_leaves_one_row_per_seed(small_data, tmp_path):
    """The seeds after a crashed one run in a fresh process under the run ids the sweep gave them:
    under new ids the sweep found no row for them and ran each of them a second time."""
    model = write(tmp_path, BROKEN_MODEL, "broken.py")
    s = write(tmp_path, f'[sweep]\nname = "broken"\nseeds = [0, 1]\n[base]\nmodel = "{model}:broken"\n'
                        f'batch_size = 50\nepochs = 1\ndevice = "cpu"\n')
    p = bench("sweep", s, "--results", tmp_path / "r", "--data", small_data, check=0)
    runs = pd.read_parquet(tmp_path / "r" / "runs")
    assert sorted(runs.seed) == [0, 1] and set(runs.status) == {"crashed"}, runs[["run_id", "seed"]]
    acc = pd.read_parquet(tmp_path / "r" / "sweeps").iloc[0]
    assert acc.runs == 2, p.stderr


def test_world_size_two_through_torchrun(small_data, tmp_path):
    common = ["--model", "resnet9", "--model-kwargs", "width=0.125", "--batch-size", "50", "--epochs", "3",
              "--lr", "0.2", "--div", "10", "--device", "cpu", "--precision", "bf16", "--target", "0.15",
              "--data", small_data, "--results", tmp_path]
    p = bench("run", *common, "--world-size", "2", check=0)
    assert p.stderr.count("recorded in") == 1, p.stderr  # the child's summary, not again by the parent
    bench("run", *common, check=0)
    runs = pd.read_parquet(tmp_path / "runs").set_index("world_size")
    assert sorted(runs.index) == [1, 2], "exactly one row per run, whatever the process count"
    two, one = runs.loc[2], runs.loc[1]
    assert two.status == "ok" and two.batch_size == 50 and two.batch_size_scope == "global"
    assert two.train_images == one.train_images == 600
    assert abs(two.final_acc - one.final_acc) <= 0.1
    ep = pd.read_parquet(tmp_path / "epochs")
    assert (ep.groupby("run_id").size() == 3).all()


def test_configs_presets_expand(tmp_path):
    presets = sorted((ROOT / "configs").glob("*.toml"))
    assert len(presets) >= 9
    for path in presets:
        cells = sweep.expand(*sweep.load(path), check_gpu=True)
        assert cells, path.name
    smoke = sweep.expand(*sweep.load(ROOT / "configs" / "smoke.toml"), check_gpu=False)
    assert len({c.cfg.seed for c in smoke}) >= 2 and len({c.cfg.inplace for c in smoke}) == 2
    lesson = sweep.expand(*sweep.load(ROOT / "configs" / "lesson.toml"), check_gpu=True)
    assert {c.cfg.model_kwargs["width"] for c in lesson} == {0.5, 1, 2}
    assert {c.cfg.precision for c in lesson} == {"fp32", "fp16", "bf16"} and {c.cfg.inplace for c in lesson} == {True, False}
    assert all(c.cfg.model_kwargs["blocks"] == [1, 2, 4, 6, 3] for c in lesson)
    assert not any(c.cfg.nesterov for c in lesson)  # the lesson's fastai 0.7 SGD: plain momentum
    assert all(c.cfg.model_kwargs["bn_weight"] == "uniform" for c in lesson)  # and its PyTorch 0.3's init
    table = sweep.expand(*sweep.load(ROOT / "configs" / "lesson-gpu.toml"), check_gpu=True)
    as_written = [c.cfg for c in table if c.cfg.batch_size == 256]  # the lesson's notebook, right after the baseline
    assert as_written and not any(c.nesterov for c in as_written) and table[3].cfg.batch_size == 256
    assert all(c.model_kwargs["bn_weight"] == "uniform" for c in as_written)
    assert table[0].cfg.model_kwargs["bn_weight"] == "ones" and table[5].cfg.model_kwargs["bn_weight"] == "uniform"
    dawn = sweep.expand(*sweep.load(ROOT / "configs" / "dawnbench.toml"), check_gpu=True)
    per_config = pd.Series([c.cfg.key() for c in dawn]).groupby(
        [str({k: v for k, v in c.cfg.to_dict().items() if k != "seed"}) for c in dawn]).size()
    assert (per_config >= 5).all() and all(c.cfg.target == 0.94 for c in dawn)
    assert Path(ROOT / "configs").is_dir()


def test_the_sweep_accounts_for_its_device_time(finished_sweep):
    """One sweeps/ row per invocation, consistent with the runs it names, and printed at the end."""
    _, results, p, _ = finished_sweep
    sweeps = pd.read_parquet(results / "sweeps")
    runs = pd.read_parquet(results / "runs")
    assert len(sweeps) == 1
    s = sweeps.iloc[0]
    assert s.sweep_run_id == runs.sweep_run_id.iloc[0] and s.runs == 4 and s.ok_runs == 4 and s.processes == 2
    assert s.train_time_s == pytest.approx(runs.train_time_s.sum())
    assert s.eval_time_s == pytest.approx(runs.eval_time_s.sum())
    assert s.setup_time_s == pytest.approx(runs.setup_time_s.sum())
    assert s.efficiency == pytest.approx(s.train_time_s / s.wall_s)
    assert s.train_time_s + s.eval_time_s + s.setup_time_s + s.other_time_s == pytest.approx(s.wall_s)
    assert 0 < s.efficiency < 1 and not s.isolate_seeds
    line = re.search(r"device time: (\d+) s wall, (\d+) s timed training \((\d+)%\)", p.stderr)
    assert line and int(line[3]) == round(s.efficiency * 100), p.stderr[-800:]
    assert bench("verify", results).returncode == 0


def test_seeds_in_one_process_equal_seeds_in_separate_processes(finished_sweep, tmp_path):
    """Bitwise on the CPU: each seed's epoch losses and accuracies are the same whether its process
    trained another seed before it or not."""
    s, results, _, data = finished_sweep
    p = bench("sweep", s, "--results", tmp_path / "iso", "--data", data, "--isolate-seeds", check=0)
    iso_runs = pd.read_parquet(tmp_path / "iso" / "runs")
    assert (iso_runs.seed_index == 0).all() and pd.read_parquet(tmp_path / "iso" / "sweeps").processes.iloc[0] == 4

    def curves(d):
        runs = pd.read_parquet(d / "runs")[["run_id", "config_key"]]
        ep = pd.read_parquet(d / "epochs").merge(runs, on="run_id")
        return {k: g.sort_values("epoch")[["train_loss", "test_acc"]].values.tolist() for k, g in ep.groupby("config_key")}

    shared, isolated = curves(results), curves(tmp_path / "iso")
    assert shared.keys() == isolated.keys() and len(shared) == 4
    for key in shared:
        assert shared[key] == isolated[key], (key, shared[key], isolated[key], p.stderr[-500:])


def test_cells_without_axes_are_the_whole_list(tmp_path):
    """A file of [[cells]] and no [axes] (configs/fast-gpu.toml: one cell per recipe) runs those cells
    only: [base] alone (there, the default Darknet) is not an extra configuration."""
    p = write(tmp_path, """
[sweep]
seeds = [0, 1]
[base]
target = 0.5
[[cells]]
recipe = "cpu"
[[cells]]
recipe = "dawn"
""")
    assert [(c.cfg.recipe, c.cfg.seed) for c in cells_of(p)] == [("cpu", 0), ("cpu", 1), ("dawn", 0), ("dawn", 1)]
    gpu = sweep.expand(*sweep.load(ROOT / "configs" / "fast-gpu.toml"), check_gpu=True)
    assert [c.cfg.recipe for c in gpu] == ["fast"] * 10 + ["fast_muon"] * 10
    assert all(c.cfg.target == 0.90 and c.cfg.stop_at_target for c in gpu)


def test_explicit_cells_come_first_in_order_and_are_not_repeated(tmp_path):
    p = write(tmp_path, """
[sweep]
seeds = [0, 1]
[base]
model = "resnet9"
[[cells]]
precision = "bf16"
seeds = [0, 1, 2]
[[cells]]
inplace = false
[axes]
precision = ["fp32", "bf16"]
""")
    cells = cells_of(p)
    assert [(c.cfg.precision, c.cfg.inplace, c.cfg.seed) for c in cells[:5]] == [
        ("bf16", True, 0), ("bf16", True, 1), ("bf16", True, 2), ("fp32", False, 0), ("fp32", False, 1)]
    # the axes' product adds fp32 (in-place) seeds 0-1; its bf16 cells are already listed
    assert len(cells) == 7 and len({c.cfg.key() for c in cells}) == 7
    assert [c for c in sweep.groups_of(cells, False)][0] == cells[:3]


def test_set_overrides_every_cell_and_the_seeds(tmp_path):
    """--set forces a setting on every cell, over [base], [axes] and [[cells]] (so a preset can be
    shortened from the command line), and --set seeds replaces a [[cells]] block's own seeds too."""
    p = write(tmp_path, """
[sweep]
seeds = [0, 1]
[base]
model = "darknet"
model_kwargs = { blocks = [1, 1], nf = 8 }
epochs = 5
[[cells]]
seeds = [0, 1, 2]
[[cells]]
epochs = 7
precision = "fp32"
[axes]
"model_kwargs.width" = [0.5, 1]
""")
    plain = cells_of(p)
    assert len(plain) == 3 + 2 + 2 - 2 + 2  # (the axis' 0.5 cells repeat the first block's seeds 0-1)
    cells = sweep.expand(*sweep.load(p, ["epochs=2", "seeds=[3]", "model_kwargs.nf=4", "precision=bf16"]),
                         check_gpu=False)
    assert {c.cfg.epochs for c in cells} == {2} and {c.cfg.seed for c in cells} == {3}
    assert {c.cfg.precision for c in cells} == {"bf16"} and {c.cfg.model_kwargs["nf"] for c in cells} == {4}
    assert sorted(c.cfg.model_kwargs["width"] for c in cells) == [0.5, 1]  # the axis survives; duplicates go
    # the matrix and the progress lines show what runs, not the axis value --set replaced
    p = write(tmp_path, '[base]\nmodel = "resnet9"\n[axes]\nprecision = ["fp32", "bf16"]\ninplace = [true, false]\n')
    cells = sweep.expand(*sweep.load(p, ["precision=bf16"]), check_gpu=False)
    assert [(c.axes["precision"], c.axes["inplace"]) for c in cells] == [("bf16", True), ("bf16", False)]
    assert sweep.load(p, ["time_limit_s=60"])[1]["time_limit_s"] == 60


@pytest.mark.parametrize("arg,message", [
    ("epochs", "--set takes KEY=VALUE"),
    ("speed=3", "unknown setting 'speed'"),
    ("recipe=dawn", "--set cannot change the recipe"),
    ("seed=3", "give the seeds as a list, e.g. --set seeds=[3]"),
    ("precision=fp 16", "is not a value"),
    ("epochs=two", "epochs must be"),
    ("repeats=x", "[sweep] repeats must be an integer, got 'x'"),
    ("time_limit_s=abc", "[sweep] time_limit_s must be a number"),
])
def test_bad_set_is_one_clear_line(arg, message, tmp_path):
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    p = bench("sweep", s, "--results", tmp_path / "r", "--set", arg, "--dry-run", check=2)
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("error,shown", [
    ("Traceback\n  File x\ntorch._dynamo.exc.Unsupported: bad\n\nSet TORCHDYNAMO_VERBOSE=1 for more", "torch._dynamo.exc.Unsupported: bad"),
    ("UserWarning: w\nETA: 3s\nthe run process ended with signal SIGKILL", "the run process ended with signal SIGKILL"),
    ("  File x\ntorch.OutOfMemoryError: CUDA out of memory", "torch.OutOfMemoryError: CUDA out of memory"),
    (None, "-")])
def test_a_failed_cells_reason_is_its_exception_not_a_hint_or_a_warning(error, shown):
    from bench.sweep import _reason
    assert _reason(error) == shown
