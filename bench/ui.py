"""Console output. Everything human goes to stderr (stdout stays parseable). On a terminal a
live rich progress bar; in a log (no TTY) plain lines: one per epoch, and a step line at most
every `every_s` seconds, so CI logs stay readable."""
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True, highlight=False, soft_wrap=True)


def say(msg):
    console.print(msg, markup=False)


class RunProgress:
    def __init__(self, epochs, steps, enabled=True, every_s=30.0, live=None, quality="test_acc", loss="train_loss"):
        self.epochs, self.steps, self.enabled, self.every_s = epochs, steps, enabled, every_s
        self.quality, self.loss = quality, loss  # the workload's epoch columns (a GAN: fd, critic_loss)
        self.live = console.is_terminal if live is None else live
        self.progress = self.task = None
        self.epoch = 0
        self.t_last_line = time.monotonic()
        self.images = 0
        self.t_epoch = time.monotonic()
        if enabled and self.live:
            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
                TextColumn("step {task.completed}/{task.total}"),
                TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}  {task.fields[ips]} img/s"),
                TimeElapsedColumn(), console=console, transient=True, refresh_per_second=4)
            self.progress.start()
            self.task = self.progress.add_task("train", total=steps, epoch=0, epochs=epochs,
                                               loss="-", acc="-", ips="-")

    def start_epoch(self, epoch):
        self.epoch, self.images, self.t_epoch = epoch, 0, time.monotonic()
        if self.progress:  # reset() replaces all custom fields, so give them all again
            task = self.progress.tasks[0]
            self.progress.reset(self.task, total=self.steps, **{**task.fields, "epoch": epoch})

    def step(self, k, images):
        """Called after step k (1-based) of the epoch; host clock only, never a device sync."""
        if not self.enabled:
            return
        self.images += images
        if self.progress:
            self.progress.update(self.task, completed=k, ips=f"{self.images / max(time.monotonic() - self.t_epoch, 1e-9):.0f}")
        elif time.monotonic() - self.t_last_line >= self.every_s:
            self.t_last_line = time.monotonic()
            say(f"  epoch {self.epoch}/{self.epochs} step {k}/{self.steps} "
                f"{self.images / max(time.monotonic() - self.t_epoch, 1e-9):.0f} img/s")

    def evaluating(self):
        """Between the timed steps and the epoch's line: evaluation is running, off the clock."""
        if self.enabled and self.progress:
            self.progress.update(self.task, acc="evaluating")

    def end_epoch(self, row):
        if not self.enabled:
            return
        loss, quality = _num(row.get(self.loss)), _num(row.get(self.quality))
        line = (f"epoch {row['epoch']}/{self.epochs}  loss {loss}  "
                f"{self.quality} {quality}  {row['train_images_per_s']:.0f} img/s  "
                f"train {row['elapsed_s']:.1f}s  wall {row['wall_s']:.1f}s")
        if self.progress:
            self.progress.update(self.task, loss=loss, acc=quality)
            self.progress.console.print(line, markup=False, highlight=False)
        else:
            say(line)
        self.t_last_line = time.monotonic()

    def close(self):
        if self.progress:
            self.progress.stop()
            self.progress = None


def _num(v):
    return "-" if v is None or v != v else f"{v:.4f}"


def is_tty():
    return sys.stderr.isatty()
