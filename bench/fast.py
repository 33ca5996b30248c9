"""The `fast` recipe's training ideas (issue #17), each behind a RunConfig switch, after Keller
Jordan's published description of airbench (2024); written from that description, not its code.

The runner calls these at a handful of places, each marked `# fast:` there:
  - prepare(model, cfg, train_x, mean, std): whitening init, identity (dirac) init, frozen BN weights;
  - on_epoch(model, cfg, epoch[, thaw]): stop training the whitening bias after `whiten_bias_epochs`;
  - param_groups(model, cfg): BatchNorm biases at `bn_bias_lr_scale` x the lr (weight decay / scale);
  - schedule(cfg, total): the one-cycle schedule, or airbench's asymmetric triangle;
  - Lookahead.maybe(model, cfg, total) and .update(step): an EMA of the weights, copied back into
    the net every `lookahead_every` steps and at the last step;
  - optimizers(model, cfg, lr): SGD for everything, or with `muon_lr` Muon for the conv filters;
  - tta_logits(net, x, views): 1 view (none), 2 (mirror) or 6 (mirror x three 1-pixel shifts);
  - loader_options(cfg): `translate` pixels of reflection padding, alternating flips.
With every switch off (and the defaults of translate/tta) a run is exactly what it was before.
"""
import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import precision
from .schedule import one_cycle

TTA_VIEWS = (1, 2, 6)
SCHEDULES = ("one_cycle", "triangle")
WHITEN_EPS = 5e-4      # added to the patch covariance's eigenvalues: bounds the gain on near-empty directions
WHITEN_IMAGES = 5000   # images whose 2x2 patches estimate the covariance (more changes nothing measurable)


def views(cfg):
    """Test-time views: 1 without `tta` (--no-tta always turns it off); with it `tta_views`, or 2 (the mirror) if unset."""
    if not cfg.tta:
        return 1
    return 2 if cfg.tta_views is None else cfg.tta_views


def eval_views(cfg, epoch=None):
    """The views of the evaluation after `epoch`: with `tta_last_only` one before the last epoch."""
    if cfg.tta_last_only and epoch is not None and epoch < cfg.epochs:
        return 1
    return views(cfg)


def check(cfg, error):
    """Raise `error(message)` for a fast setting that cannot run."""
    if cfg.tta_views is not None and cfg.tta_views not in TTA_VIEWS:
        raise error(f"tta-views must be one of {', '.join(map(str, TTA_VIEWS))} "
                    f"(none, mirror, mirror x 1-pixel shifts), got {cfg.tta_views!r}")
    if cfg.tta_last_only and cfg.stop_at_target and views(cfg) > 1:  # it would stop on a 1-view score
        raise error("tta-last-only scores the epochs before the last on one view, so stop-at-target would stop on that score under the row's multi-view label; turn one of them off")
    if cfg.schedule not in SCHEDULES:
        raise error(f"unknown schedule {cfg.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if cfg.translate < 0 or cfg.translate > 16:
        raise error(f"translate must be 0 to 16 pixels, got {cfg.translate!r}")
    if cfg.whiten_bias_epochs < 0 or cfg.lookahead_every < 0:
        raise error("whiten-bias-epochs and lookahead-every must not be negative")
    if not 0 <= cfg.lookahead_decay < 1:
        raise error(f"lookahead-decay must be in [0, 1), got {cfg.lookahead_decay!r}")
    # `not a < v < b`, not `v < a`: NaN and infinity fail it (a NaN muon-lr was taken as Muon on)
    if not 0 < cfg.bn_bias_lr_scale < math.inf or not 0 < cfg.final_div < math.inf:
        raise error(f"bn-bias-lr-scale and final-div must be positive finite numbers, "
                    f"got {cfg.bn_bias_lr_scale!r} and {cfg.final_div!r}")
    if not 0 <= cfg.muon_lr < math.inf or not 0 <= cfg.muon_momentum < 1:
        raise error(f"muon-lr must be a finite number >= 0 (0 = off) and muon-momentum in [0, 1), "
                    f"got {cfg.muon_lr!r} and {cfg.muon_momentum!r}")
    if cfg.whiten and cfg.model != "fastnet":
        raise error(f"whiten needs a model with a 2x2 whitening layer first (fastnet), not {cfg.model!r}")


# --- initialisation ------------------------------------------------------------------------------

def prepare(model, cfg, train_x, mean, std):
    """Apply the switched-on initialisations to a freshly built model (on the CPU, before .to())."""
    if cfg.whiten:
        whiten_init(model[0], train_x, mean, std)
    if cfg.dirac:
        dirac_init(model)
    if cfg.bn_weight_frozen:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
                m.weight.requires_grad_(False)  # stays 1: the net learns only each channel's shift


@torch.no_grad()
def whiten_init(conv, train_x, mean, std, eps=WHITEN_EPS, n=WHITEN_IMAGES):
    """Make `conv` (3 -> 2k channels, kernel 2x2) whiten 2x2 patches of the normalised training
    images: its first k filters are the patch covariance's eigenvectors divided by the square root
    of their eigenvalues, the next k the same negated (so a following GELU passes both signs).
    The weight is frozen; the bias centres the output (it may train for `whiten_bias_epochs`)."""
    x = normalise(whiten_sample(train_x, n), mean, std)
    k = conv.kernel_size
    patches = F.unfold(x, k).transpose(1, 2).reshape(-1, 3 * k[0] * k[1]).double()
    mu = patches.mean(0)
    cov = torch.cov(patches.T)
    evals, evecs = torch.linalg.eigh(cov)
    w = (evecs.T / (evals + eps).sqrt()[:, None])                  # row i: eigenvector i, scaled
    w = torch.cat([w, -w])
    if conv.out_channels != len(w):
        raise ValueError(f"the whitening conv needs {len(w)} output channels, has {conv.out_channels}")
    conv.weight.copy_(w.view_as(conv.weight).float())
    conv.bias.copy_((-w @ mu).float())
    conv.weight.requires_grad_(False)


def whiten_sample(train_x, n):
    """`n` training images drawn across the whole set (seed 0: the same for every run), not the first
    `n`: a class-folder copy is decoded class by class, so its first 5,000 are all airplanes."""
    if len(train_x) <= n:
        return train_x
    return train_x[torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:n]]


def normalise(x_uint8, mean, std):
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x_uint8.float() - m) / s


@torch.no_grad()
def dirac_init(model):
    """Each 3x3 conv starts as the identity on its first in_channels outputs (the rest keep their
    random init): a deep net then begins close to a shallow one and trains faster early."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.out_channels >= m.in_channels \
                and m.groups == 1:
            nn.init.dirac_(m.weight[:m.in_channels])


def on_epoch(model, cfg, epoch, thaw=False):
    """Before 1-based `epoch`: the whitening bias trains for the first `whiten_bias_epochs` only.
    thaw=True (a new seed in the same process) makes it trainable again if epoch 1 trains it."""
    if not cfg.whiten:
        return
    trains = epoch <= cfg.whiten_bias_epochs
    if thaw and trains:
        model[0].bias.requires_grad_(True)
    elif not trains and model[0].bias.requires_grad:
        model[0].bias.requires_grad_(False)
        model[0].bias.grad = None


def freezes_whiten_bias(cfg):  # at some epoch, and so in the warm-up too
    return cfg.whiten and cfg.whiten_bias_epochs < cfg.epochs


@contextlib.contextmanager
def whiten_bias_frozen(model, cfg):
    """Freeze the whitening bias for the block (yields whether the run would ever freeze it), then
    restore it: the warm-up compiles the graphs of both states, so none compiles on the clock."""
    if not (freezes_whiten_bias(cfg) and model[0].bias.requires_grad):
        yield False
        return
    model[0].bias.requires_grad_(False)
    try:
        yield True
    finally:
        model[0].bias.requires_grad_(True)


# --- optimisation --------------------------------------------------------------------------------

def param_groups(model, cfg):
    """SGD parameter groups. The runner sets each group's lr to the schedule's x its `lr_scale`.
    BatchNorm biases get `bn_bias_lr_scale` x the lr and weight decay / scale, so their
    lr x decay product (the decay per step) is the other weights'."""
    bn_bias, other = [], []
    for m in model.modules():
        is_bn = isinstance(m, nn.modules.batchnorm._BatchNorm)
        for name, p in m.named_parameters(recurse=False):
            (bn_bias if is_bn and name == "bias" else other).append(p)
    s = cfg.bn_bias_lr_scale
    groups = [dict(params=other, lr_scale=1.0)]
    if bn_bias and s != 1.0:
        groups.append(dict(params=bn_bias, lr_scale=s, weight_decay=cfg.weight_decay / s))
    else:
        other.extend(bn_bias)
    return [g for g in groups if g["params"]]


def optimizers(model, cfg, lr, fused=False):
    """[SGD] for every weight, or with `muon_lr` [SGD for the rest, Muon for the trainable conv
    filters]. Each group's `lr_scale` is its lr / the schedule's lr: the runner sets the lrs each step.
    `fused`: SGD's fused kernel (cfg.fused_on(device)), which also takes fp16's loss scale without a sync."""
    groups = param_groups(model, cfg)
    muon = []
    if cfg.muon_lr:
        filters = {id(p) for p in model.parameters() if p.dim() == 4 and p.requires_grad}
        for g in groups:
            muon += [p for p in g["params"] if id(p) in filters]
            g["params"] = [p for p in g["params"] if id(p) not in filters]
        groups = [g for g in groups if g["params"]]
    opts = [precision.sgd(groups, fused=fused, lr=lr, momentum=cfg.mom_max, nesterov=cfg.nesterov,
                          weight_decay=cfg.weight_decay)] if groups else []
    if muon:
        opts.append(Muon([dict(params=muon, lr_scale=cfg.muon_lr / cfg.lr)], lr=cfg.muon_lr,
                         momentum=cfg.muon_momentum))
    return opts


def orthogonalise(g, steps=3, eps=1e-7):
    """The nearest semi-orthogonal matrix to the 2-D `g`, roughly (singular values pushed into about
    0.7..1.2, not exactly 1): a quintic Newton-Schulz iteration with the coefficients published with
    Muon (3.4445, -4.7750, 2.0315), tuned to raise small singular values fast. Three steps suffice
    for the update's direction (Keller Jordan, "Muon: an optimizer for hidden layers", 2024)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g / (g.norm() + eps)           # spectral norm <= Frobenius norm = 1: inside the basin
    wide = x.shape[0] <= x.shape[1]
    if not wide:
        x = x.T                        # x @ x.T is then the smaller Gram matrix
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x if wide else x.T


class Muon(torch.optim.Optimizer):
    """Muon (momentum, orthogonalised) for conv filters followed by BatchNorm: the Nesterov momentum
    of the gradient, flattened to (out, in*k*k) and orthogonalised, is the step. Before each step the
    filter is rescaled to Frobenius norm sqrt(out): BatchNorm makes the scale irrelevant to the
    output, and a fixed norm keeps the step's relative size (its effective lr) what the schedule says.
    No weight decay: the fixed norm does its job."""

    # With fp16, GradScaler hands this optimizer its scale and found_inf as tensors instead of reading
    # found_inf on the host (.item(), a sync every step): the step unscales and skips by itself.
    _step_supports_amp_scaling = True

    def __init__(self, params, lr, momentum, nesterov=True):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov))

    @torch.no_grad()
    def step(self, closure=None):
        scale, found_inf = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        for group in self.param_groups:
            mom = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:  # not setdefault: that would allocate every step
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf = state["momentum_buffer"]
                grad = p.grad if scale is None else p.grad / scale.to(p.grad.dtype)
                new_buf = buf * mom + grad
                d = grad.add(new_buf, alpha=mom) if group["nesterov"] else new_buf
                new_p = p * (p.shape[0] ** 0.5 / p.norm())
                new_p.add_(orthogonalise(d.flatten(1).float()).view_as(p).to(p.dtype), alpha=-group["lr"])
                if found_inf is not None:  # an overflowed fp16 step keeps both (torch.where: no host sync)
                    skip = found_inf.to(torch.bool)
                    new_buf, new_p = torch.where(skip, buf, new_buf), torch.where(skip, p, new_p)
                buf.copy_(new_buf)
                p.copy_(new_p)


def schedule(cfg, total):
    """[(lr, momentum)] per step. `triangle` (airbench's shape): lr rises linearly from lr/div to lr
    over the first pct% of the steps, then falls linearly to lr/final_div at the last step; the
    momentum stays at mom_max."""
    if cfg.schedule == "one_cycle":
        return one_cycle(total, cfg.lr, cfg.div, cfg.pct, cfg.mom_max, cfg.mom_min)
    return triangle(total, cfg.lr, cfg.div, cfg.pct, cfg.final_div, cfg.mom_max)


def triangle(total, lr, div, pct, final_div, mom):
    peak = max(int(round(total * pct / 100)), 1)
    out = []
    for i in range(total):
        if i < peak:
            f = 1 / div + (1 - 1 / div) * i / peak
        else:
            f = 1 + (1 / final_div - 1) * (i - peak) / max(total - 1 - peak, 1)
        out.append((lr * f, mom))
    return out


class Lookahead:
    """An exponential moving average of the weights (parameters and float buffers) that is also
    written back into the net: every `every` steps the average moves toward the net by
    (1 - decay_t) and the net is reset to it; at the last step the net takes the average.
    decay_t = decay**every * (step / total)**3: no averaging early, heavy averaging at the end."""

    def __init__(self, model, every, decay, total):
        self.every, self.decay, self.total = every, decay, total
        self.tensors = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
        self.avg = [t.detach().clone() for t in self.tensors]

    @classmethod
    def maybe(cls, model, cfg, total):
        return cls(model, cfg.lookahead_every, cfg.lookahead_decay, total) if cfg.lookahead_every else None

    @torch.no_grad()
    def update(self, step):
        """After `step` (1-based) optimizer steps."""
        if step % self.every == 0:
            d = self.decay ** self.every * (step / self.total) ** 3
            for a, t in zip(self.avg, self.tensors):
                a.lerp_(t.detach(), 1 - d)
                t.copy_(a)
        if step == self.total:
            self.apply()

    @torch.no_grad()
    def apply(self):
        for a, t in zip(self.avg, self.tensors):
            t.copy_(a)


# --- evaluation and data -------------------------------------------------------------------------

def tta_logits(net, x, views):
    """Logits for a batch with `views` test-time views: 1 the image; 2 the image plus its mirror
    (the harness's former `tta`); 6 that pair at weight 1/2, plus the pair shifted by one pixel
    down-right and up-left (reflection-padded) at 1/4 each."""
    if views == 1:
        return net(x)
    # each view's logits are copied before the next call: under CUDA graphs (--compile-mode
    # reduce-overhead) a call's output lives in memory that the next call overwrites
    logits = lambda t: net(t).clone()  # noqa: E731
    out = logits(x) + logits(x.flip(3))
    if views == 2:
        return out
    pad = F.pad(x, (1,) * 4, mode="reflect")
    h, w = x.shape[2:]
    out = out * 0.5
    for dy, dx in ((0, 0), (2, 2)):
        s = pad[:, :, dy:dy + h, dx:dx + w].contiguous(memory_format=_fmt(x))
        out = out + 0.25 * (logits(s) + logits(s.flip(3)))
    return out


def _fmt(x):
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


def loader_options(cfg):
    """DeviceLoader keywords: `translate` pixels of reflection padding for the random crop, and
    flips alternating by epoch instead of drawn at random."""
    return dict(pad=cfg.translate, flip_mode="alternate" if cfg.alt_flip else "random")
