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
"""
from torch import nn

from .registry import register_model


def conv_layer(ni, nf, ks=3, stride=1, inplace=True):
    # No conv bias: the BatchNorm right after it has one.
    return nn.Sequential(
        nn.Conv2d(ni, nf, kernel_size=ks, stride=stride, padding=ks // 2, bias=False),
        nn.BatchNorm2d(nf, momentum=0.01),
        nn.LeakyReLU(negative_slope=0.1, inplace=inplace),
    )


class ResLayer(nn.Module):
    def __init__(self, ni, width=0.5, inplace=True):
        super().__init__()
        mid = max(1, int(round(ni * width)))
        self.conv1 = conv_layer(ni, mid, ks=1, inplace=inplace)
        self.conv2 = conv_layer(mid, ni, ks=3, inplace=inplace)

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


def group_layer(ni, num_blocks, stride, width, inplace):
    return [conv_layer(ni, ni * 2, stride=stride, inplace=inplace)] + [
        ResLayer(ni * 2, width, inplace) for _ in range(num_blocks)
    ]


@register_model
def darknet(blocks: tuple[int, ...] = (1, 2, 4, 6, 3), nf: int = 32, width: float = 0.5,
            num_classes: int = 10, inplace: bool = True):
    layers = [conv_layer(3, nf, ks=3, stride=1, inplace=inplace)]
    for i, nb in enumerate(blocks):
        # Stride 1 for the second group: CIFAR's 32x32 grid is too small to halve every time.
        layers += group_layer(nf, nb, stride=2 - (i == 1), width=width, inplace=inplace)
        nf *= 2
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(nf, num_classes)]
    return nn.Sequential(*layers)
