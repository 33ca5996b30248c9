"""Sweeps on a real Slurm (one node on this machine: .ci/slurm-up.sh), and `--status`.

The Slurm tests skip where Slurm is not installed; CI sets BENCH_REQUIRE_SLURM=1 so that there a
missing Slurm fails instead. If Slurm is installed but not running, the fixture starts it (as root)
and stops what it started at the end."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench import sweep

from .conftest import ROOT, TINY_SWEEP, bench, write


def _unavailable(why):
    if os.environ.get("BENCH_REQUIRE_SLURM") == "1":
        pytest.fail(f"{why} (BENCH_REQUIRE_SLURM=1: these tests must run here)")
    pytest.skip(why)


def _node_up():
    p = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
    return p.returncode == 0 and re.search(r"^(idle|mixed|allocated|completing)", p.stdout, re.M)


@pytest.fixture(scope="session")
def slurm():
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        _unavailable("Slurm is not installed (apt-get install slurm-wlm munge; .ci/slurm-up.sh starts one node)")
    if _node_up():
        yield
        return
    if os.geteuid() != 0:
        _unavailable("Slurm is installed but no node is up, and starting one here needs root (.ci/slurm-up.sh)")
    up = subprocess.run([str(ROOT / ".ci" / "slurm-up.sh")], capture_output=True, text=True, timeout=120)
    if up.returncode != 0:
        _unavailable(f"could not start Slurm: {up.stderr.strip().splitlines()[-1:]}")
    yield
    if up.stdout.strip() == "started":
        subprocess.run([str(ROOT / ".ci" / "slurm-down.sh")], timeout=120)


def submit(sweep_file, results, data, *extra, env=None):
    p = bench("sweep", sweep_file, "--slurm", "--array", "2", "--results", results, "--data", data, *extra,
              env=env, check=0)
    m = re.search(r"submitted batch job (\d+)", p.stderr)
    assert m, p.stderr
    return m.group(1), p


def running(job):
    """Array tasks of `job` still queued or running."""
    p = subprocess.run(["squeue", "-h", "-j", job, "-o", "%i %T"], capture_output=True, text=True)
    return p.stdout.split("\n") if p.returncode == 0 and p.stdout.strip() else []


def wait_done(*jobs, results, timeout=900):
    t = time.monotonic()
    while any(running(j) for j in jobs):
        if time.monotonic() - t > timeout:
            subprocess.run(["scancel", *jobs])
            pytest.fail(f"jobs {jobs} still running after {timeout} s\n" + task_logs(results))
        time.sleep(1)


def task_logs(results):
    return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted((Path(results) / "logs").glob("slurm-*.out")))


def ok_rows_per_cell(results):
    runs = pd.read_parquet(Path(results) / "runs")
    return runs, runs[runs.status == "ok"].groupby("config_key").size()


def status_counts(sweep_file, results):
    p = bench("sweep", sweep_file, "--status", results, check=0)
    return json.loads(p.stdout), p.stderr


def test_an_array_of_two_runs_every_cell_exactly_once(slurm, small_data, tmp_path):
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    res = tmp_path / "r"
    job, p = submit(s, res, small_data)
    assert "#SBATCH --array=0-1" in p.stdout and '--shard "$SLURM_ARRAY_TASK_ID/2"' in p.stdout
    assert list((res / "slurm").glob("*.sbatch"))[0].read_text() == p.stdout  # the script submitted is the one shown
    wait_done(job, results=res)
    runs, ok = ok_rows_per_cell(res)
    logs = task_logs(res)
    assert len(runs) == 4 and len(ok) == 4 and set(ok) == {1}, logs
    for task in (0, 1):  # each task ran its own shard: two cells
        assert "2 ok, 0 failed, 0 skipped" in (res / "logs" / f"slurm-{job}_{task}.out").read_text(), logs
    counts, _ = status_counts(s, res)
    assert (counts["done"], counts["pending"], counts["running"], counts["failed"]) == (4, 0, 0, 0)
    bench("report", res, "--out", tmp_path / "rep", check=0)
    board = pd.read_csv(tmp_path / "rep" / "leaderboard.csv")
    assert board.runs.sum() == 4 and board.failed_runs.sum() == 0


def submit_with_task_1_held(s, res, data, env, first_attempt_only=False):
    """Submit the sweep's script, edited (as a user may edit it) so that task 1's first run stops
    after its first epoch (BENCH_FAULT=hang): a cancel or requeue then lands mid-run whatever the
    machine's speed. Returns the job id once that run has written its first epoch."""
    p = bench("sweep", s, "--slurm", "--array", "2", "--dry-run", "--results", res, "--data", data, env=env, check=0)
    assert not res.exists()  # a dry run writes nothing
    cond = '[ "$SLURM_ARRAY_TASK_ID" = 1 ]' + (' && [ "${SLURM_RESTART_COUNT:-0}" = 0 ]' if first_attempt_only else "")
    edited = p.stdout.replace("set -euo pipefail\n", f"set -euo pipefail\nif {cond}; then export BENCH_FAULT=hang:13; fi\n")
    (res / "logs").mkdir(parents=True)
    script = write(res.parent, edited, "job.sbatch")
    job = subprocess.run(["sbatch", "--parsable", script], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout.strip()
    log1 = res / "logs" / f"slurm-{job}_1.out"

    def training():
        # "starting run ID", or "starting runs ID, ID2 (seeds ...)" where one process runs them all
        m = re.search(r"starting runs? ([^\s,]+)", log1.read_text()) if log1.exists() else None
        return m and (res / "epochs" / f"{m.group(1)}.parquet").exists()
    t = time.monotonic()
    while not training():
        assert time.monotonic() - t < 600 and running(job), task_logs(res)
        time.sleep(0.5)
    return job



def test_a_dry_run_script_submitted_by_hand_as_it_says_starts(slurm, small_data, tmp_path):
    """`--dry-run > job.sbatch`, then sbatch as the script's "By hand" line says: the task starts
    and logs. Slurm creates no folder for --output, so a plain `sbatch job.sbatch` failed to launch
    (JobLaunchFailure) with no log and nothing recorded; the line says to make the folder first."""
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    res = tmp_path / "r"
    p = bench("sweep", s, "--slurm", "--dry-run", "--array", "1", "--results", res, "--data", small_data, check=0)
    script = write(tmp_path, p.stdout, "job.sbatch")
    by_hand = next(x for x in p.stdout.splitlines() if x.startswith("# By hand: "))[len("# By hand: "):]
    assert f"to submit it yourself: {by_hand}" in p.stderr, p.stderr
    cmd = by_hand.split(" (")[0].replace("sbatch FILE", f"sbatch --parsable {script}")
    job = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=True).stdout.strip()
    log = res / "logs" / f"slurm-{job}_0.out"
    t = time.monotonic()
    while not (log.exists() and "shard 0/1" in log.read_text()):
        assert time.monotonic() - t < 600 and running(job), f"task did not start: {log} missing"
        time.sleep(0.5)
    subprocess.run(["scancel", job], check=True)
    wait_done(job, results=res)

def task_state(job, task):
    for line in running(job):
        if line.startswith(f"{job}_{task} "):
            return line.split()[1]
    return None


def test_a_cancelled_task_then_a_resubmitted_array_lose_and_repeat_nothing(slurm, small_data, tmp_path):
    """scancel task 1 mid-run; resubmit the array while task 0 may still run. Claim files
    (BENCH_CLAIMS=file) here, so their release on SIGTERM is exercised too."""
    s = write(tmp_path, TINY_SWEEP.format(epochs=2))
    res = tmp_path / "r"
    env = {"BENCH_CLAIMS": "file"}
    job = submit_with_task_1_held(s, res, small_data, env)
    subprocess.run(["scancel", f"{job}_1"], check=True)
    while task_state(job, 1):
        time.sleep(0.5)

    runs = pd.read_parquet(res / "runs")
    cut = runs[runs.status == "interrupted"]
    assert len(cut) == 1 and cut.epochs_completed.iloc[0] == 1, task_logs(res)  # recorded itself on SIGTERM
    [claim] = [c.claim for c in sweep.expand(*sweep.load(s), check_gpu=False) if cut.config_key.iloc[0] in c.keys]
    assert not (res / ".locks" / f"{claim}.claim").exists(), "the cancelled task let its claim go"
    half, table = status_counts(s, res)
    assert half["failed"] == 1 and half["done"] + half["running"] + half["pending"] == 3, table

    job2, _ = submit(s, res, small_data, "--retry-failed", env=env)
    wait_done(job, job2, results=res)
    runs, ok = ok_rows_per_cell(res)
    logs = task_logs(res)
    assert len(ok) == 4 and set(ok) == {1}, logs  # nothing lost, nothing run twice
    assert list(runs[runs.status != "ok"].status) == ["interrupted"], logs
    counts, _ = status_counts(s, res)
    assert counts["done"] == 4 and counts["failed"] == 0
    bench("report", res, "--out", tmp_path / "rep", check=0)
    board = pd.read_csv(tmp_path / "rep" / "leaderboard.csv")
    assert board.runs.sum() == 4 and board.failed_runs.sum() == 1


def test_a_requeued_task_runs_again_the_cell_it_left(slurm, small_data, tmp_path):
    """`scontrol requeue` (what preemption does) of task 1 mid-run: the same task starts again
    (SLURM_RESTART_COUNT=1) and runs its interrupted cell and the rest of its shard."""
    s = write(tmp_path, TINY_SWEEP.format(epochs=2))
    res = tmp_path / "r"
    job = submit_with_task_1_held(s, res, small_data, {}, first_attempt_only=True)
    subprocess.run(["scontrol", "requeue", f"{job}_1"], check=True)
    t = time.monotonic()
    while task_state(job, 1) != "PENDING":
        assert time.monotonic() - t < 300, task_logs(res)
        time.sleep(0.5)
    # Slurm holds a requeued job back for a while (BeginTime); let it start now
    subprocess.run(["scontrol", "update", f"JobId={job}_1", "StartTime=now"], check=True)
    wait_done(job, results=res)
    runs, ok = ok_rows_per_cell(res)
    log1 = (res / "logs" / f"slurm-{job}_1.out").read_text()
    assert len(ok) == 4 and set(ok) == {1}, task_logs(res)
    assert list(runs[runs.status != "ok"].status) == ["interrupted"], task_logs(res)
    assert "DUE TO JOB REQUEUE" in log1 and "2 ok, 0 failed, 0 skipped" in log1.split("DUE TO JOB REQUEUE")[1], log1


# --- without Slurm: the script and bad input ------------------------------------------------------

GPU_SWEEP = """
[sweep]
name = "gpu"
[base]
model = "resnet9"
device = "cuda"
[axes]
world_size = [1, 4]
"""


def test_the_script_for_gpu_cells_asks_for_their_gpus(small_data, tmp_path):
    s = write(tmp_path, GPU_SWEEP)
    p = bench("sweep", s, "--slurm", "--dry-run", "--array", "5", "--partition", "gpu", "--time", "1:00:00",
              "--sbatch-arg=--account=abc", "--time-limit", "600", "--results", tmp_path / "r", "--data", small_data,
              check=0)
    lines = p.stdout.splitlines()
    assert "--array 5 is more tasks than the sweep's 2 configuration(s): submitting 2" in p.stderr
    for want in ("#SBATCH --array=0-1", "#SBATCH --partition=gpu", "#SBATCH --time=1:00:00",
                 "#SBATCH --gpus-per-task=4", "#SBATCH --account=abc", "#SBATCH --requeue"):
        assert want in lines, p.stdout
    cmd = lines[-1]
    assert cmd.startswith(f"exec {sys.executable} -m bench sweep {s} --results {tmp_path / 'r'} --data {small_data}")
    assert cmd.endswith('--time-limit 600 --shard "$SLURM_ARRAY_TASK_ID/2" $retry')  # no task left idle
    shortened = bench("sweep", s, "--slurm", "--dry-run", "--set", "epochs=1", "--set", "seeds=[0, 1]",
                      "--data", small_data, check=0).stdout.splitlines()[-1]
    assert "--set epochs=1 --set 'seeds=[0, 1]' --shard" in shortened  # every task runs the shortened cells
    assert 'then retry=--retry-interrupted; fi' in p.stdout   # a requeue reruns what was stopped, not failures
    assert not (tmp_path / "r").exists()
    default = bench("sweep", s, "--slurm", "--dry-run", "--data", small_data, check=0).stdout
    assert "#SBATCH --array=0-1" in default and "#SBATCH --gpus-per-task=4" in default  # one task a cell


def test_the_scripts_progress_command_counts_the_cells_the_tasks_run(small_data, tmp_path):
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    p = bench("sweep", s, "--slurm", "--dry-run", "--set", "seeds=[0]", "--set", "epochs=2",
              "--results", tmp_path / "r", "--data", small_data, check=0)
    progress = next(x for x in p.stdout.splitlines() if x.startswith("# Progress: "))[len("# Progress: "):]
    status = subprocess.run(progress, shell=True, capture_output=True, text=True, cwd=ROOT, timeout=300)
    counts = json.loads(status.stdout)
    assert (counts["cells"], counts["pending"]) == (2, 2), progress  # the shortened sweep's cells, not the file's 4




def record(sweep_file, res, statuses):
    """One run row a cell with these statuses, written here rather than trained."""
    from datetime import datetime, timezone

    from bench import results, sweep
    from bench.row import base_row
    for k, (cell, status) in enumerate(zip(sweep.expand(*sweep.load(sweep_file), check_gpu=False), statuses)):
        row = base_row(cell.cfg, f"run-{k}", "cpu", 1, datetime.now(timezone.utc))
        results.write(res, "runs", row["run_id"], [{**row, "status": status}])


def test_status_after_a_cancel_names_the_retry_that_spares_real_failures(tmp_path):
    """A cancelled cell shows as failed (interrupted); the hint names --retry-interrupted, which
    runs it again without running the diverged one again, as --retry-failed would."""
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    res = tmp_path / "r"
    record(s, res, ["interrupted", "diverged", "ok", "ok"])
    counts, table = status_counts(s, res)
    assert counts["failed"] == 2, table
    assert "; --retry-interrupted runs only the 1 stopped from outside" in table, table

def test_a_resubmission_with_retry_interrupted_reruns_the_cancelled_cells(small_data, tmp_path):
    """After a scancel, `--slurm --retry-interrupted` resubmits the array to finish what was cut
    short (and only that: a diverged cell stays). The flag used to be left out of the script, so
    the tasks found nothing to do. The script runs here under bash as a task would, with --dry-run
    added so that it reports what it would run; the rows are written here, not trained."""
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    res = tmp_path / "r"
    record(s, res, ["interrupted", "diverged", "ok", "ok"])
    text = bench("sweep", s, "--slurm", "--dry-run", "--retry-interrupted", "--array", "1", "--results", res,
                 "--data", small_data, check=0).stdout
    task = write(tmp_path, text.rstrip("\n") + " --dry-run\n", "task.sbatch")
    p = subprocess.run(["bash", str(task)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "SLURM_ARRAY_TASK_ID": "0"})
    assert p.returncode == 0 and "4 runs (3 already recorded, 1 to run)" in p.stderr, p.stderr


def test_a_sweep_name_and_results_path_with_spaces_make_a_script_sbatch_accepts(slurm, small_data, tmp_path):
    """The #SBATCH values are quoted where they hold a space; unquoted, sbatch refused the script
    ("Invalid directive found in batch script: sweep"). --test-only: sbatch parses it, runs nothing."""
    s = write(tmp_path, TINY_SWEEP.format(epochs=1).replace('name = "tiny"', 'name = "my sweep"'))
    text = bench("sweep", s, "--slurm", "--dry-run", "--results", tmp_path / "my results", "--data", small_data,
                 "--sbatch-arg=--comment=a b", check=0).stdout
    script = write(tmp_path, text, "job.sbatch")
    p = subprocess.run(["sbatch", "--test-only", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert f'#SBATCH --output="{tmp_path}/my results/logs/slurm-%A_%a.out"' in text.splitlines()

def test_an_unreachable_slurm_is_one_line(small_data, tmp_path):
    fake = tmp_path / "bin" / "sbatch"  # what sbatch says when slurmctld is down, without waiting for it
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'sbatch: error: Batch job submission failed: Unable to contact slurm "
                    "controller (connect failure)' >&2\nexit 1\n")
    fake.chmod(0o755)
    s = write(tmp_path, TINY_SWEEP.format(epochs=1))
    p = bench("sweep", s, "--slurm", "--results", tmp_path / "r", "--data", small_data,
              env={"PATH": f"{fake.parent}:{os.environ['PATH']}"}, check=2)
    line = "bench sweep: error: sbatch refused the job: sbatch: error: Batch job submission failed: Unable to contact"
    assert p.stderr.startswith(line) and len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.mark.parametrize("args,message", [
    (["--array", "2"], "--array goes with --slurm"),
    (["--slurm", "--shard", "0/2"], "leave out --shard"),
    (["--slurm", "--array", "0"], "--array must be at least 1"),
    (["--slurm", "--gpus-per-task", "2"], "fewer than the largest world size of a GPU cell (4)"),
    (["--slurm", "--gpus-per-task", "-1"], "--gpus-per-task must be 0 or more, got -1"),
    (["--slurm", "--status"], "give one of them"),
    (["--slurm", "--data", "/nonexistent/cifar.tar"], "data not found"),
    (["--slurm", "--stop-after", "600"], "--stop-after does not reach Slurm's array tasks"),
    (["--slurm", "--time-limit", "inf"], "--time-limit must be a positive finite number of seconds"),
])
def test_bad_slurm_input_is_one_line(tmp_path, small_data, args, message):
    s = write(tmp_path, GPU_SWEEP)
    data = [] if "--data" in args else ["--data", small_data]
    p = bench("sweep", s, *args, *data, "--results", tmp_path / "r", check=2)
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "r").exists()


def test_an_array_counts_the_groups_its_tasks_will_form(small_data, tmp_path):
    """--time-limit sets every cell's limit in each task before it groups its cells: [[cells]] blocks
    that differed only in their own time_limit_s are then one group, and one task, not two (the second
    would start and find nothing to run)."""
    s = write(tmp_path, '[sweep]\nname = "limits"\n[base]\nmodel = "resnet9"\ndevice = "cpu"\nepochs = 1\n'
                        '[[cells]]\nseeds = [0]\ntime_limit_s = 60\n[[cells]]\nseeds = [1]\ntime_limit_s = 3600\n')
    for extra, tasks in (([], 2), (["--time-limit", "600"], 1)):
        p = bench("sweep", s, "--slurm", "--dry-run", *extra, "--results", tmp_path / "r", "--data", small_data,
                  check=0)
        assert f"#SBATCH --array=0-{tasks - 1}" in p.stdout.splitlines(), (extra, p.stdout, p.stderr)
