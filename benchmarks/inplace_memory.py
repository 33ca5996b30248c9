"""In-place on vs off: peak memory of a training step, side by side, and the ratio.

  - on a GPU: torch.cuda.max_memory_allocated over one training step (after one untimed step,
    so optimizer state exists in both);
  - on a CPU: the peak RSS (VmHWM) of a fresh process training two steps, as `bench maxbatch`
    probes it (the whole process: Python, torch, weights and activations);
  - anywhere: the activation bytes autograd keeps for backward (distinct storages saved by the
    graph, weights excluded),
    which is deterministic and shows where the saving comes from.
The lesson's claim: in-place ops free memory for larger batches (`bench maxbatch` turns it into
the largest batch under a memory limit).

    python benchmarks/inplace_memory.py [--device cuda] [--batch 128]
"""
import json

import torch
from common import device_of, guard, parser, positive, save  # first: puts the project on the path

import models
from bench.config import RunConfig
from bench.maxbatch import probe_once

CASES = [("darknet", {"blocks": [1, 2, 4, 6, 3], "nf": 32, "width": 0.5}, "the lesson's Darknet"),
         ("darknet", {"blocks": [1, 2, 4, 6, 3], "nf": 32, "width": 1.0}, "Darknet, wide ResLayer"),
         ("resnet9", {"width": 1.0}, "ResNet-9"),
         ("wrn", {"depth": 16, "k": 4}, "WRN-16-4")]


def saved_bytes(name, kwargs, inplace, batch):
    seen = {}

    def pack(t):  # activations only: the weights are kept either way
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    torch.manual_seed(0)
    model = models.create(name, inplace=inplace, **kwargs)
    weights = {q.untyped_storage().data_ptr() for q in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randn(batch, 3, 32, 32)).sum()
    return sum(seen.values())


def gpu_peak(name, kwargs, inplace, batch, precision):
    device = torch.device("cuda")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    torch.manual_seed(0)
    model = models.create(name, inplace=inplace, **kwargs).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with torch.autocast("cuda", dtype=dtype, enabled=precision != "fp32"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del model, opt, x, y
    torch.cuda.empty_cache()
    return peak


def main():
    p = parser(__doc__)
    p.add_argument("--batch", type=positive, default=None, help="default 128 on a CPU, 512 on a GPU, 8 with --smoke")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="default fp32")
    a = p.parse_args()
    device = device_of(a.device)
    batch = a.batch or (8 if a.smoke else (128 if device == "cpu" else 512))
    cases = CASES[:1] if a.smoke else CASES
    rows = []
    for name, kwargs, label in cases:
        row = {"model": name, "model_kwargs": kwargs, "label": label, "batch": batch, "precision": a.precision}
        # kept-for-backward bytes come from a smaller batch (and always fp32): the row must say which
        row["saved_bytes_batch"], row["saved_bytes_precision"] = min(batch, 32), "fp32"
        row["saved_bytes"] = {str(ip): saved_bytes(name, kwargs, ip, row["saved_bytes_batch"]) for ip in (True, False)}
        if device == "cuda":
            row["peak_bytes"] = {str(ip): gpu_peak(name, kwargs, ip, batch, a.precision) for ip in (True, False)}
            row["peak_kind"] = "torch.cuda.max_memory_allocated"
        else:
            row["peak_bytes"] = {}
            for ip in (True, False):
                cfg = RunConfig(model=name, model_kwargs=kwargs, inplace=ip, precision=a.precision, device="cpu")
                fits, peak, note = probe_once(cfg, batch, None)
                row["peak_bytes"][str(ip)] = peak
            row["peak_kind"] = "peak RSS of a fresh process (VmHWM)"
        rows.append(row)
        on, off = row["peak_bytes"]["True"], row["peak_bytes"]["False"]
        son, soff = row["saved_bytes"]["True"], row["saved_bytes"]["False"]
        print(f"{label:24s} batch {batch}: peak in-place {on / 2**20:8.1f} MiB, out-of-place {off / 2**20:8.1f} MiB, "
              f"ratio {on / off:.3f} ({row['peak_kind']}); kept for backward at batch {min(batch, 32)}: "
              f"{son / 2**20:.1f} vs {soff / 2**20:.1f} MiB, ratio {son / soff:.3f}", flush=True)
    save(a.out, "inplace_memory", rows, device, a)
    print(json.dumps({r["label"]: round(r["peak_bytes"]["True"] / r["peak_bytes"]["False"], 4) for r in rows}))


if __name__ == "__main__":
    guard(main)
