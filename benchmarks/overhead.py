"""Harness overhead: the same model, batches and steps, trained by a bare PyTorch loop and by the
harness (`bench.runner.Runner` with every measurement on: progress display, per-step loss
accumulation, NVML sampler on GPUs, fault hook, epoch files), side by side in one process,
alternating A/B so drift hits both. Both clocks are read after a device sync around the
training steps only. Goal: the harness at most 1% slower.

    python benchmarks/overhead.py --data ../shared/data/cifar10-jpeg.tar.xz [--device cuda]
"""
import statistics
import tempfile
import time

import torch
from common import device_of, guard, parser, positive, save  # first: puts the project on the path

import models
from bench import data as data_mod
from bench import precision
from bench.config import RunConfig
from bench.loader import DeviceLoader, eval_batches
from bench.measure import sync
from bench.runner import Runner
from bench.schedule import one_cycle


def config(device, smoke):
    if device == "cuda":
        return RunConfig(model="resnet9", model_kwargs={"width": 1.0}, batch_size=512, epochs=3,
                         limit_train=512 * (4 if smoke else 30), precision="bf16", channels_last=True,
                         lr=0.4, div=10, pct=10, device="cuda", warmup_steps=5)
    return RunConfig(model="resnet9", model_kwargs={"width": 0.25}, batch_size=256, epochs=3,
                     limit_train=256 * (2 if smoke else 24), precision="bf16", channels_last=True,
                     lr=0.4, div=10, pct=10, device="cpu", warmup_steps=2)


def bare(cfg, ds):
    """A plain loop: what anyone would write, with nothing measured but the clock."""
    device = torch.device(cfg.device)
    keep = torch.randperm(len(ds.train_x), generator=torch.Generator().manual_seed(0))[:cfg.limit_train]
    dtype = precision.dtype(cfg.precision)
    loader = DeviceLoader(ds.train_x[keep], ds.train_y[keep], ds.mean, ds.std, cfg.batch_size, device, dtype,
                          seed=cfg.seed, channels_last=cfg.channels_last)
    torch.manual_seed(cfg.seed)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = models.create(cfg.model, **cfg.model_kwargs).to(device, memory_format=fmt)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    sched = one_cycle(cfg.epochs * len(loader), cfg.lr, cfg.div, cfg.pct, cfg.mom_max, cfg.mom_min)
    crit = torch.nn.CrossEntropyLoss()
    test = eval_batches(ds.test_x, ds.test_y, ds.mean, ds.std, cfg.eval_batch_size, device, dtype, cfg.channels_last)

    @torch.no_grad()
    def evaluate():  # a time-to-accuracy loop must look at the test set every epoch, off the clock
        model.eval()
        with torch.autocast(device.type, dtype=dtype, enabled=cfg.precision != "fp32"):
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in test)
        model.train()
        return correct / len(ds.test_x)

    def train(steps, epochs, clock=None):
        opt = precision.sgd(model.parameters(), fused=cfg.fused_on(device), lr=sched[0][0], momentum=cfg.mom_max,
                            nesterov=True, weight_decay=cfg.weight_decay)  # as the harness steps
        step = 0
        for epoch in epochs:
            sync(device)
            t0 = time.perf_counter()
            for x, y in loader.epoch(epoch):
                if step == steps:
                    return
                for g in opt.param_groups:
                    g["lr"], g["momentum"] = sched[step]
                with torch.autocast(device.type, dtype=dtype, enabled=cfg.precision != "fp32"):
                    loss = crit(model(x), y)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                step += 1
            sync(device)
            if clock is not None:
                clock.append(time.perf_counter() - t0)
            evaluate()

    train(cfg.warmup_steps, [-1])          # same untimed warm-up as the harness
    evaluate()
    model.load_state_dict(init)
    clock = []
    train(-1, range(1, cfg.epochs + 1), clock)
    return cfg.epochs * len(loader) * cfg.batch_size / sum(clock)


def bookkeeping_us(device, steps, n=2000):
    """The harness's own per-step work, timed alone: the loss copied into its slot on the device
    and the progress update (live display on). Everything else in a harness step is the bare loop."""
    from bench.ui import RunProgress
    losses = torch.empty(n, device=device)
    loss = torch.ones((), device=device)
    progress = RunProgress(1, n, enabled=True, live=True)
    progress.start_epoch(1)
    sync(device)
    t0 = time.perf_counter()
    for k in range(n):
        losses[k] = loss
        progress.step(k + 1, 256)
    sync(device)
    progress.close()
    return (time.perf_counter() - t0) / n * 1e6


def harness(cfg, source):
    with tempfile.TemporaryDirectory() as d:
        row = Runner(cfg, source, d, progress=True, live=True).execute()[0]
    assert row["status"] == "ok", row.get("error")
    return row["train_images_per_s"]


def main():
    p = parser(__doc__)
    p.add_argument("--reps", type=positive, default=6,
                   help="alternating bare/harness pairs (default 6; 1 with --smoke)")
    p.add_argument("--threads", type=positive, help="torch CPU threads (default torch's); 1 leaves a core for "
                                                "the OS and other processes, which steadies CPU timings")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = device_of(a.device)
    cfg = config(device, a.smoke)
    source = data_mod.resolve_source(a.data)
    ds = data_mod.load(source)
    reps = 1 if a.smoke else a.reps
    rows = []
    for i in range(reps):
        order = [("bare", lambda: bare(cfg, ds)), ("harness", lambda: harness(cfg, source))]
        if i % 2:
            order.reverse()
        got = {name: fn() for name, fn in order}
        rows.append(got)
        print(f"rep {i + 1}: bare {got['bare']:.1f} img/s  harness {got['harness']:.1f} img/s  "
              f"ratio {got['harness'] / got['bare']:.4f}", flush=True)
    ratios = [r["harness"] / r["bare"] for r in rows]
    med = statistics.median(ratios)
    step_ms = cfg.batch_size / statistics.median(r["bare"] for r in rows) * 1000
    extra = bookkeeping_us(torch.device(device), cfg.epochs * (cfg.limit_train // cfg.batch_size))
    print(f"\n{cfg.model} {cfg.model_kwargs} {cfg.precision} batch {cfg.batch_size}, "
          f"{cfg.epochs * (cfg.limit_train // cfg.batch_size)} timed steps per run, {reps} reps, device {device}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"end to end: median harness/bare throughput ratio {med:.4f} (range {min(ratios):.4f}..{max(ratios):.4f}; "
          f"overhead {(1 - med) * 100:+.2f}%, goal: at most 1% slower)")
    print(f"per step: the harness's own bookkeeping costs {extra:.1f} us against a {step_ms:.1f} ms step "
          f"= {extra / 1000 / step_ms * 100:.3f}% of the step")
    save(a.out, "overhead", {"reps": rows, "ratios": ratios, "median_ratio": med, "bookkeeping_us_per_step": extra,
                             "bare_step_ms": step_ms, "config": cfg.to_dict(),
                             "clock": "training steps only, between device syncs; warm-up steps, data loading, "
                                      "model build and per-epoch evaluation excluded on both sides"}, device, a)


if __name__ == "__main__":
    guard(main)
