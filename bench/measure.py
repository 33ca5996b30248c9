"""What a number needs beside it: the hardware and software fingerprint, and the identity of the
code that ran. The meters read during a run live in bench/meters.py."""
import functools
import hashlib
import os
import platform
import socket
import subprocess
from pathlib import Path

import psutil
import torch

from .config import usable_cpus
from .meters import peak_rss_bytes, sync  # noqa: F401 - the benchmarks import them from here

ROOT = Path(__file__).resolve().parent.parent


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit():
    """(commit, dirty) of the project's checkout, or (None, None) outside one.

    $BENCH_GIT_COMMIT names the commit instead, for a copy whose git metadata is not its own (a
    remote machine's copy of the tree, an unpacked archive); `dirty` is then unknown (None)."""
    if os.environ.get("BENCH_GIT_COMMIT"):
        return os.environ["BENCH_GIT_COMMIT"].strip(), None
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        if commit is None:
            return None, None
        status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def code_hash(root=ROOT):
    """sha256 (16 hex) of the harness's own Python sources (bench/, models/) as they are on disk:
    the identity of the code that ran, on any copy of the tree, with or without git. Results,
    configs and docs are not part of it."""
    h = hashlib.sha256()
    for pkg in ("bench", "models"):
        for p in sorted((Path(root) / pkg).rglob("*.py")):
            h.update(f"{p.relative_to(root).as_posix()}\0".encode())
            h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()[:16]


def nvml_facts(device):
    """{driver_version, gpu_power_limit_w} from NVML, or {} where NVML is not there."""
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception:  # no NVML library, no driver, no GPU: the fields stay empty
        return {}
    out = {}
    try:
        out["driver_version"] = pynvml.nvmlSystemGetDriverVersion()
        from .meters import gpu_handle
        out["gpu_power_limit_w"] = pynvml.nvmlDeviceGetEnforcedPowerLimit(gpu_handle(pynvml, torch.device(device))) / 1000
    except Exception:
        pass
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return out


@functools.cache
def running_code():
    """(commit, dirty, code_hash) of this process's own code, read once, at its first row: a checkout
    while a multi-seed process runs changes the files on disk, not the code the process imported, and
    a later seed's row must name what ran."""
    return (*git_commit(), code_hash())


def gpu_facts(device):
    """{name, total_memory} of the GPU, or {} where it would not open: the row of the run that failed on
    it (bench/runner.py records a process setup that failed) must still be written, saying why."""
    try:
        props = torch.cuda.get_device_properties(torch.device(device))
        return {"name": props.name, "total_memory": props.total_memory}
    except Exception:  # noqa: BLE001 - a CUDA error of any kind
        return {}


def fingerprint(device="cpu", world_size=1):
    import torchvision

    on_gpu = str(device).startswith("cuda")
    commit, dirty, code = running_code()
    nvml = nvml_facts(device) if on_gpu else {}
    gpu = gpu_facts(device) if on_gpu else {}
    fp = {
        "device": "cuda" if on_gpu else "cpu",
        "device_name": gpu.get("name") if on_gpu else f"CPU: {cpu_model()}",
        "gpu_count": world_size if on_gpu else 0,
        "gpu_mem_total_bytes": gpu.get("total_memory"),
        "gpu_power_limit_w": nvml.get("gpu_power_limit_w"),
        "driver_version": nvml.get("driver_version"),
        "cuda_version": torch.version.cuda if on_gpu else None,
        "cudnn_version": torch.backends.cudnn.version() if on_gpu else None,
        "cpu_model": cpu_model(),
        "cpu_count": usable_cpus(),
        "torch_threads": torch.get_num_threads(),
        "host_mem_bytes": psutil.virtual_memory().total,
        "hostname": socket.gethostname(),
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "git_dirty": dirty,
        "code_hash": code,
    }
    hw = "|".join(str(fp[k]) for k in ("device_name", "gpu_count", "cpu_model", "cpu_count", "host_mem_bytes"))
    fp["hardware_id"] = hashlib.sha256(hw.encode()).hexdigest()[:12]
    return fp
