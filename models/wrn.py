"""Wide ResNet WRN-d-k (Zagoruyko & Komodakis, 2016): pre-activation basic blocks,
depth d = 6n + 4, widths 16, 16k, 32k, 64k. fast.ai's DAWNBench entry was a wrn_22
(d=22, k=6 here: 9,658,458 parameters; WRN-16-4: 2,748,890).

In-place: the activations run in place and the residual is added into conv2's output, which no
backward needs (a convolution saves its input, not its output), so `add_` is safe here.
"""
from torch import nn

from .registry import register_model


class WideBlock(nn.Module):
    def __init__(self, ni, nf, stride, dropout=0.0, inplace=True):
        super().__init__()
        self.inplace = inplace
        self.bn1 = nn.BatchNorm2d(ni)
        self.relu1 = nn.ReLU(inplace=inplace)
        self.conv1 = nn.Conv2d(ni, nf, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(nf)
        self.relu2 = nn.ReLU(inplace=inplace)
        # Never in place: it would overwrite the ReLU output that relu_ saved for its backward.
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1, bias=False)
        self.shortcut = None if (ni == nf and stride == 1) else nn.Conv2d(ni, nf, 1, stride, bias=False)

    def forward(self, x):
        h = self.relu1(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(h)
        out = self.conv2(self.drop(self.relu2(self.bn2(self.conv1(h)))))
        return out.add_(skip) if self.inplace else out + skip


@register_model
def wrn(depth: int = 22, k: int = 6, dropout: float = 0.0, num_classes: int = 10, inplace: bool = True):
    if (depth - 4) % 6 or depth < 10:
        raise ValueError(f"wrn depth must be 6n+4 (10, 16, 22, 28, ...), got {depth}")
    if k < 1 or not 0 <= dropout < 1:
        raise ValueError(f"wrn needs k >= 1 and dropout in [0, 1); got k={k}, dropout={dropout}")
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    layers = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)]
    for g in range(3):
        for i in range(n):
            ni = widths[g] if i == 0 else widths[g + 1]
            stride = 2 if (g > 0 and i == 0) else 1
            layers.append(WideBlock(ni, widths[g + 1], stride, dropout, inplace))
    layers += [nn.BatchNorm2d(widths[3]), nn.ReLU(inplace=inplace),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[3], num_classes)]
    return nn.Sequential(*layers)
