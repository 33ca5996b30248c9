"""`bench maxbatch`: the largest batch that trains a step within a memory budget.

Doubling from --start until a probe fails, then bisection down to --granularity. Each probe is
a fresh process (`python -m bench.maxbatch PROBE_JSON`) that builds the model and optimizer and
trains two steps at that batch (two, so the optimizer's momentum buffers exist), then reports:
  - on a GPU: fits unless allocation fails under
    torch.cuda.set_per_process_memory_fraction(limit / device memory); peak = max_memory_allocated;
  - on a CPU: peak = the probe's peak RSS (VmHWM, the whole process: Python, torch, model and
    activations); fits if it stays within the limit. A watcher ends the probe as soon as its RSS
    passes the limit, so a too-large batch cannot take the host down.
Probe inputs are random tensors of the batch's shape: memory does not depend on pixel values,
and the probe measures no accuracy.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

from .config import BenchError, canonical_kwargs, resolve_device, validate

UNITS = {"b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text):
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in UNITS or float(m.group(1)) <= 0:
        # a bare number is refused: "16" meant as GiB would be a 16-byte cap, a max batch of 0 recorded
        raise BenchError(f"memory limit must be a positive size with its unit, like 16GiB, 2000MB, 1.5G "
                         f"or 4096B; got {text!r}")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def probe_once(cfg, batch, limit):
    """Run one probe in a fresh process: (fits, peak_bytes, note)."""
    spec = json.dumps({"config": cfg.to_dict(), "batch": batch, "limit": limit})
    proc = subprocess.run([sys.executable, "-m", "bench.maxbatch", spec], capture_output=True, text=True)
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            out = json.loads(line)
            return bool(out["fits"]), out.get("peak_bytes"), out.get("note", "")
        except (ValueError, KeyError, TypeError):
            continue
    tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    if proc.returncode == -9:  # SIGKILL: the host's out-of-memory killer; that batch does not fit
        return False, None, f"probe killed (SIGKILL, likely out of host memory): {tail[:160]}"
    # Anything else is a bug or a broken setup, not a memory limit: a "largest batch" made of such
    # failures would be a wrong result, so stop and say what broke.
    raise BenchError(f"the probe at batch {batch} failed for a reason other than memory: {tail[:200]}")


def search(cfg, limit, start=16, max_batch=1 << 16, granularity=8, probe=probe_once, log=print):
    """(max_batch, peak_at_max, probes); max_batch 0 if even `start` does not fit."""
    probes = []

    def fits(b):
        ok, peak, note = probe(cfg, b, limit)
        probes.append([b, ok, peak, note])
        log(f"  batch {b}: {'fits' if ok else 'does not fit'}"
            + (f", peak {peak / 2**20:.0f} MiB" if peak else "") + (f" ({note})" if note else ""))
        return ok

    good, bad = 0, None
    b = start
    while b <= max_batch:
        if fits(b):
            good, b = b, b * 2
        else:
            bad = b
            break
    if bad is None and 0 < good < max_batch:  # doubling overshot --max: the batches up to it are unprobed
        if fits(max_batch):
            good = max_batch
        else:
            bad = max_batch
    if good == 0 and bad == start and start > 1:  # even the start failed: look below it
        lo, hi = 0, start
    else:
        lo, hi = good, bad
    if hi is not None:
        while hi - lo > max(granularity, 1):
            mid = (lo + hi) // 2
            if granularity > 1:
                mid = max(lo + granularity, mid // granularity * granularity)
                if mid >= hi:
                    break
            if fits(mid):
                lo = mid
            else:
                hi = mid
        good = lo
    peak = next((p[2] for p in probes if p[0] == good and p[1]), None)
    return good, peak, probes


def main(a):
    from . import results
    from .cli_config import config_from_args
    from .measure import fingerprint
    from .ui import say

    cfg = validate(config_from_args(a))
    limit = parse_size(a.memory_limit) if a.memory_limit else None
    if a.start < 1 or a.max_batch < a.start or a.granularity < 1:
        raise BenchError("need 1 <= --start <= --max and --granularity >= 1")
    cap = (f"{limit / 2**30:.2f} GiB" if limit >= 2**28 else f"{limit / 2**20:.3g} MiB") if limit else "the whole device"
    say(f"maxbatch: {cfg.model} {json.dumps(cfg.model_kwargs)} {cfg.precision} inplace={cfg.inplace}, "
        f"memory limit {cap}")
    started = datetime.now(timezone.utc)
    best, peak, probes = search(cfg, limit, a.start, a.max_batch, a.granularity, log=say)
    device = resolve_device(cfg)
    row = results.new_row("maxbatch")
    import models
    # a user's FILE.py:fn by the network's name, as its runs, with the file and version probed
    user = {k: v for k, v in models.row_fields(cfg.model).items() if k != "model_honours"}
    name = user["model"]
    row.update({"maxbatch_id": f"{name}-{cfg.key()[:8]}-{started:%Y%m%dT%H%M%S}-{os.urandom(3).hex()}",
           "schema_version": results.SCHEMA_VERSION, **user,
           "model_kwargs": json.dumps(canonical_kwargs(cfg.model, cfg.model_kwargs)),
           "precision": cfg.precision, "inplace": cfg.inplace, "channels_last": cfg.channels_last,
           "compile": cfg.compile, "memory_limit_bytes": limit, "max_batch": best,
           "peak_mem_bytes_at_max": peak, "probes": json.dumps(probes), "started_at": started,
           **fingerprint(device, 1)})
    path = results.write(a.results, "maxbatch", row["maxbatch_id"], [row])
    if best:
        say(f"largest batch that fits: {best} (recorded in {path})")
    else:
        say(f"no batch fits: the smallest probe, {a.start}, already exceeds {cap} (recorded as 0 in {path}); "
            "lower --start or raise --memory-limit")
    print(best, file=getattr(a, "stdout", sys.stdout))
    return 0


# --- the probe process ------------------------------------------------------------------------

def _probe(spec):
    import psutil
    import torch

    import models

    from . import precision
    from .config import RunConfig
    from .meters import peak_rss_bytes
    from .workload import compiled

    cfg = RunConfig(**spec["config"])
    batch, limit = spec["batch"], spec["limit"]
    device = torch.device(resolve_device(cfg))
    if device.type == "cuda" and device.index is None:  # set_per_process_memory_fraction needs an index
        device = torch.device("cuda", torch.cuda.current_device())

    def report(fits, peak, note=""):
        print(json.dumps({"fits": fits, "peak_bytes": peak, "note": note}), flush=True)

    if device.type == "cpu" and limit:
        def watch():
            me = psutil.Process()
            while True:
                rss = me.memory_info().rss
                if rss > limit:
                    report(False, rss, "RSS passed the limit")
                    os._exit(0)
                time.sleep(0.005)
        threading.Thread(target=watch, daemon=True).start()
    if device.type == "cuda":
        if limit:
            total = torch.cuda.get_device_properties(device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), device)
        torch.cuda.reset_peak_memory_stats(device)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    try:
        model = models.create(cfg.model, inplace=cfg.inplace, **cfg.model_kwargs).to(device, memory_format=fmt)
        net = compiled(model, cfg)  # as the run compiles it
        opt = precision.sgd(model.parameters(), fused=cfg.fused_on(device), lr=0.01, momentum=0.9, nesterov=True,
                            weight_decay=cfg.weight_decay)  # as the runner steps
        scaler = precision.grad_scaler(device, cfg.precision)
        x = torch.randn(batch, 3, 32, 32, device=device).to(memory_format=fmt)
        y = torch.randint(0, 10, (batch,), device=device)
        for _ in range(2):
            with precision.autocast(device, cfg.precision):
                loss = torch.nn.functional.cross_entropy(net(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            report(True, torch.cuda.max_memory_allocated(device))
        else:
            peak = peak_rss_bytes()
            report(limit is None or peak <= limit, peak, "" if limit is None or peak <= limit else "peak RSS over the limit")
    except torch.OutOfMemoryError as e:
        report(False, None, str(e).splitlines()[0][:160])
    except RuntimeError as e:
        if "out of memory" in str(e) or "can't allocate memory" in str(e):
            report(False, None, str(e).splitlines()[0][:160])
        else:
            raise


if __name__ == "__main__":
    _probe(json.loads(sys.argv[1]))
