"""The Darknet-style CIFAR-10 network from fast.ai's 2018 lesson (cifar10-darknet notebook).

    create("darknet", blocks=(1, 2, 4, 6, 3), nf=32, width=0.5)

is the lesson's `Darknet([1, 2, 4, 6, 3], num_classes=10, nf=32)` layer for layer:
31,410,922 parameters (its last group ends at 1024 channels). `width` is the ResLayer's inner
width relative to its input: 0.5 is the lesson's `ni // 2` bottleneck, 1 is "wide", 2 wider.

In-place. The lesson's `x.add_(self.conv2(self.conv1(x)))` fails in current PyTorch: conv1
saved `x` for its weight gradient, so backward raises "modified by an inplace operation".
Adding into the block's output instead (`out.add_(x)`) fails too, because the in-place
LeakyReLU saved that output for its own backward. The correct formulation keeps the in-place
activations (BatchNorm output and activation share one buffer: the real saving) and adds the
residual out of place; `benchmarks/inplace_memory.py` measures what that saves, and
`tests/test_models.py` proves the gradients equal the out-of-place model's.

Initial BatchNorm scales. PyTorch up to 1.1 drew each BatchNorm weight from U(0, 1); 1.2 made them
ones (pytorch/pytorch#12259). The lesson ran on PyTorch 0.3, so `bn_weight="uniform"` is its
network as it started, drawn in the same order (each right after its convolution's weights);
"ones" is today's PyTorch. The `lesson` recipe uses "uniform".
"""
from typing import Literal

from torch import nn

from .registry import register_model


def conv_layer(ni, nf, ks=3, stride=1, inplace=True, bn_weight="ones"):
    # No conv bias: the BatchNorm right after it has one.
    conv = nn.Conv2d(ni, nf, kernel_size=ks, stride=stride, padding=ks // 2, bias=False)
    bn = nn.BatchNorm2d(nf, momentum=0.01)
    if bn_weight == "uniform":
        nn.init.uniform_(bn.weight)
    return nn.Sequential(conv, bn, nn.LeakyReLU(negative_slope=0.1, inplace=inplace))


class ResLayer(nn.Module):
    def __init__(self, ni, width=0.5, inplace=True, bn_weight="ones"):
        super().__init__()
        mid = max(1, int(round(ni * width)))
        self.conv1 = conv_layer(ni, mid, ks=1, inplace=inplace, bn_weight=bn_weight)
        self.conv2 = conv_layer(mid, ni, ks=3, inplace=inplace, bn_weight=bn_weight)

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


def group_layer(ni, num_blocks, stride, width, inplace, bn_weight="ones"):
    return [conv_layer(ni, ni * 2, stride=stride, inplace=inplace, bn_weight=bn_weight)] + [
        ResLayer(ni * 2, width, inplace, bn_weight) for _ in range(num_blocks)
    ]


@register_model(added=("bn_weight",))
def darknet(blocks: tuple[int, ...] = (1, 2, 4, 6, 3), nf: int = 32, width: float = 0.5,
            num_classes: int = 10, inplace: bool = True, bn_weight: Literal["ones", "uniform"] = "ones"):
    # else a nonsense keyword trains (width 0 clamps to 1 channel, a negative count to no blocks) or dies mid-build
    if nf < 1 or not width > 0 or min(blocks, default=0) < 0:
        raise ValueError(f"darknet needs nf >= 1, width > 0 and block counts >= 0; got nf={nf}, width={width}, "
                         f"blocks={list(blocks)}")
    layers = [conv_layer(3, nf, ks=3, stride=1, inplace=inplace, bn_weight=bn_weight)]
    for i, nb in enumerate(blocks):
        # Stride 1 for the second group: CIFAR's 32x32 grid is too small to halve every time.
        layers += group_layer(nf, nb, stride=2 - (i == 1), width=width, inplace=inplace, bn_weight=bn_weight)
        nf *= 2
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(nf, num_classes)]
    return nn.Sequential(*layers)
