"""The one place that maps a precision name to its dtype, autocast and loss scaling."""
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
