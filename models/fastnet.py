"""A small VGG-like net for fast CIFAR-10 training, after the ideas Keller Jordan published with
airbench ("94% on CIFAR-10 in 3.29 seconds on a single GPU", 2024); written here from that
description, not from its code.

2x2 conv (3 -> 24: the patch-whitening layer, set up and frozen by bench.fast.whiten_init) -> GELU
-> three groups of [3x3 conv, max-pool 2, BatchNorm, GELU, 3x3 conv, BatchNorm, GELU]
   (widths 64, 256, 256 by default; spatial 31 -> 15 -> 7 -> 3)
-> max-pool 3 -> linear (no bias) -> scaled by `scale`.

The net itself is plain: whitening, identity (dirac) initialisation and frozen BatchNorm weights
are applied by bench.fast.prepare, each behind its own RunConfig switch, so that an ablation can
turn one off without changing the architecture or its FLOPs. `inplace` is accepted for the zoo's
interface; GELU has no in-place form.
"""
from torch import nn

from .registry import register_model
from .resnet9 import Scale  # the logits' fixed scale, as ResNet-9's

WHITEN_OUT = 24      # 12 whitened patch directions (3 channels x 2 x 2), each with both signs
BN_MOMENTUM = 0.4    # PyTorch's convention (weight of the new batch): running stats follow fast
BN_EPS = 1e-12       # frozen unit weights and tiny eps: the BN is a pure per-channel standardiser


def bn(c):
    return nn.BatchNorm2d(c, momentum=BN_MOMENTUM, eps=BN_EPS)


def conv_group(ci, co):
    # pool before the BatchNorm: the BN and GELU then run on a quarter of the pixels
    return nn.Sequential(
        nn.Conv2d(ci, co, 3, padding=1, bias=False), nn.MaxPool2d(2), bn(co), nn.GELU(),
        nn.Conv2d(co, co, 3, padding=1, bias=False), bn(co), nn.GELU(),
    )


@register_model
def fastnet(widths: tuple[int, ...] = (64, 256, 256), scale: float = 1 / 9, num_classes=10, inplace=True):
    if len(widths) != 3 or min(widths) < 1:
        raise ValueError(f"widths must be three positive channel counts, got {list(widths)}")
    w1, w2, w3 = widths
    return nn.Sequential(
        nn.Conv2d(3, WHITEN_OUT, kernel_size=2, bias=True), nn.GELU(),
        conv_group(WHITEN_OUT, w1), conv_group(w1, w2), conv_group(w2, w3),
        nn.MaxPool2d(3), nn.Flatten(),
        nn.Linear(w3, num_classes, bias=False), Scale(scale),
    )
