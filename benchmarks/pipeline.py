"""Data pipeline: the harness's on-device augmentation (bench.loader.DeviceLoader: reflect-pad 4,
random 32x32 crop, random flip, normalise) against torchvision's DataLoader with the equivalent
PIL transforms on the same images, in one run; images/s of each and the ratio. Also measures
the training throughput of the fastest recipe model on the same device: the goal is a
pipeline at least 10x faster than training, so that it never limits it. The harness is timed over
whole epochs, with one batch per gather and with ~8k images per gather (bench.loader.default_chunk
picks the second on a GPU, where small gathers are launch-bound, and the first on a CPU).

    python benchmarks/pipeline.py --data ../shared/data/cifar10-jpeg.tar.xz [--device cuda]
"""
import os
import time

import torch
from common import device_of, guard, parser, positive, save  # first: puts the project on the path

import models
from bench import data as data_mod
from bench import precision
from bench.config import RECIPES, BenchError, RunConfig
from bench.loader import DeviceLoader, default_chunk
from bench.measure import sync


def harness_pipeline(ds, device, batch, epochs, chunk):
    """Images/s over whole epochs (the epoch's draws included), after one untimed epoch."""
    ld = DeviceLoader(ds.train_x, ds.train_y, ds.mean, ds.std, batch, device,
                      torch.bfloat16, seed=0, channels_last=True, chunk=chunk)
    for _ in ld.epoch(0):
        pass
    sync(device)
    t0 = time.perf_counter()
    n = 0
    for epoch in range(1, epochs + 1):
        for x, _ in ld.epoch(epoch):
            n += len(x)
    sync(device)
    return n / (time.perf_counter() - t0)


class PilSet(torch.utils.data.Dataset):
    def __init__(self, x, y, transform):
        from PIL import Image
        self.images = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in x]
        self.y, self.transform = y, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.y[i]


def torchvision_pipeline(ds, device, batch, batches, workers):
    """Images/s of `batches` batches in steady state: (batches, batches skipped untimed)."""
    import torchvision.transforms as T
    tf = T.Compose([T.RandomCrop(32, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize([m / 255 for m in ds.mean], [s / 255 for s in ds.std])])
    # Untimed: worker start-up and every batch the workers prepared ahead (2 each, DataLoader's
    # prefetch_factor) while the first was waited for; a clock started earlier counts those as free.
    skip = 1 + 2 * workers
    batches = min(batches, len(ds.train_x) // batch - skip)
    if batches < 1:
        raise BenchError(f"{len(ds.train_x)} images are too few for {skip} untimed and 1 timed batch of {batch}; "
                         f"lower --batch or --workers")
    n_images = batch * (skip + batches)
    dl = torch.utils.data.DataLoader(PilSet(ds.train_x[:n_images], ds.train_y[:n_images], tf), batch_size=batch,
                                     shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
                                     drop_last=True, prefetch_factor=2 if workers else None)
    it = iter(dl)
    for _ in range(skip):
        next(it)
    sync(device)
    t0 = time.perf_counter()
    n = 0
    for x, _ in it:
        x = x.to(device, non_blocking=True).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        n += len(x)
    sync(device)
    return n / (time.perf_counter() - t0), batches, skip


def training_throughput(recipe, device, batch, steps):
    """Images/s of a recipe's model training on random inputs of the right shape (throughput only)."""
    cfg = RunConfig(**{**RECIPES[recipe], "batch_size": batch})
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    dtype = precision.dtype(cfg.precision)
    if device.type == "cpu" and dtype == torch.float16:
        dtype = torch.bfloat16
    model = models.create(cfg.model, **cfg.model_kwargs).to(device, memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=cfg.precision != "fp32"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()  # untimed warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * batch / (time.perf_counter() - t0)


def main():
    p = parser(__doc__)
    p.add_argument("--batch", type=positive, default=512, help="images per batch, both pipelines (default 512)")
    p.add_argument("--workers", type=int, default=os.cpu_count(),
                   help=f"torchvision DataLoader workers (default the CPU count, {os.cpu_count()} here)")
    a = p.parse_args()
    if a.workers < 0:
        p.error(f"--workers must be 0 (the main process) or more, got {a.workers}")
    device = torch.device(device_of(a.device))
    ds = data_mod.load(a.data)
    # one batch per gather, and the whole chunk of ~8k images the GPU default uses; side by side
    timed = {"harness_epochs": 1 if a.smoke else 3, "torchvision_batches": 2 if a.smoke else 20,
             "training_batch": 256 if device.type == "cpu" else 1024, "training_steps": 2 if a.smoke else 10}
    chunks = {c: harness_pipeline(ds, device, a.batch, timed["harness_epochs"], c)
              for c in sorted({1, max(1, 8192 // a.batch)})}
    default = default_chunk(device, a.batch)
    ours = chunks[default]
    theirs, timed["torchvision_batches"], timed["torchvision_skipped"] = torchvision_pipeline(
        ds, device, a.batch, timed["torchvision_batches"], a.workers)
    recipes = ["cpu", "dawn"] if device.type == "cpu" else ["dawn", "resnet9"]
    train = {r: training_throughput(r, device, timed["training_batch"], timed["training_steps"])
             for r in recipes}
    fastest = max(train, key=train.get)
    print(f"device {device}, batch {a.batch}, {len(ds.train_x)} {ds.name} images")
    for c, v in chunks.items():
        mark = "  <- the default here" if c == default else ""
        print(f"harness on-device augmentation, {c:3d} batch(es) per gather: {v:12,.0f} images/s{mark}")
    print(f"torchvision DataLoader + PIL ({a.workers} workers): {theirs:12,.0f} images/s")
    print(f"ratio harness / torchvision: {ours / theirs:.1f}x")
    for r, v in train.items():
        print(f"training throughput, recipe {r!r} model (eager, random inputs): {v:,.0f} images/s")
    print(f"pipeline / fastest training ({fastest}): {ours / train[fastest]:.1f}x  (goal: at least 10x)")
    save(a.out, "pipeline", {"harness_images_per_s": ours, "chunk": default,
                             "harness_images_per_s_by_chunk": {str(c): v for c, v in chunks.items()},
                             "torchvision_images_per_s": theirs,
                             "ratio": ours / theirs, "training_images_per_s": train,
                             "pipeline_over_fastest_training": ours / train[fastest], "batch": a.batch,
                             "workers": a.workers, "timed": timed,
                             "clock": "between device syncs; excluded: the harness's first epoch, torchvision's "
                                      "first 1 + 2 x workers batches (worker start-up and the batches its "
                                      "workers prefetched meanwhile), 3 warm-up training steps"}, device.type, a)


if __name__ == "__main__":
    guard(main)
