"""Device-time efficiency of a sweep: a configuration's seeds in one process (the default) against
one process per run (`--isolate-seeds`), the same sweep file run both ways side by side, alternating
which goes first. Efficiency is a sweep's timed training over its wall time (RESULTS/sweeps/*.parquet);
the rest is process start-up, data loading, model build, warm-up and evaluation.

    BENCH_DATA=../shared/data/cifar10-jpeg.tar.xz python benchmarks/sweep_efficiency.py [--sweep FILE] [--reps N]
"""
import subprocess
import sys
import tempfile
from pathlib import Path

from common import guard, parser, positive, save

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


# --smoke: each run 1 epoch of 512 images (checks that it runs, measures nothing)
SMOKE_SET = ["--set", "epochs=1", "--set", "limit_train=512", "--set", "target=0.01"]


def one(sweep_file, data, isolate, smoke=False):
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "bench", "sweep", str(sweep_file), "--results", d] + (SMOKE_SET if smoke else [])
        cmd += (["--data", data] if data else []) + (["--isolate-seeds"] if isolate else [])
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"sweep failed ({p.returncode}): {p.stderr[-2000:]}")
        row = pd.read_parquet(Path(d) / "sweeps").iloc[0]
        runs = pd.read_parquet(Path(d) / "runs")
        if not (runs.status == "ok").all():
            sys.exit(f"a run failed: {runs[runs.status != 'ok'].error.tolist()}")
        keys = ("wall_s", "train_time_s", "eval_time_s", "setup_time_s", "other_time_s", "efficiency")
        return {k: float(row[k]) for k in keys} | {"runs": int(row["runs"]), "processes": int(row["processes"]),
                                                   "device": str(runs.device.iloc[0])}


def main():
    p = parser(__doc__, device=False)  # the sweep file says where its runs go
    p.add_argument("--sweep", default=str(ROOT / "configs" / "smoke.toml"), help="sweep file (default the smoke sweep)")
    p.add_argument("--reps", type=positive, default=2,
                   help="pairs of sweeps, alternating which runs first (default 2; 1 with --smoke, whose runs "
                        "are 1 epoch of 512 images)")
    a = p.parse_args()
    rows = []
    for i in range(1 if a.smoke else a.reps):
        order = [False, True] if i % 2 == 0 else [True, False]
        got = {iso: one(a.sweep, a.data, iso, a.smoke) for iso in order}
        rows.append({"shared": got[False], "isolated": got[True]})
        for name, iso in (("seeds in one process", False), ("one process per run", True)):
            r = got[iso]
            print(f"rep {i + 1} {name:22s}: {r['runs']} runs in {r['processes']} processes, wall {r['wall_s']:6.1f} s, "
                  f"training {r['train_time_s']:6.1f} s, eval {r['eval_time_s']:5.1f} s, setup {r['setup_time_s']:5.1f} s, "
                  f"other {r['other_time_s']:5.1f} s: efficiency {r['efficiency']:.3f}", flush=True)
    shared = [r["shared"]["efficiency"] for r in rows]
    isolated = [r["isolated"]["efficiency"] for r in rows]
    ratio = [s / i for s, i in zip(shared, isolated)]
    print(f"\nefficiency, seeds in one process vs one process per run: {', '.join(f'{s:.3f}' for s in shared)} vs "
          f"{', '.join(f'{i:.3f}' for i in isolated)} (ratio {', '.join(f'{r:.2f}x' for r in ratio)}); sweep {a.sweep}")
    save(a.out, "sweep_efficiency", {"reps": rows, "efficiency_shared": shared, "efficiency_isolated": isolated,
                                     "ratio": ratio, "sweep": a.sweep},
         rows[0]["shared"]["device"], a)  # the sweep file picks the device, not --device: fingerprint that one


if __name__ == "__main__":
    guard(main)
