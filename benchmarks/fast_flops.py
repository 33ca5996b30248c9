"""Issue #17's budget: the training FLOPs of a `fast` recipe run and of airbench's train94, counted
the same way (torch.utils.flop_counter: matmuls and convolutions, forward + backward, a multiply-add
counted as 2; elementwise ops, BatchNorm and the optimiser are not counted, on either side).
A recipe with Muon (`muon_lr`) also does matmuls in its optimiser step: those are reported beside
the total (`optimizer_flops`, and the ratio with them counted), not hidden in it.

Each side is counted per training image in each phase of its run: the whitening layer's bias
trains for the first epochs (its backward then needs the gradient of the first 3x3 conv's input),
and is frozen after. Images are counted exactly: steps x batch, the last partial batch dropped.
    airbench: ceil(48 x 9.9) = 476 steps of 1024, the first 3 x 48 with the whitening bias training
    fast:     epochs x floor(50,000 / batch) steps, the first whiten_bias_epochs x that with it
airbench's net is built by its own package (make_net94), on the CPU.

    python benchmarks/fast_flops.py --out results/benchmarks/cpu-fast-flops.json
"""
import math

import torch
from common import guard, parser, save  # first: puts the project on the path

import models
from bench.config import from_recipe
from bench.flops import flops_per_image

TRAIN_IMAGES = 50_000
AIRBENCH = dict(epochs=9.9, batch=1024, whiten_bias_epochs=3)


def airbench_net():
    import airbench.lib_airbench94 as lib94

    to_cuda = torch.nn.Module.cuda
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self  # its builder moves the net to the GPU
    try:
        return lib94.make_net94().float()
    finally:
        torch.nn.Module.cuda = to_cuda


def phases(net, bias, steps, bias_steps, batch):
    """Total FLOPs of a run: `bias_steps` steps with the whitening bias training, the rest without."""
    bias.requires_grad_(True)
    with_bias = flops_per_image(net)
    bias.requires_grad_(False)
    without = flops_per_image(net)
    return dict(flops_per_image_bias_training=with_bias, flops_per_image_bias_frozen=without,
                steps=steps, batch=batch, images=steps * batch, steps_bias_training=bias_steps,
                total_flops=batch * (bias_steps * with_bias + (steps - bias_steps) * without))


def muon_flops(net, steps, ns_steps=3):
    """Matmul FLOPs of Muon's orthogonalisation over a run: per trainable filter, flattened to the
    smaller side m by the larger n, each Newton-Schulz step is x @ x.T (2 m^2 n), gram @ gram (2 m^3)
    and (.) @ x (2 m^2 n), as bench/fast.py's orthogonalise does."""
    per_step = 0
    for p in net.parameters():
        if p.dim() == 4 and p.requires_grad:
            m, n = sorted((p.shape[0], p[0].numel()))
            per_step += ns_steps * (4 * m * m * n + 2 * m ** 3)
    return per_step * steps


def main():
    p = parser(__doc__, smoke=False, data=False, device=False)  # counts FLOPs on the CPU, reads no images
    p.add_argument("--recipe", default="fast", help="the harness recipe counted (default fast)")
    a = p.parse_args()
    per_epoch = TRAIN_IMAGES // AIRBENCH["batch"]
    ab = airbench_net()
    ab[0].weight.requires_grad_(False)  # frozen in airbench (its whitening weights)
    air = phases(ab, ab[0].bias, math.ceil(per_epoch * AIRBENCH["epochs"]),
                 AIRBENCH["whiten_bias_epochs"] * per_epoch, AIRBENCH["batch"])

    cfg = from_recipe(a.recipe)
    net = models.create(cfg.model, **cfg.model_kwargs)
    if cfg.whiten:
        net[0].weight.requires_grad_(False)
    steps_per_epoch = TRAIN_IMAGES // cfg.batch_size
    bias_steps = min(cfg.whiten_bias_epochs, cfg.epochs) * steps_per_epoch if cfg.whiten else cfg.epochs * steps_per_epoch
    ours = phases(net, net[0].bias, cfg.epochs * steps_per_epoch, bias_steps, cfg.batch_size)
    ratio = ours["total_flops"] / air["total_flops"]
    if cfg.muon_lr:
        ours["optimizer_flops"] = muon_flops(net, ours["steps"])
        ours["ratio_with_optimizer_flops"] = (ours["total_flops"] + ours["optimizer_flops"]) / air["total_flops"]
    figures = {"airbench94": air, a.recipe: ours, "ratio_fast_to_airbench": ratio,
               "recipe": {k: v for k, v in cfg.to_dict().items() if k in ("model", "model_kwargs", "epochs",
                                                                          "batch_size", "whiten_bias_epochs")}}
    for name, f in (("airbench94", air), (a.recipe, ours)):
        print(f"{name}: {f['images']:,} images, {f['flops_per_image_bias_frozen'] / 1e9:.4f} GFLOP per image "
              f"(bias frozen), {f['total_flops'] / 1e15:.2f} PFLOP in all")
    print(f"{a.recipe} / airbench94 training FLOPs: {ratio:.4f}")
    if cfg.muon_lr:
        print(f"{a.recipe}'s Muon orthogonalisation: {ours['optimizer_flops'] / 1e12:.2f} TFLOP more; counted, "
              f"{ours['ratio_with_optimizer_flops']:.4f}x airbench94's")
    save(a.out, "fast_flops", figures, "cpu", a)


if __name__ == "__main__":
    guard(main)
