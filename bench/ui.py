"""Console output. Everything human goes to stderr (stdout stays parseable). On a terminal a
live rich progress display; in a log (no TTY) plain lines: one per epoch, one with the whole
run's ETA after its first steps, and a step line at most every `every_s` seconds, so CI logs
stay readable."""
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

console = Console(stderr=True, highlight=False, soft_wrap=True)

ETA_AFTER_STEPS = 5     # the first steps pay for allocation and kernel selection: estimate after them
ETA_AFTER_S = 2.0


def say(msg):
    console.print(msg, markup=False)


def duration(s, short=False):
    """Seconds for people: 12.3 s, 585 s (9.8 min), 20.9 h; short (for a bar): 12 s, 9.8 min, 20.9 h."""
    if s < 60:
        return f"{s:.0f} s" if short else f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min" if short else f"{s:.0f} s ({s / 60:.1f} min)"
    return f"{s / 3600:.1f} h"


class RunProgress:
    """The run's display. The runner calls start_epoch, step (after every step), evaluating (when
    the epoch's steps are done and evaluation starts), end_epoch and close."""

    def __init__(self, epochs, steps, enabled=True, every_s=30.0, live=None, out=None, clock=time.monotonic,
                 quality="test_acc", loss="train_loss"):
        self.epochs, self.steps, self.enabled, self.every_s = epochs, steps, enabled, every_s
        self.quality, self.loss = quality, loss  # the workload's epoch columns (a GAN: fd and its loss)
        self.out = out or console
        self.clock = clock
        self.live = self.out.is_terminal if live is None else live
        self.progress = self.task = None
        self.epoch = 0
        self.t_last_line = clock()
        self.images, self.images_per_step = 0, 0
        self.t_epoch = clock()
        self.steps_done = 0          # over the whole run, for the ETA
        self.train_s = 0.0           # host time in finished epochs' steps
        self.eval_s = None           # last evaluation's host time
        self.t_eval = None
        self.eta_said = False
        if enabled and self.live:
            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(bar_width=24),
                TextColumn("step {task.completed}/{task.total}"), TextColumn("{task.fields[phase]}"),
                TextColumn("{task.fields[ips]}"), TextColumn("{task.fields[last]}"),
                TextColumn("{task.fields[eta]}"), _Since(clock, clock()),
                console=self.out, transient=True, refresh_per_second=4)
            self.progress.start()
            self.task = self.progress.add_task("train", total=steps, epoch=0, epochs=epochs, phase="",
                                               ips="", last="", eta="")

    def start_epoch(self, epoch, steps=None, images_per_step=0):
        """`steps`, `images_per_step`: this epoch's (a WGAN's epochs differ; the mean over its steps)."""
        self.epoch, self.images, self.t_epoch = epoch, 0, self.clock()
        self.steps, self.images_per_step = steps or self.steps, images_per_step
        if self.progress:  # reset() replaces all custom fields, so give them all again
            task = self.progress.tasks[0]
            self.progress.reset(self.task, total=self.steps, **{**task.fields, "epoch": epoch, "phase": ""})

    def step(self, k, images=None):
        """Called after step k (1-based) of the epoch; host clock only, never a device sync."""
        if not self.enabled:
            return
        now = self.clock()
        self.images += self.images_per_step if images is None else images
        self.steps_done += 1
        ips = f"{self.images / max(now - self.t_epoch, 1e-9):.0f} img/s"
        eta = self.eta(k, now)
        if self.progress:
            self.progress.update(self.task, completed=k, ips=ips, eta=f"ETA {duration(eta, short=True)}" if eta else "")
        elif eta is not None and not self.eta_said and self.epoch == 1:
            self.eta_said = True
            self.t_last_line = now
            say(f"  epoch {self.epoch}/{self.epochs} step {k}/{self.steps}: the whole run ({self.epochs} epochs x "
                f"{self.steps} steps) would take about {duration(eta)} more at this pace ({ips})")
        elif now - self.t_last_line >= self.every_s:
            self.t_last_line = now
            say(f"  epoch {self.epoch}/{self.epochs} step {k}/{self.steps} {ips}"
                + (f", run ETA {duration(eta)}" if eta else ""))

    def eta(self, k, now):
        """Seconds left for the whole schedule (evaluations included once one is timed); None
        until the first steps are done."""
        in_epoch = now - self.t_epoch
        if self.epoch <= 1 and (k < ETA_AFTER_STEPS and k < self.steps or in_epoch < ETA_AFTER_S):
            return None
        per_step = (self.train_s + in_epoch) / max(self.steps_done, 1)
        steps_left = (self.epochs - self.epoch) * self.steps + (self.steps - k)
        evals_left = self.epochs - self.epoch + 1
        return steps_left * per_step + evals_left * (self.eval_s or 0.0)

    def evaluating(self):
        """The epoch's steps are done; evaluation on the test set starts."""
        if not self.enabled:
            return
        now = self.t_eval = self.clock()
        self.train_s += now - self.t_epoch
        if self.progress:
            self.progress.update(self.task, phase="evaluating", refresh=True)
        elif now - self.t_epoch >= self.every_s:  # a long epoch: its evaluation may be long too
            say(f"  epoch {self.epoch}/{self.epochs}: evaluating")

    def end_epoch(self, row):
        if not self.enabled:
            return
        now = self.clock()
        if self.t_eval is None:  # the runner did not say when evaluation began: count it as training
            self.train_s += now - self.t_epoch
        else:
            self.eval_s = now - self.t_eval
        self.t_eval = None
        left = (self.epochs - self.epoch) * (self.steps * self.train_s / max(self.steps_done, 1) + (self.eval_s or 0))
        loss, quality = _f4(row.get(self.loss)), _f4(row.get(self.quality))
        line = (f"epoch {row['epoch']}/{self.epochs}  loss {loss}  "
                f"{self.quality} {quality}  {row['train_images_per_s']:.0f} img/s  "
                f"train {row['elapsed_s']:.1f}s  wall {row['wall_s']:.1f}s"
                + (f"  run ETA {duration(left)}" if self.epoch < self.epochs else ""))
        if self.progress:
            self.progress.update(self.task, phase="", last=f"last: loss {loss} {self.quality} {quality}")
            self.progress.console.print(line, markup=False, highlight=False)
        else:
            say(line)
        self.t_last_line = now

    def close(self):
        if self.progress:
            self.progress.stop()
            self.progress = None


class _Since(ProgressColumn):
    """Time since the run began. rich's own elapsed column stops when a task completes, which
    froze it through every evaluation (the epoch's steps all done) and restarted it each epoch."""

    def __init__(self, clock, t0):
        super().__init__()
        self.clock, self.t0 = clock, t0

    def render(self, task):
        s = int(max(self.clock() - self.t0, 0))
        return Text(f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}", style="progress.elapsed")


def run_summary(row, results_path=None):
    """One line for people at the end of a run, e.g. "target 85% reached at epoch 10 in 585 s
    (9.8 min) of training; best 88.45%"."""
    status = row.get("status")
    target = row.get("target")
    best, final = _num(row.get("best_acc")), _num(row.get("final_acc"))
    train = _num(row.get("train_time_s"))
    where = f"; recorded in {results_path}" if results_path else ""
    quality = row.get("quality") or "test_acc"
    show = _pct if quality == "test_acc" else (lambda v: f"{quality} {v:.4g}" if v is not None else "?")
    value = (lambda v: f"{v:.2%}") if quality == "test_acc" else show
    accs = (f"; best {value(best)}" + (f", final {value(final)}" if final is not None and final != best else "")
            if best is not None else "")
    if status == "ok" and row.get("reached_target"):
        head = (f"target {show(target)} reached at epoch {row.get('epoch_reached')} in "
                f"{duration(_num(row.get('time_to_target_s')) or 0)} of training")
    elif status == "ok":
        head = (f"target {show(target)} not reached in {row.get('epochs_completed')} epochs, "
                f"{duration(train or 0)} of training")
    else:
        error = (str(row.get("error") or "").strip().splitlines() or [""])[-1][:200]
        head = (f"run {status}" + (f" ({error})" if error else "")
                + f" after {row.get('epochs_completed') or 0} epochs" + (f", {duration(train)} of training" if train else ""))
    return head + accs + where


def _num(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if v != v else v


def _f4(v):
    v = _num(v)
    return "-" if v is None else f"{v:.4f}"


def _pct(t):
    return f"{float(t) * 100:g}%" if t is not None else "?"


class SweepProgress:
    """The sweep's display, a fixed layout whatever the terminal's width:
        sweep ━━━━━━━━━━  3/8  ok 2  failed 0  left 5  ETA 12.6 min  0:03:10
        cell 4/8: precision=bf16, model_kwargs.width=0.5, seed=1
          epoch 3/20  loss 1.2345  test_acc 0.4567 ...        <- the child's last line
    Each line is cropped to the terminal, so nothing the child prints can land on the bar's line."""

    def __init__(self, total, live=None, out=None):
        self.out = out or console
        self.live = self.out.is_terminal if live is None else live
        self.cell = Text("", no_wrap=True, overflow="ellipsis")
        self.child = Text("", no_wrap=True, overflow="ellipsis", style="dim")
        self.progress = _LinesProgress(
            self, TextColumn("sweep"), BarColumn(bar_width=30), MofNCompleteColumn(),
            TextColumn("ok {task.fields[ok]}  failed {task.fields[failed]}  left {task.fields[left]}"),
            TextColumn("{task.fields[eta]}"), TimeElapsedColumn(), console=self.out, disable=not self.live)
        self.task = self.progress.add_task("sweep", total=total, ok=0, failed=0, left=total, eta="")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.cell.plain = self.child.plain = ""
        return self.progress.__exit__(*exc)

    def start_cell(self, n, total, desc):
        self.cell.plain = f"cell {n}/{total}: {desc}"
        self.child.plain = ""
        self.progress.refresh()

    def child_line(self, line):
        line = line.strip()
        if line:
            self.child.plain = "  " + line

    def advance(self, ok, failed, left, eta_s=None):
        self.progress.update(self.task, advance=1, ok=ok, failed=failed, left=left,
                             eta=f"ETA {duration(eta_s, short=True)}" if eta_s else "")


class _LinesProgress(Progress):
    def __init__(self, owner, *columns, **kw):
        self.owner = owner
        super().__init__(*columns, **kw)

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        if self.owner.cell.plain:
            yield self.owner.cell
        if self.owner.child.plain:
            yield self.owner.child


def is_tty():
    return sys.stderr.isatty()


def print_matrix(cells, state, title):
    """A sweep's cells (sweep_file.Cell) as a table: each cell's settings and its state by config key."""
    from rich.table import Table
    # every setting any cell changes, in order of first appearance: [[cells]] each change their own
    axes = list(dict.fromkeys(a for c in cells for a in c.axes))
    t = Table(title=title, title_justify="left",
              caption=r"blank: the \[base] value" if any(set(c.axes) != set(axes) for c in cells) else None)
    t.add_column("#", justify="right")
    for a in axes:
        t.add_column(a)
    t.add_column("state")
    for c in cells:
        t.add_row(str(c.index), *[str(c.axes[a]) if a in c.axes else "" for a in axes],
                  state.get(c.cfg.key(), "pending"))
    console.print(t)
