"""The meters a run reads around its timed steps: small objects with start() / epoch() / stop(),
so the runner treats them alike. None of them syncs the device inside the timed loop: the runner
calls them between epochs, after its own synchronize.

  GpuMemory   torch.cuda peak allocated / reserved, per epoch and over the run
  Nvml        power, utilisation, SM clock and clock-event (throttle) reasons sampled in a thread;
              energy from the counter
  HostLoad    what else ran on the host meanwhile: other processes' CPU share, steal, load average
  PeakRss     the process's peak resident set (VmHWM), reset at start where the kernel allows
  Compiles    graphs torch.compile compiled since start
  HostSyncs   synchronizing CUDA calls inside the timed steps (torch's sync debug mode, on CUDA)
"""
import contextlib
import os
import resource
import sys
import threading
import time
import warnings
from pathlib import Path

import torch


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def sync_within(device, timeout_s):
    """Wait for the device's queued work, but no longer than `timeout_s`: after a stop from outside
    the queue may hold a collective that never completes. True if it finished (or nothing to wait for)."""
    if not str(device).startswith("cuda"):
        return True
    done = torch.cuda.Event()
    done.record(torch.cuda.current_stream(device))
    end = time.perf_counter() + timeout_s
    while not done.query():
        if time.perf_counter() > end:
            return False
        time.sleep(0.001)
    return True


def unfinished(device, timeout_s):
    """None once the device's queued work finished within `timeout_s`, else why not: the wait itself
    fails in a poisoned CUDA context (the very crash being recorded), and the run's row must still go out."""
    try:
        return None if sync_within(device, timeout_s) else f"did not finish within {timeout_s:g} s"
    except Exception as e:  # noqa: BLE001 - any CUDA error: said in the row, not raised over it
        return f"could not be waited for ({type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]})"


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
    """Graphs torch.compile has compiled so far in this process; None where torch does not say."""
    try:
        from torch._dynamo.utils import counters
        return int(counters["stats"]["unique_graphs"])
    except Exception:  # a private counter: a torch without it simply gives no figure
        return None


class GpuMemory:
    def __init__(self, device):
        self.device, self.on = device, str(device).startswith("cuda")
        self.peak = self.reserved = 0

    def start(self):
        if self.on:
            torch.cuda.reset_peak_memory_stats(self.device)
        self.peak = self.reserved = 0
        return self

    def epoch(self):
        """This epoch's peak (since the last call), folded into the run's; None on a CPU."""
        if not self.on:
            return None
        now = torch.cuda.max_memory_allocated(self.device)
        self.peak = max(self.peak, now)
        self.reserved = max(self.reserved, torch.cuda.max_memory_reserved(self.device))
        torch.cuda.reset_peak_memory_stats(self.device)
        return now

    def stop(self):
        if not self.on:
            return {}
        self.epoch()
        return {"peak_gpu_mem_bytes": self.peak, "peak_gpu_reserved_bytes": self.reserved}


class PeakRss:
    def start(self):
        # Writing 5 to clear_refs resets VmHWM (Linux): each seed of a process gets its own peak.
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        return self

    def stop(self):
        return {"peak_host_rss_bytes": peak_rss_bytes()}


class Compiles:
    """Graphs torch.compile compiles during the timed steps (evaluation's own are not counted)."""

    def __init__(self, enabled):
        self.enabled, self.base, self.total = enabled, None, 0

    def start(self):
        self.total = 0
        return self

    def begin_epoch(self):
        self.base = compiled_graphs() if self.enabled else None  # no torch._dynamo import otherwise

    def end_epoch(self):
        """Graphs compiled since begin_epoch(), or None without compile."""
        if self.base is None:
            return None
        new = compiled_graphs() - self.base
        self.total += new
        self.base = None  # stop() adds only an epoch that never ended
        return new

    def stop(self):
        self.end_epoch()  # an epoch that raised (an OOM, a stop) never ended: its compilations count too
        return {"timed_compiles": self.total if self.enabled and compiled_graphs() is not None else None}


class HostSyncs:
    """Synchronizing CUDA calls inside the timed steps, as torch's sync debug mode reports them:
    GradScaler's .item() beside an unfused optimizer, a tensor used as a bool, nonzero(), a blocking
    copy to the host. The mode does not see every sync (torch.distributed, non_blocking copies from
    pageable memory), so 0 means none it can see. Null off CUDA. Each one costs a Python warning, so
    a run that syncs is timed a little slower than its syncs alone would make it."""

    SYNC = "called a synchronizing CUDA operation"

    def __init__(self, device, set_mode=None):
        self.on = torch.device(device).type == "cuda" or set_mode is not None
        self.set_mode = set_mode or torch.cuda.set_sync_debug_mode
        self.total = 0

    def start(self):
        self.total = 0
        return self

    @contextlib.contextmanager
    def steps(self):
        """Around one epoch's timed steps: counts their syncs; other warnings pass through."""
        if not self.on:
            yield
            return
        seen = []
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.filterwarnings("always", message=self.SYNC)
                warnings.filterwarnings("ignore", message="Synchronization debug mode is a prototype")
                self.set_mode("warn")
                try:
                    yield
                finally:
                    self.set_mode(0)
        finally:  # an epoch cut short (an OOM, a stop) counts the syncs it made too
            for w in seen:
                if self.SYNC in str(w.message):
                    self.total += 1
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def stop(self):
        return {"timed_syncs": self.total if self.on else None}


def _proc_stat():
    """(busy jiffies, steal jiffies, total jiffies) of the whole host, or None."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    steal = f[7] if len(f) > 7 else 0
    total = sum(f[:8])  # guest time is already inside user
    return total - idle - steal, steal, total


class HostLoad:
    """Other processes' share of the host's CPU time while the run trained: own CPU time (this
    process and the ranks beside it, `own_cpu_s`) subtracted from the host's busy time."""

    def start(self):
        self.t0, self.stat0, self.cpu0 = time.perf_counter(), _proc_stat(), self._own()
        return self

    @staticmethod
    def _own():
        t = os.times()
        return t.user + t.system

    def stop(self, own_cpu_s=None):
        stat = _proc_stat()
        out = {"load_avg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
        if self.stat0 is None or stat is None or stat[2] == self.stat0[2]:
            return out
        hz = os.sysconf("SC_CLK_TCK")
        busy, steal, total = (b - a for a, b in zip(self.stat0, stat))
        own = own_cpu_s if own_cpu_s is not None else self._own() - self.cpu0
        out["other_cpu_frac"] = max(0.0, busy / hz - own) / (total / hz)
        out["cpu_steal_frac"] = steal / total
        return out

    def own_cpu_s(self):
        return self._own() - self.cpu0


# NVML clock-event reasons worth reporting (GPU idle is the normal state between kernels)
THROTTLE_NAMES = {"SwPowerCap": "power cap", "HwSlowdown": "hardware slowdown",
                  "HwThermalSlowdown": "hardware thermal", "SwThermalSlowdown": "software thermal",
                  "HwPowerBrakeSlowdown": "power brake", "SyncBoost": "sync boost",
                  "ApplicationsClocksSetting": "application clocks", "DisplayClockSetting": "display clock"}


class Nvml:
    """Samples power, utilisation, SM clock and throttle reasons of one GPU every `interval` s and
    reads the energy counter at start and stop. Without NVML (or on a CPU) it reports nothing."""

    def __init__(self, device, interval=0.2):
        self.interval, self.handle, self.samples, self.reasons = interval, None, [], 0
        self._stop = threading.Event()
        self._thread = self.energy0 = None
        if not str(device).startswith("cuda"):
            return
        try:
            import pynvml
            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handle = gpu_handle(pynvml, torch.device(device))
        except Exception:  # no NVML library or driver: no figures, not an error
            self.handle = None

    def start(self):
        if self.handle is None:
            return self
        self.stop()  # a run that failed before recording its meters left its sampler running
        self.samples, self.reasons = [], 0
        self._stop.clear()
        try:
            self.energy0 = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)  # mJ
        except Exception:
            self.energy0 = None
        self._thread = threading.Thread(target=self._loop, daemon=True, name="gpu-sampler")
        self._thread.start()
        return self

    def _loop(self):
        n = self.nvml
        while not self._stop.wait(self.interval):
            try:
                self.samples.append((n.nvmlDeviceGetPowerUsage(self.handle) / 1000.0,
                                     n.nvmlDeviceGetUtilizationRates(self.handle).gpu,
                                     n.nvmlDeviceGetClockInfo(self.handle, n.NVML_CLOCK_SM)))
                self.reasons |= n.nvmlDeviceGetCurrentClocksEventReasons(self.handle)
            except Exception:
                return

    def stop(self):
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
            n = len(self.samples)
            out.update(mean_power_w=sum(s[0] for s in self.samples) / n, mean_gpu_util=sum(s[1] for s in self.samples) / n,
                       mean_sm_clock_mhz=sum(s[2] for s in self.samples) / n,
                       max_sm_clock_mhz=float(max(s[2] for s in self.samples)),
                       throttle_reasons=",".join(v for k, v in THROTTLE_NAMES.items()
                                                 if self.reasons & getattr(self.nvml, f"nvmlClocksEventReason{k}", 0)))
        return out

    def close(self):
        if self.handle is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
            self.handle = None


def gpu_handle(pynvml, device):
    """NVML numbers GPUs ignoring CUDA_VISIBLE_DEVICES; the PCI bus id is unambiguous."""
    props = torch.cuda.get_device_properties(device)
    bus = getattr(props, "pci_bus_id", None)
    if bus is not None:
        pci = f"{getattr(props, 'pci_domain_id', 0):08X}:{bus:02X}:{getattr(props, 'pci_device_id', 0):02X}.0"
        try:
            return pynvml.nvmlDeviceGetHandleByPciBusId(pci)
        except Exception:
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
