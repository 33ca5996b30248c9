"""FLOPs per training image, dense peak throughput by GPU, and model FLOPs utilisation (MFU).

flops_per_image: forward + backward of one 32x32x3 training image, counted by PyTorch's own
`torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions, forward and backward, a
multiply-add counted as 2 FLOPs; BatchNorm, activations, pooling and the optimizer step are not
counted: they are a small fraction and not what the peak measures). Counted once per
configuration on the meta device, where only shapes exist, so it costs no memory and no compute;
a network that cannot run on the meta device is counted on a real batch of 2 on the CPU.

MFU = flops_per_image x images/s / peak. The peaks are dense (no 2:4 sparsity) tensor-core
figures from the vendors' datasheets:
  H100 SXM, H200:  NVIDIA H100 Tensor Core GPU datasheet; NVIDIA H200 Tensor Core GPU datasheet
  H100 PCIe:       NVIDIA H100 Tensor Core GPU datasheet (PCIe column)
  A100:            NVIDIA A100 Tensor Core GPU datasheet (SXM and PCIe have the same dense peaks)
  L4:              NVIDIA L4 Tensor Core GPU datasheet
(the datasheets print the sparse figures, twice these, for bf16/fp16/TF32.)

Which peak a precision uses: bf16 and fp16 runs (autocast) use the bf16/fp16 peak. An fp32 run on
CUDA uses the TF32 peak: PyTorch runs convolutions in TF32 by default
(torch.backends.cudnn.allow_tf32 is True), and convolutions are nearly all of these networks'
FLOPs. Pass tf32=False to peak_tflops for code that turned TF32 off.
"""
import copy

import torch
from torch import nn

IMAGE = (3, 32, 32)

# dense TFLOP/s by precision
PEAK_TFLOPS = {
    "H100 SXM": {"bf16": 989.0, "fp16": 989.0, "tf32": 495.0, "fp32": 67.0},
    "H200": {"bf16": 989.0, "fp16": 989.0, "tf32": 495.0, "fp32": 67.0},
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.0},
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L4": {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.0},
}


def gpu_entry(device_name):
    """The PEAK_TFLOPS entry for a torch/NVML device name, or None.

    'NVIDIA H100 80GB HBM3' (the SXM part: NVML names it by its memory) -> 'H100 SXM';
    'NVIDIA H100 PCIe' -> 'H100 PCIe'; 'NVIDIA H200' -> 'H200'; 'NVIDIA A100-SXM4-80GB',
    'NVIDIA A100 80GB PCIe' -> 'A100'; 'NVIDIA L4' -> 'L4'. The NVL parts (other clocks) and
    anything else are unknown: None, so no MFU is made up."""
    if not device_name:
        return None
    name = device_name.upper().replace("-", " ")
    words = name.split()
    if "NVL" in words:
        return None
    if "H200" in words:
        return "H200"
    if "H100" in words:
        return "H100 PCIe" if "PCIE" in words else "H100 SXM"
    if any(w.startswith("A100") for w in words):
        return "A100"
    if "L4" in words:
        return "L4"
    return None


def peak_tflops(device_name, precision, tf32=True):
    """Dense peak TFLOP/s for a run's device and precision (fp32, fp16, bf16); None if unknown
    (a CPU, a GPU not in the table)."""
    entry = gpu_entry(device_name)
    if entry is None or precision not in ("fp32", "fp16", "bf16", "tf32"):
        return None
    if precision == "fp32" and tf32:
        precision = "tf32"
    return PEAK_TFLOPS[entry][precision]


def mfu(flops_per_image, images_per_s, peak):
    """Achieved / peak, from FLOPs per training image, training images/s and peak TFLOP/s."""
    if not flops_per_image or not images_per_s or not peak or peak <= 0:
        return None
    return flops_per_image * images_per_s / 1e12 / peak


def achieved_tflops(flops_per_image, images_per_s):
    if not flops_per_image or not images_per_s:
        return None
    return flops_per_image * images_per_s / 1e12


def run_fields(flops_per_image, images_per_s, device_name, precision):
    """The run row's FLOP columns for a finished run: flops_per_image, achieved_tflops,
    peak_tflops and mfu (each None where it cannot be known: no throughput, a CPU, an unlisted GPU)."""
    peak = peak_tflops(device_name, precision)
    return {"flops_per_image": flops_per_image, "achieved_tflops": achieved_tflops(flops_per_image, images_per_s),
            "peak_tflops": peak, "mfu": mfu(flops_per_image, images_per_s, peak)}


def flops_per_image(model, channels_last=False, backward=True, batch=2):
    """FLOPs of one training image through `model` (forward + backward; forward only with
    backward=False). The model is copied, never changed; counted on the meta device if it runs
    there, else on a real batch on the CPU. Counted at `batch` images and divided, since
    BatchNorm in training mode wants more than one."""
    try:
        return _count(_copy_to(model, "meta"), "meta", channels_last, backward, batch)
    except Exception:  # noqa: BLE001 - a network with data-dependent code: count it for real
        return _count(_copy_to(model, "cpu"), "cpu", channels_last, backward, batch)


def _copy_to(model, device):
    """A copy of `model` on `device`. To the meta device without copying any data: deepcopy's
    memo hands it an empty meta twin for every parameter and buffer (a GPU model is not
    duplicated in GPU memory to be counted)."""
    if device != "meta":
        twin = copy.deepcopy(model)
        on_meta = any(t.is_meta for t in list(twin.parameters()) + list(twin.buffers()))
        # a model built on the meta device has no data to copy: FLOPs need only the shapes
        return twin.to_empty(device=device) if on_meta else twin.to(device)
    memo = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo)


def _count(model, device, channels_last, backward, batch):
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(batch, *IMAGE, device=device).contiguous(memory_format=fmt)
    y = torch.zeros(batch, dtype=torch.long, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x)
        if backward:
            nn.functional.cross_entropy(out.float(), y).backward()
    return int(round(counter.get_total_flops() / batch))
