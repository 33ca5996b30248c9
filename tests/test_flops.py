"""FLOPs per training image (bench/flops.py) against a count by hand, and the peak table."""
import pytest
import torch
from torch import nn

import models
from bench import flops


def multiply_adds_by_hand(model, side=32):
    """Multiply-adds of one image's forward pass: every Conv2d and Linear, in order, with its output
    size worked out from the previous one (kernel, stride, padding): no hooks, no profiler. Valid for
    a chain like Darknet's, where a residual keeps its input's size."""
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            (k, _), (s, _), (p, _) = m.kernel_size, m.stride, m.padding
            side = (side + 2 * p - k) // s + 1
            total += m.in_channels // m.groups * k * k * m.out_channels * side * side
        elif isinstance(m, nn.Linear):
            total += m.in_features * m.out_features
    return total


def test_lessons_darknet_within_5_percent_of_a_count_by_hand():
    model = models.create("darknet", blocks=(1, 2, 4, 6, 3), nf=32, width=0.5)
    forward = 2 * multiply_adds_by_hand(model)
    assert forward == pytest.approx(0.80e9, rel=0.02)  # the lesson's Darknet at width 0.5: about 0.80 GFLOP (a multiply-add as 2)
    assert flops.flops_per_image(model, backward=False) == pytest.approx(forward, rel=0.05)
    assert flops.flops_per_image(model) == pytest.approx(3 * forward, rel=0.05)


@pytest.mark.parametrize("name,kwargs", [("darknet", dict(blocks=(1, 1), nf=8, width=2)),
                                         ("resnet9", dict(width=0.25)), ("wrn", dict(depth=10, k=1))])
def test_training_is_about_three_forwards_for_every_model(name, kwargs):
    model = models.create(name, **kwargs)
    fwd = flops.flops_per_image(model, backward=False)
    assert 2.9 < flops.flops_per_image(model) / fwd < 3.0  # the first conv has no input gradient
    assert flops.flops_per_image(model, channels_last=True) == flops.flops_per_image(model)


def test_counting_leaves_the_model_alone():
    torch.manual_seed(0)
    model = models.create("resnet9", width=0.125)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flops.flops_per_image(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None and p.device.type == "cpu" for p in model.parameters())


class DataDependent(nn.Module):
    """Cannot run on the meta device (.item()): counted on a real CPU batch instead."""
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        x = x.flatten(1)
        return self.fc(x * (1.0 if x.sum().item() != 0 else 2.0))


def test_a_network_that_cannot_run_on_meta_is_counted_for_real():
    with pytest.raises(Exception):  # the premise: it does not run on the meta device
        with torch.device("meta"):
            DataDependent()(torch.empty(2, 3, 32, 32))
    # forward and the weight gradient; an input needs no gradient, so no third term here
    assert flops.flops_per_image(DataDependent()) == 2 * 2 * 3 * 32 * 32 * 10


@pytest.mark.parametrize("name,precision,peak", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989), ("NVIDIA H100 80GB HBM3", "fp32", 495),
    ("NVIDIA H100 PCIe", "fp16", 756), ("NVIDIA H200", "bf16", 989), ("NVIDIA A100-SXM4-80GB", "fp32", 156),
    ("NVIDIA A100 80GB PCIe", "bf16", 312), ("NVIDIA L4", "fp16", 121),
    ("NVIDIA H100 NVL", "bf16", None), ("NVIDIA H200 NVL", "bf16", None), ("CPU: AMD EPYC", "bf16", None),
    ("Tesla V100-SXM2-16GB", "fp16", None), (None, "bf16", None)])
def test_peak_by_device_name_and_precision(name, precision, peak):
    assert flops.peak_tflops(name, precision) == peak


def test_strict_fp32_and_mfu():
    assert flops.peak_tflops("NVIDIA H200", "fp32", tf32=False) == 67
    assert flops.mfu(2.4e9, 34_900, 989) == pytest.approx(2.4e9 * 34_900 / 1e12 / 989)
    assert flops.mfu(2.4e9, 34_900, None) is None and flops.mfu(None, 1.0, 989) is None


def test_the_run_rows_flop_fields():
    # the H200 figure: 34.9k images/s of the lesson's Darknet in fp16
    f = flops.run_fields(2_403_790_848, 34_900.0, "NVIDIA H200", "fp16")
    assert f["achieved_tflops"] == pytest.approx(83.9, abs=0.1) and f["peak_tflops"] == 989
    assert f["mfu"] == pytest.approx(f["achieved_tflops"] / 989)
    cpu = flops.run_fields(2_403_790_848, 100.0, "CPU: AMD EPYC 7B13", "bf16")
    assert cpu["peak_tflops"] is None and cpu["mfu"] is None and cpu["achieved_tflops"] > 0
