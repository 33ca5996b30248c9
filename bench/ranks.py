"""Which rank of a DDP run failed first, and why.

When one rank fails, the others only see their peer vanish (gloo: "Connection closed by peer",
NCCL: a watchdog timeout), or torchrun's SIGTERM; only rank 0 writes the row, so without this the
row would say that, and the real reason, known only to the rank that failed, would be lost. Each
rank that fails a run prints one line (`report`); the parent that started torchrun reads those
lines and gives the row the reason of the rank that failed first (`amend`). Run by torchrun
directly (several nodes), the lines are in the ranks' logs, and the row keeps rank 0's reason.
"""
import json
import re
import sys
import time

_LINE = re.compile(r"^rank (\d+) failed: (\{.*\})$")
KEEP = 2000  # of a report's error: one write below the pipe's atomic size, so ranks' lines never interleave


def report(rank, run_id, status, error):
    """Say, on one line, that this rank failed run RUN_ID with STATUS and ERROR."""
    body = json.dumps({"run_id": run_id, "status": status, "t": time.time(), "error": error[-KEEP:]})
    sys.stderr.write(f"rank {rank} failed: {body}\n")
    sys.stderr.flush()


def parse(line):
    """(rank, report) from a `report` line; None for any other line."""
    m = _LINE.match(line)
    if not m:
        return None
    try:
        rep = json.loads(m.group(2))
    except ValueError:
        return None
    return (int(m.group(1)), rep) if isinstance(rep, dict) and "run_id" in rep else None


def amend(row, reports):
    """Give a failed ROW the status and reason of the rank that failed first, when that is not rank 0;
    rank 0's own reason stays, before it. True when the row changed."""
    mine = [(rep.get("t", 0), rank, rep) for rank, rep in reports if rep["run_id"] == row.get("run_id")]
    if row.get("status") == "ok" or not mine:
        return False
    _, rank, first = min(mine, key=lambda m: (m[0], m[1]))
    status = first.get("status") or "crashed"
    # a stop that reaches every rank (Ctrl-C, the time limit) or ranks that diverge together said what rank 0
    # said; a crash is the exception: rank 0's is often only its peer's exit
    if rank == 0 or status == row["status"] != "crashed":
        return False
    why = f"rank {rank} failed first ({status}); its error:\n{first.get('error', '')}"
    # its reason last, where readers look and what the row's 4000-character cut keeps
    row.update(status=status, error=f"{row.get('error') or ''}\n{why}"[-4000:])
    return True


def combine(own_cpu_s, peak_rss, device, same_host):
    """After an ok DDP run, when every rank is here (a failed run's peers may be gone): the CPU seconds
    of all ranks on this host (they are this run, not other load; only when all share one host) and the
    largest rank's peak RSS (rank 0's alone understated a run whose other ranks held more)."""
    import torch
    import torch.distributed as dist

    if same_host:
        t = torch.tensor([own_cpu_s], device=device)
        dist.all_reduce(t)
        own_cpu_s = t.item()
    if peak_rss is not None:
        t = torch.tensor([peak_rss], device=device, dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        peak_rss = int(t.item())
    return own_cpu_s, peak_rss
