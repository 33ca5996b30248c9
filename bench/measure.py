"""What a number needs beside it: the hardware/software fingerprint, peak host memory, and GPU
power/energy/utilisation sampled from NVML in a background thread."""
import hashlib
import os
import platform
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import torch

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


def nvml_driver():
    try:
        import pynvml
        pynvml.nvmlInit()
        try:
            return pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML library, no driver, no GPU: the field stays empty
        return None


def fingerprint(device="cpu", world_size=1):
    import torchvision

    on_gpu = str(device).startswith("cuda")
    commit, dirty = git_commit()
    fp = {
        "device": "cuda" if on_gpu else "cpu",
        "device_name": torch.cuda.get_device_name(torch.device(device)) if on_gpu else f"CPU: {cpu_model()}",
        "gpu_count": world_size if on_gpu else 0,
        "gpus_visible": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "driver_version": nvml_driver() if on_gpu else None,
        "cuda_version": torch.version.cuda if on_gpu else None,
        "cudnn_version": torch.backends.cudnn.version() if on_gpu else None,
        "cpu_model": cpu_model(),
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "host_mem_bytes": psutil.virtual_memory().total,
        "hostname": socket.gethostname(),
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "git_dirty": dirty,
    }
    hw = "|".join(str(fp[k]) for k in ("device_name", "gpu_count", "cpu_model", "cpu_count", "host_mem_bytes"))
    fp["hardware_id"] = hashlib.sha256(hw.encode()).hexdigest()[:12]
    return fp


def peak_rss_bytes():
    """This process's peak resident set (VmHWM), not the current RSS."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib if sys.platform == "darwin" else kib * 1024


def compiled_graphs():
    """Graphs torch.compile has compiled so far in this process; None where torch does not say.
    The runner reads it around its timed steps, so a recompilation on the clock is recorded."""
    try:
        from torch._dynamo.utils import counters
        return int(counters["stats"]["unique_graphs"])
    except Exception:  # a private counter: a torch without it simply gives no figure
        return None


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


class GpuSampler:
    """Samples power and utilisation of one GPU every `interval` s and reads the energy counter
    at start and stop. Without NVML (or on a CPU run) it does nothing and reports nothing."""

    def __init__(self, device, interval=0.2):
        self.interval, self.handle, self.samples = interval, None, []
        self._stop = threading.Event()
        self._thread = None
        self.energy0 = None
        if not str(device).startswith("cuda"):
            return
        try:
            import pynvml
            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handle = self._handle(pynvml, torch.device(device))
        except Exception:
            self.handle = None

    @staticmethod
    def _handle(pynvml, device):
        # NVML numbers GPUs ignoring CUDA_VISIBLE_DEVICES; the PCI bus id is unambiguous.
        props = torch.cuda.get_device_properties(device)
        bus = getattr(props, "pci_bus_id", None)
        if bus is not None:
            pci = f"{getattr(props, 'pci_domain_id', 0):08X}:{bus:02X}:{getattr(props, 'pci_device_id', 0):02X}.0"
            try:
                return pynvml.nvmlDeviceGetHandleByPciBusId(pci)
            except Exception:
                pass
        return pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)

    def start(self):
        if self.handle is None:
            return self
        try:
            self.energy0 = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)  # mJ
        except Exception:
            self.energy0 = None
        self._thread = threading.Thread(target=self._loop, daemon=True, name="gpu-sampler")
        self._thread.start()
        return self

    def _loop(self):
        while not self._stop.wait(self.interval):
            try:
                power = self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0
                util = self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu
                self.samples.append((time.perf_counter(), power, util))
            except Exception:
                return

    def stop(self):
        """{energy_j, mean_power_w, mean_gpu_util} over the sampled span; empty without NVML."""
        if self.handle is None:
            return {}
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        out = {}
        if self.energy0 is not None:
            try:
                out["energy_j"] = (self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) - self.energy0) / 1000.0
            except Exception:
                pass
        if self.samples:
            out["mean_power_w"] = sum(s[1] for s in self.samples) / len(self.samples)
            out["mean_gpu_util"] = sum(s[2] for s in self.samples) / len(self.samples)
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            pass
        self.handle = None
        return out
