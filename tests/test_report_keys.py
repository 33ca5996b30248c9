"""What makes two rows one configuration, one machine, one task on the leaderboard: the keys the
report groups and ranks by, checked on small frames built here."""
import math

import pandas as pd
import pytest

from bench import report


def _row(**over):
    row = {"dataset": "cifar10-jpeg", "train_images": 50000, "workload": "classify", "model": "resnet9",
           "model_kwargs": "{}", "precision": "bf16", "inplace": True, "batch_size": 512, "epochs": 10,
           "target": 0.94, "lr": 0.4, "cutout": 0, "translate": 4, "whiten": False, "lookahead_every": 0,
           "device_name": "CPU: X", "gpu_count": 0, "hardware_id": "hw1", "code_hash": "c1", "status": "ok"}
    row.update(over)
    return row


def test_a_row_from_before_a_setting_existed_is_the_same_configuration_at_its_default():
    """Schema-1 rows have no `workload`, `translate`, `whiten`...: they ran at the defaults, so a run of
    the same configuration today has their config_id (and so the code split is said, not hidden)."""
    new = _row()
    old = {k: v for k, v in _row(code_hash=None).items() if k not in ("workload", "translate", "whiten", "lookahead_every")}
    runs = report.group_runs(pd.DataFrame([new, old]))
    assert runs.config_id.nunique() == 1 and runs.group_id.nunique() == 2
    moved = report.group_runs(pd.DataFrame([new, {**old, "translate": 2}]))
    assert moved.config_id.nunique() == 2, "a setting away from its default stays another configuration"


def test_a_groups_id_does_not_depend_on_the_other_files_read():
    """An int setting read beside a row that lacks it turns float in pandas (6 -> 6.0); the group's id,
    which `--entry` takes, must stay the same."""
    alone = report.group_runs(pd.DataFrame([_row(cutout=6)]))
    frame = pd.DataFrame([_row(cutout=6), _row(model="darknet", cutout=None)])
    assert frame.cutout.dtype == float
    beside = report.group_runs(frame)
    assert beside.group_id.iloc[0] == alone.group_id.iloc[0]
    assert beside.config_id.iloc[0] == alone.config_id.iloc[0]


def test_cost_and_latency_rank_within_a_task():
    """A cheap run to 35% is not ahead of a dearer one to 94%: each task (data set, train images, target)
    ranks on its own, on the cost board and on the inference board."""
    board = pd.DataFrame({"group_id": ["a", "b", "c"], "ranked": True, "cost_to_target_usd": [0.5, 0.01, 0.2],
                          "dataset": "cifar10-jpeg", "train_images": 50000, "target": [0.94, 0.35, 0.94]})
    board["task"] = [report._key_str(r) for r in board[report.TASK].itertuples(index=False)]
    cost = report.cost_table(board)
    assert dict(zip(cost.group_id, cost.cost_rank)) == {"c": 1, "a": 2, "b": 1}
    runs = board[["group_id", "dataset", "train_images", "target"]].assign(
        run_id=["ra", "rb", "rc"], batch_size=512, epochs=10)
    inference = pd.DataFrame({"run_id": ["ra", "rb", "rc"], "dataset": "cifar10-jpeg", "top1_acc": [0.95, 0.40, 0.30],
                              "latency_p50_ms": [2.0, 0.5, 1.0]})
    lat = report.latency_table(runs, inference)
    ranks = lat.set_index("run_id")["rank"]
    assert ranks["ra"] == 1 == ranks["rb"] and pd.isna(ranks["rc"]), "rc missed its target: no rank"


def test_an_accuracy_difference_has_welchs_interval_and_a_single_run_borrows_the_other_sides_spread():
    from bench.report_stats import diff_ci95
    fast, airbench = [0.9059, 0.9061, 0.9070, 0.9054], [0.9046, 0.9041, 0.9061, 0.9074]
    assert diff_ci95(airbench, fast) == pytest.approx(0.00225, abs=0.00005)  # the README's -0.17..+0.28 pp
    assert diff_ci95([0.5], [0.2, 0.3, 0.4]) == pytest.approx(4.303 * 0.1 * (4 / 3) ** 0.5)
    assert math.isnan(diff_ci95([0.5], [0.6])) and math.isnan(diff_ci95([], [0.2, 0.3]))
    rows = [_row(inplace=i, final_acc=acc, seed=s, run_id=f"{i}{s}", reached_target=False, time_to_target_s=None,
                 train_images_per_s=100.0, seed_index=0, peak_host_rss_bytes=1e9)
            for i, accs in ((True, [0.50]), (False, [0.20, 0.30, 0.40])) for s, acc in enumerate(accs)]
    runs = report.group_runs(pd.DataFrame(rows))
    board = report.aggregate(runs, {})
    e = report.axis_effects(runs, board, report.CONFIG_COLUMNS).iloc[0]
    assert e["axis"] == "inplace" and e["acc_ci95"] == pytest.approx(4.303 * 0.1 * (4 / 3) ** 0.5)
    assert "same accuracy (±49.7 pp; one side has a single run)" in e["summary"]  # not ±24.8: A has no spread of 0


def test_a_cpu_run_on_fewer_threads_than_the_cores_is_another_machine():
    """A side-by-side pair runs one thread each on a two-core host: those runs' clock is half the
    machine's, so they must not pool with runs that had every core. A run on all cores keeps the
    machine's key (older groups keep their ids); a GPU run's host threads are not its compute."""
    full, half = _row(torch_threads=2, cpu_count=2), _row(torch_threads=1, cpu_count=2)
    gpu = _row(torch_threads=1, cpu_count=16, gpu_count=1, device_name="NVIDIA H200")
    ddp = _row(torch_threads=1, cpu_count=2, world_size=2)  # two one-thread processes: the whole machine
    runs = report.group_runs(pd.DataFrame([full, half, gpu, _row(), ddp]))
    assert list(runs.hardware_key) == ["hw1", "hw1/1thr", "hw1", "hw1", "hw1"], "no thread count: the machine's key"
    assert runs.config_id.iloc[:4].nunique() == 1 and runs.group_id.iloc[0] != runs.group_id.iloc[1]
    alone = report.group_runs(pd.DataFrame([full]))
    assert alone.group_id.iloc[0] == runs.group_id.iloc[0]
