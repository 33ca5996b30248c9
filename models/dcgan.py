"""The lesson's DCGAN generator and critic (fast.ai 2018 lesson 12, ../shared/seeds/001_*.txt; the
WGAN notebook borrows them from the WGAN authors' code), written from the notes' description.

    create("dcgan", nf=64, nz=100, extra=1)  ->  DCGAN with .generator and .critic

Critic: strided convolutions, no pooling. A 4x4 stride-2 conv without BatchNorm, `extra` 3x3
stride-1 blocks, then 4x4 stride-2 blocks that double the channels until the grid is 4x4, and a
final 4x4 conv (no padding) to one number per image. Each block is conv -> LeakyReLU(0.2) ->
BatchNorm, the lesson's order (it discusses the order: "everybody seems to have a different order").
Generator: the mirror image with transposed convolutions. The latent vector is a 1x1 grid; a 4x4
stride-1 deconv makes it 4x4, 4x4 stride-2 deconvs halve the channels and double the grid until
half the image size, `extra` 3x3 stride-1 blocks, and a last 4x4 stride-2 deconv to 3 channels,
then tanh (images live in [-1, 1]). Blocks are deconv -> ReLU -> BatchNorm. No conv has a bias.

Scaled from the lesson's 64x64 to CIFAR's 32x32 by the same rule the lesson's code uses ("keep
using stride 2 till the grid is no bigger than 4"): the critic's pyramid has 2 stride-2 blocks
instead of 3 (channels nf -> 2nf -> 4nf at 16, 8, 4 px), and the generator starts at 4*nf channels
instead of 8*nf with 2 upsampling blocks instead of 3 (4nf -> 2nf -> nf at 4, 8, 16 px). The lesson
used nf=64, nz=100 and one extra layer: the defaults.

Differences from the notes' code, and why:
  - the critic returns one score per image, [B]; the lesson's `.mean(0)` over the batch moves into
    the loss, because the DCGAN's binary cross-entropy needs a logit per image. For the DCGAN the
    score is a logit (the sigmoid is inside BCEWithLogits, stable under fp16/bf16 autocast).
  - the DCGAN paper's initialisation (conv weights N(0, 0.02), BatchNorm scale N(1, 0.02)); the
    WGAN authors' code, which the lesson uses, applies the same.
In-place: LeakyReLU/ReLU run in place (conv backward needs its input, not its output, and the
BatchNorm after it reads the activation's output), and tanh runs in place on the last deconv's
output for the same reason; tests/test_gan.py proves the gradients equal the out-of-place ones.
"""
import torch
from torch import nn

from .registry import register_model


def conv_block(ni, no, ks, stride, bn=True, inplace=True):
    return nn.Sequential(
        nn.Conv2d(ni, no, ks, stride, padding=ks // 2 // stride, bias=False),
        nn.LeakyReLU(0.2, inplace=inplace),
        *([nn.BatchNorm2d(no)] if bn else []))


def deconv_block(ni, no, ks, stride, pad, inplace=True):
    return nn.Sequential(
        nn.ConvTranspose2d(ni, no, ks, stride, padding=pad, bias=False),
        nn.ReLU(inplace=inplace),
        nn.BatchNorm2d(no))


class Score(nn.Module):
    """[B, 1, 1, 1] -> [B]: one critic score per image."""

    def forward(self, x):
        return x.view(x.shape[0])


class Tanh(nn.Module):
    def __init__(self, inplace=True):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return x.tanh_() if self.inplace else x.tanh()


def critic(size=32, nf=64, extra=1, inplace=True):
    layers = [conv_block(3, nf, 4, 2, bn=False, inplace=inplace)]
    layers += [conv_block(nf, nf, 3, 1, inplace=inplace) for _ in range(extra)]
    grid, c = size // 2, nf
    while grid > 4:
        layers.append(conv_block(c, c * 2, 4, 2, inplace=inplace))
        grid, c = grid // 2, c * 2
    layers += [nn.Conv2d(c, 1, 4, padding=0, bias=False), Score()]
    return nn.Sequential(*layers)


def generator(size=32, nz=100, nf=64, extra=1, inplace=True):
    c, grid = nf // 2, 4
    while grid != size:
        c, grid = c * 2, grid * 2
    layers = [deconv_block(nz, c, 4, 1, 0, inplace)]
    grid = 4
    while grid < size // 2:
        layers.append(deconv_block(c, c // 2, 4, 2, 1, inplace))
        c, grid = c // 2, grid * 2
    layers += [deconv_block(c, c, 3, 1, 1, inplace) for _ in range(extra)]
    layers += [nn.ConvTranspose2d(c, 3, 4, 2, 1, bias=False), Tanh(inplace)]
    return nn.Sequential(*layers)


class DCGAN(nn.Module):
    """The pair. `forward(z)` scores generated images (what the generator's loss needs)."""

    def __init__(self, nf=64, nz=100, extra=1, inplace=True):
        super().__init__()
        if nf < 2 or nz < 1 or extra < 0:
            raise ValueError(f"dcgan needs nf >= 2, nz >= 1, extra >= 0; got nf={nf} nz={nz} extra={extra}")
        self.nz = nz
        self.generator = generator(32, nz, nf, extra, inplace)
        self.critic = critic(32, nf, extra, inplace)
        self.apply(_init)

    def noise(self, n, generator=None, device=None):
        return torch.randn(n, self.nz, 1, 1, generator=generator, device=device)

    def forward(self, z):
        return self.critic(self.generator(z))


def _init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


@register_model
def dcgan(nf: int = 64, nz: int = 100, extra: int = 1, num_classes=10, inplace=True):
    """`num_classes` is accepted for the zoo's interface and unused: a GAN has no classes."""
    return DCGAN(nf, nz, extra, inplace)
