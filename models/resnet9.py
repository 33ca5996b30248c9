"""ResNet-9 from David Page's "How to train your ResNet" (2018), the DAWNBench single-GPU
winner: 6,573,120 parameters at width 1 (channels 64-128-256-512); `width` multiplies every
channel count (width 0.5: 1,646,112).

prep conv -> layer1 (conv, pool, residual of two convs) -> layer2 (conv, pool)
-> layer3 (conv, pool, residual) -> global max pool -> linear (no bias) scaled by 0.125.
"""
from torch import nn

from .registry import register_model


def conv_bn(ni, nf, inplace=True):
    return nn.Sequential(
        nn.Conv2d(ni, nf, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(nf),
        nn.ReLU(inplace=inplace),
    )


class Residual(nn.Module):
    def __init__(self, c, inplace=True):
        super().__init__()
        self.res = nn.Sequential(conv_bn(c, c, inplace), conv_bn(c, c, inplace))

    def forward(self, x):
        # Out of place for the same reason as Darknet's ResLayer: the in-place ReLU saved the
        # block's output for its backward.
        return x + self.res(x)


class Scale(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s


@register_model
def resnet9(width: float = 1.0, num_classes: int = 10, inplace: bool = True):
    if not width > 0:  # else every layer clamps to one channel and a run trains at chance
        raise ValueError(f"resnet9 width must be > 0, got {width}")
    c = [max(1, int(round(n * width))) for n in (64, 128, 256, 512)]
    return nn.Sequential(
        conv_bn(3, c[0], inplace),
        conv_bn(c[0], c[1], inplace), nn.MaxPool2d(2), Residual(c[1], inplace),
        conv_bn(c[1], c[2], inplace), nn.MaxPool2d(2),
        conv_bn(c[2], c[3], inplace), nn.MaxPool2d(2), Residual(c[3], inplace),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        nn.Linear(c[3], num_classes, bias=False), Scale(0.125),
    )
