"""The lesson's first steps with today's BatchNorm init and with the lesson's own, side by side.

PyTorch up to 1.1 drew BatchNorm scales from U(0, 1); today they start at 1 (models/darknet.py).
The lesson ran on PyTorch 0.3. This trains the first steps of the lesson's recipe (the harness's
own data, loader, schedule and optimizer) from both inits, seed by seed, and prints each step's
training loss and a summary: mean and largest loss over the steps after the first update, and how
many steps sit above ln(10) = 2.30 (a 10-class guess). No clock: on the CPU the losses are
deterministic, so one run per seed and init is the whole measurement.

    python benchmarks/lesson_init.py [--seeds 0,1,2] [--steps 16] [--batch-size 256] [--nesterov]
"""
import math

import torch
from common import device_of, guard, ints, parser, positive, save  # first: puts the project on the path

from bench import api, data
from bench.workload import get

INITS = ("ones", "uniform")


def first_losses(ds, device, init, seed, steps, batch_size, nesterov, precision):
    cfg = api.make_config(None, dict(recipe="lesson", model_kwargs={"bn_weight": init}, batch_size=batch_size,
                                     nesterov=nesterov, precision=precision, channels_last=True, seed=seed))
    w = get("classify")(cfg, torch.device(device))
    w.setup(ds)
    w.reset(seed)
    losses = []
    for i, batch in enumerate(w.batches(1)):
        if i == steps:
            break
        losses.append(float(w.step(batch, i)))  # off any clock: a sync per step costs nothing here
    return losses


def summary(losses):
    after = losses[1:]  # the first loss is the untrained net's
    return {"mean_after_first": sum(after) / len(after), "max": max(after),
            "steps_above_ln10": sum(x > math.log(10) for x in after)}


def main():
    p = parser(__doc__)
    p.add_argument("--seeds", type=ints, default="0,1,2", help="seeds, comma-separated (default 0,1,2)")
    p.add_argument("--steps", type=int, default=16, help="training steps per run (default 16)")
    p.add_argument("--batch-size", type=positive, default=256, help="batch size (default 256, the lesson's)")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum (default: the lesson's plain momentum)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="default fp32")
    a = p.parse_args()
    seeds = a.seeds
    steps, batch = (3, 32) if a.smoke else (a.steps, a.batch_size)
    if steps < 2:
        p.error("--steps must be at least 2: the summary covers the steps after the first update")
    device = device_of(a.device)
    ds = data.load(a.data)
    runs = {init: {} for init in INITS}
    for seed in seeds:
        for init in INITS:
            runs[init][seed] = first_losses(ds, device, init, seed, steps, batch, a.nesterov, a.precision)
            print(f"seed {seed} {init:>7}: " + " ".join(f"{x:.2f}" for x in runs[init][seed]), flush=True)
    per = {init: {s: summary(v) for s, v in runs[init].items()} for init in INITS}
    med = {init: {k: sorted(x[k] for x in per[init].values())[len(seeds) // 2] for k in per[init][seeds[0]]}
           for init in INITS}
    print(f"\nthe lesson's Darknet, {steps} steps of batch {batch}, {'Nesterov' if a.nesterov else 'plain'} "
          f"momentum, {a.precision}, {ds.name}, seeds {','.join(map(str, seeds))} (medians over seeds):")
    for init in INITS:
        m = med[init]
        print(f"  BatchNorm scales {init:>7}: mean loss after the first step {m['mean_after_first']:.2f}, "
              f"largest {m['max']:.2f}, steps above ln 10: {m['steps_above_ln10']} of {steps - 1}")
    ratio = med["ones"]["mean_after_first"] / med["uniform"]["mean_after_first"]
    print(f"  mean loss, ones / uniform: {ratio:.2f}x")
    save(a.out, "lesson_init", {"steps": steps, "batch_size": batch, "nesterov": a.nesterov,
                                "precision": a.precision, "dataset": ds.name, "seeds": seeds, "losses": runs,
                                "per_seed": per, "median": med, "mean_loss_ratio_ones_to_uniform": ratio},
         device, a)


if __name__ == "__main__":
    guard(main)
