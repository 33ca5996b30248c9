"""The one place that maps a precision name to its dtype, autocast and loss scaling, and the
optimizers that take fp16's loss scale on the device (GradScaler then never reads its overflow
flag on the host: no sync in the timed loop)."""
import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def dtype(precision):
    return DTYPES[precision]


def autocast(device, precision):
    """Mixed precision for fp16/bf16; fp32 runs without autocast (on CUDA, PyTorch's default TF32
    convolutions)."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=DTYPES[precision], enabled=precision != "fp32")


def grad_scaler(device, precision):
    """fp16 needs loss scaling (its range is narrow); bf16 and fp32 do not."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


class RMSprop(torch.optim.Optimizer):
    """torch.optim.RMSprop's plain form (no momentum, centring or weight decay; the same arithmetic,
    so the same weights), which also takes fp16's loss scale. PyTorch's has no fused form, so with it
    GradScaler reads found_inf on the host (.item()) every step: a sync in the timed loop. Here
    GradScaler hands over grad_scale and found_inf as tensors, and an overflowed step moves nothing."""

    _step_supports_amp_scaling = True

    def __init__(self, params, lr, alpha=0.99, eps=1e-8):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        scale, found_inf = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if "square_avg" not in self.state[p]:
                    self.state[p]["square_avg"] = torch.zeros_like(p)
            sq = [self.state[p]["square_avg"] for p in params]
            grads = [p.grad for p in params]
            if scale is not None:
                grads = torch._foreach_div(grads, scale.to(grads[0].dtype))
            if found_inf is not None:
                skip = found_inf.to(torch.bool)
                grads = [torch.where(skip, 0.0, g) for g in grads]  # inf * 0 would be nan: where, not a product
                old = [s.clone() for s in sq]
            torch._foreach_mul_(sq, group["alpha"])
            torch._foreach_addcmul_(sq, grads, grads, value=1 - group["alpha"])
            if found_inf is not None:
                for s, o in zip(sq, old):
                    s.copy_(torch.where(skip, o, s))
            avg = torch._foreach_sqrt(sq)
            torch._foreach_add_(avg, group["eps"])
            torch._foreach_addcdiv_(params, grads, avg, value=-group["lr"])


def sgd(params, fused=False, **kw):
    """torch.optim.SGD, fused or not. Fused, its momentum buffers start at zero: PyTorch's fused step
    otherwise creates them with empty_like on its first step and, when fp16's first step overflows
    (GradScaler's first scale often does), skips writing them, so the next step starts from
    uninitialised memory. A zero buffer gives the first step the same arithmetic as PyTorch's copy
    of the gradient (0 * momentum + grad)."""
    opt = torch.optim.SGD(params, fused=fused or None, **kw)
    if fused and opt.defaults["momentum"]:
        for group in opt.param_groups:
            for p in group["params"]:
                opt.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return opt
