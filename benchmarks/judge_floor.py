"""The FD judge's scale: the distance of real test images and of untrained generators to the train set.

A GAN's distance means something only beside these two ends: real images (the floor a perfect
generator would reach, given the sample count) and an untrained generator (where every run starts).
They are computed as the GAN workload computes its per-epoch distance: FD_SAMPLES train images picked
with seed 0 as the reference, the first FD_SAMPLES test images, the generator's output on the fixed
evaluation latents. No clock: one number per case.

    python benchmarks/judge_floor.py [--nf 64,16] [--seeds 0,1,2] [--out FILE]
"""
import torch
from common import device_of, guard, ints, parser, save  # first: puts the project on the path

import models
from bench import data, judge
from bench.workloads import gan


def untrained_fd(j, reference, nf, seed, n, device):
    torch.manual_seed(seed)
    net = models.create("dcgan", nf=nf, nz=100, extra=1).to(device).eval()
    z = net.noise(n, torch.Generator().manual_seed(gan._EVAL_NOISE_SEED)).to(device)
    with torch.no_grad():
        fake = torch.cat([judge.to_pixels(net.generator(b)) for b in z.split(500)])
    return judge.frechet(judge.gaussian(j.features(fake)), reference)


def main():
    p = parser(__doc__)
    p.add_argument("--nf", type=ints, default="64,16", help="generator widths, comma-separated (default 64,16: the "
                   "workloads' default and the CPU runs')")
    p.add_argument("--seeds", type=ints, default="0,1,2", help="generator seeds, comma-separated (default 0,1,2)")
    a = p.parse_args()
    device = device_of(a.device)
    ds = data.load(a.data)
    j = judge.load_or_train(ds.source, ds).to(device)
    n = 500 if a.smoke else min(gan.FD_SAMPLES, len(ds.train_x), len(ds.test_x))
    pick = torch.randperm(len(ds.train_x), generator=torch.Generator().manual_seed(0))[:n]
    reference = judge.gaussian(j.features(ds.train_x[pick]))
    real = judge.frechet(judge.gaussian(j.features(ds.test_x[:n])), reference)
    print(f"{j.label()} (test accuracy {j.test_acc:.2%}), {ds.name}, {n} samples a side:")
    print(f"  real test images: {real:.2f}")
    untrained = {}
    for nf in a.nf:
        untrained[nf] = {s: untrained_fd(j, reference, nf, s, n, device) for s in a.seeds}
        print(f"  untrained DCGAN generator, nf={nf}: "
              + ", ".join(f"seed {s} {v:.1f}" for s, v in untrained[nf].items()))
    save(a.out, "judge_floor", {"judge": j.checksum[:16], "fd_label": j.label(), "judge_test_acc": j.test_acc,
                                "dataset": ds.name, "samples": n, "fd_real_test": real, "fd_untrained": untrained},
         device, a)


if __name__ == "__main__":
    guard(main)
