"""The terminal: what `bench run` and `bench sweep` show, rendered at a fixed width (110 columns,
a common laptop terminal) by rich itself, and the real CLI's lines in a log."""
import io
import json

from rich.console import Console

from bench import ui

from .conftest import TINY, TINY_SWEEP, bench, write

WIDTH = 110


def terminal():
    return Console(file=io.StringIO(), width=WIDTH, force_terminal=True, color_system=None, legacy_windows=False)


def screen(renderable):
    """What the display shows right now, as plain lines at WIDTH columns."""
    c = Console(file=io.StringIO(), width=WIDTH, color_system=None, record=True)
    c.print(renderable)
    return c.export_text().rstrip("\n").splitlines()


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def lesson_progress(clock):
    """The lesson's default run on this 2-core CPU: 30 epochs of 196 steps at about 12.9 s a step
    (the pace the issue saw: about 21 hours)."""
    p = ui.RunProgress(30, 196, live=True, out=terminal(), clock=clock)
    p.start_epoch(1)
    return p


def test_run_display_shows_a_whole_run_eta_after_the_first_steps_and_no_blank_figures():
    clock = Clock()
    p = lesson_progress(clock)
    try:
        clock.t += 12.9
        p.step(1, 256)
        first = "\n".join(screen(p.progress))
        assert "ETA" not in first, "one step says nothing yet about the pace"
        for k in range(2, 6):
            clock.t += 12.9
            p.step(k, 256)
        lines = screen(p.progress)
        text = "\n".join(lines)
        assert len(lines) == 1 and len(lines[0]) <= WIDTH, lines
        assert "ETA 21.1 h" in text, text       # (30 x 196 - 5) steps x 12.9 s
        assert "loss -" not in text and "acc -" not in text and "…" not in text, text
        assert "epoch 1/30" in text and "step 5/196" in text and "img/s" in text
    finally:
        p.close()


def test_run_display_says_evaluating_then_shows_the_last_epochs_figures():
    clock = Clock()
    p = lesson_progress(clock)
    try:
        for k in range(1, 197):
            clock.t += 1.0
            p.step(k, 256)
        p.evaluating()
        assert "evaluating" in "\n".join(screen(p.progress))
        clock.t += 30.0
        p.end_epoch(dict(epoch=1, train_loss=1.23456, test_acc=0.4567, train_images_per_s=256.0,
                         elapsed_s=196.0, wall_s=226.0))
        p.start_epoch(2)
        clock.t += 1.0
        p.step(1, 256)
        text = "\n".join(screen(p.progress))
        assert "evaluating" not in text
        assert "last: loss 1.2346 test_acc 0.4567" in text, text
        # (28 x 196 + 195) steps at 1 s and 29 evaluations at 30 s: 6553 s
        assert "ETA 1.8 h" in text, text
    finally:
        p.close()


def test_run_display_takes_each_epochs_own_steps_and_images():
    """A WGAN's epochs differ (its critic bursts): the bar's step count and img/s are the epoch's own,
    not the first epoch's count with the 5-batch step of the plan's usual case."""
    clock = Clock()
    p = ui.RunProgress(2, 60, live=True, out=terminal(), clock=clock)
    try:
        p.start_epoch(1, 40, 64 * 7.5)  # 40 generator updates over 300 batches of 64
        for k in range(1, 41):
            clock.t += 0.5
            p.step(k)
        text = "\n".join(screen(p.progress))
        assert "step 40/40" in text and "960 img/s" in text, text  # 40 x 480 images in 20 s
    finally:
        p.close()


def test_sweep_display_has_a_fixed_layout_whatever_the_child_prints():
    """At 110 columns the bar keeps its counts and ETA on its own line, the cell is on the next
    line, and the child's output (here a long JSON line) is cropped on a third: it never lands on
    the bar's line, whatever its length."""
    p = ui.SweepProgress(8, live=True, out=terminal())
    with p:
        for ok, failed, left in ((1, 0, 7), (1, 1, 6), (2, 1, 5)):
            p.advance(ok, failed, left, eta_s=754.0)
        desc = "precision=bf16, model_kwargs.width=0.5, inplace=False, label_smoothing=0.1, seed=1"
        p.start_cell(4, 8, desc)
        bar_before = screen(p.progress)[0]
        p.child_line(json.dumps({"run_id": "resnet9-0123abcd-s1-20261126T101010-abcdef", "status": "ok",
                                 "final_acc": 0.8845, "results": "results/runs/" + "x" * 200}))
        lines = screen(p.progress)
    assert len(lines) == 3 and all(len(line) <= WIDTH for line in lines), lines
    bar, cell, child = lines
    assert bar == bar_before
    for part in ("sweep", "3/8", "ok 2", "failed 1", "left 5", "ETA 12.6 min"):
        assert part in bar, bar
    assert "{" not in bar and "run_id" not in bar
    assert cell.startswith("cell 4/8: " + desc)
    assert child.lstrip().startswith('{"run_id"') and child.endswith("…")


def test_run_ends_with_a_line_for_people_and_json_only_on_request(small_data, tmp_path):
    args = ["run", *TINY, "--target", "0.01", "--data", small_data, "--results", tmp_path, "--no-progress-bar"]
    p = bench(*args, check=0)
    assert p.stdout == "", "no JSON blob unless --json"
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("target 1% reached at epoch 1 in ") and "of training; best " in last, last
    # (the whole-run ETA line needs a first epoch slower than this one: tested with a clock above)
    p = bench(*args, "--seed", "1", "--json", check=0)
    out = json.loads(p.stdout)
    assert out["status"] == "ok" and out["reached_target"] and out["results"].endswith(".parquet")


def test_sweep_child_output_has_no_json(small_data, tmp_path):
    """The sweep's children print people's lines, which the bar crops; the JSON is for --json."""
    s = write(tmp_path, TINY_SWEEP.format(epochs=1).replace("seeds = [0, 1]", "seeds = [0]")
              .replace("inplace = [true, false]", "inplace = [true]"))
    bench("sweep", s, "--results", tmp_path / "r", "--data", small_data, check=0)
    log = next((tmp_path / "r" / "logs").glob("*.log")).read_text()
    assert '{"run_id"' not in log and "reached at epoch" in log, log


def test_run_summary_says_what_happened_in_one_line():
    row = dict(status="ok", target=0.85, reached_target=True, epoch_reached=10, time_to_target_s=585.2,
               train_time_s=585.2, best_acc=0.8845, final_acc=0.8845, epochs_completed=10)
    assert ui.run_summary(row) == "target 85% reached at epoch 10 in 585 s (9.8 min) of training; best 88.45%"
    row.update(reached_target=False, epoch_reached=None, time_to_target_s=float("nan"), final_acc=0.8801)
    assert ui.run_summary(row, "r/runs/x.parquet") == (
        "target 85% not reached in 10 epochs, 585 s (9.8 min) of training; best 88.45%, final 88.01%; "
        "recorded in r/runs/x.parquet")
    row.update(status="interrupted", error="interrupted by SIGINT (Ctrl-C)", epochs_completed=3, train_time_s=75000.0)
    assert ui.run_summary(row).startswith("run interrupted (interrupted by SIGINT (Ctrl-C)) after 3 epochs, 20.8 h of training")


def test_run_display_clock_runs_through_evaluation():
    """rich's elapsed column stops once a task completes: through an evaluation (all steps done)
    it showed a frozen time. The run's clock keeps going and does not restart each epoch."""
    clock = Clock()
    p = ui.RunProgress(2, 4, live=True, out=terminal(), clock=clock)
    try:
        p.start_epoch(1)
        for k in range(1, 5):
            clock.t += 10
            p.step(k, 50)
        p.evaluating()
        clock.t += 25
        assert "0:01:05" in "\n".join(screen(p.progress))
    finally:
        p.close()
