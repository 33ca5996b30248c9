"""The report's ONE list of boards. Markdown, HTML and the terminal all loop over `boards(rep)`;
a board is a title, a note, headers and rows of text cells (a `Cell` carries a longer text for
hover), which headers the 100-column terminal shows, and which plot the page draws with it."""
import json
from dataclasses import dataclass, field, replace

import pandas as pd

from .report_effects import CONTENTION_RULE
from .row import CLOCK
from .report_fmt import config_name, distinct, fmt_num, fmt_range, missing, model_label, short_device
from .report_stats import RESAMPLES
from .summary import threshold_column

RANK_RULE = ("A configuration is ranked by median time to target only if more than half of its attempted "
             "runs (finished, diverged or out of memory) reached the target; the others are listed in their own "
             "section after the ranked ones. Runs that crashed, timed out or were interrupted are shown (✗) but not counted. Time to "
             "target is DAWNBench's clock: training time up to the end of the first epoch at or over the target, "
             "evaluation excluded.")
STATS_RULE = (f"Spread: the fastest and slowest run (min–max) and a bootstrap 95% interval of the median "
              f"({RESAMPLES} resamples; none under 2 runs). Two times differ only when the bootstrap 95% interval "
              "of their ratio of medians excludes 1; otherwise they are 'within noise' (with two runs a side this "
              "amounts to their ranges not overlapping). With a single run on a side the difference is 'untested'. Accuracy intervals (±95%) are t-intervals in percentage points (pp).")


class Cell(str):
    """A table cell's text, with a longer `full` text for a hover title (HTML) where it was shortened."""
    def __new__(cls, text, full=None):
        c = super().__new__(cls, text)
        c.full = full
        return c


@dataclass
class Board:
    key: str
    title: str
    headers: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    note: str = ""
    left: tuple = ()            # headers aligned left
    narrow: tuple = None        # headers shown in the terminal by default; None: a files-only board
    plot: str = None            # the page's plot drawn under this board
    items: list = field(default_factory=list)  # a bullet list instead of (or after) a table
    empty: str = ""             # said when there are neither rows nor items
    optional: tuple = ()        # headers dropped when no row has a value in them (keeps tables narrow)

    def pruned(self):
        """This board without its optional columns that are empty ('–') in every row."""
        drop = {i for i, h in enumerate(self.headers) if h in self.optional and all(str(r[i]) == "–" for r in self.rows)}
        if not drop:
            return self
        keep = [i for i in range(len(self.headers)) if i not in drop]
        return replace(self, headers=[self.headers[i] for i in keep], rows=[[r[i] for i in keep] for r in self.rows])


def _device(r):
    full = f"{r['device_name']} · {fmt_num(r.get('gpu_count'), 'int')} GPU(s) · hardware key {r['hardware_key']}"
    return Cell(short_device(r["device_name"], r.get("gpu_count"), r.get("cpu_count")), full)


def _config(r):
    code = "unrecorded" if missing(r.get("code_hash")) else r["code_hash"]
    full = (f"{model_label(r)} · {r['precision']} · batch {r['batch_size']} · in-place {r['inplace']} · "
            f"world {r['world_size']} · epochs {r['epochs']} · compile {r['compile']} · code {code}")
    if other_clock(r):
        full += f" · its clock: {other_clock(r)}"
    return Cell(r.get("configuration") or config_name(r), full)


def other_clock(r):
    """What a row's clock covers, where it is not this harness's own (an outside code's, as airbench's)."""
    c = r.get("clock")
    return None if missing(c) or c == CLOCK else str(c)


def _flags(r):
    out = ["other clock"] if other_clock(r) else []
    if r.get("contended_runs"):
        out.append(f"{int(r['contended_runs'])} contended")
    if not missing(r.get("timed_compiles")) and r["timed_compiles"] > 0:
        out.append("compiled on clock")
    if not missing(r.get("timed_syncs")) and r["timed_syncs"] > 0:
        out.append("host syncs on clock")
    return ", ".join(out) or "–"


def _gap(gaps, gid):
    c = gaps.get(gid)
    if not c:
        return "–"
    pct = f"{(c['ratio'] - 1) * 100:+.0f}%"
    return {"noise": f"{pct} (noise)", "differs": pct, "untested": f"{pct} (1 run)"}[c["verdict"]]


def _mem(r):
    return fmt_num(r["peak_gpu_mem_bytes"] if not missing(r["peak_gpu_mem_bytes"]) else r["peak_host_rss_bytes"], "mib")


LEADER = ["#", "configuration", "device", "runs", "time s", "min–max", "95% CI", "vs above", "acc", "±95% pp",
          "img/s", "MFU", "setup (warm) s", "mem MiB", "kJ", "cost", "flags", "group"]
LEADER_OPTIONAL = ("95% CI", "vs above", "±95% pp", "setup (warm) s", "kJ", "cost", "flags")


def _runs(r):
    """reached / attempted, then the runs that say nothing of the configuration (crashed, interrupted)."""
    attempted = r.get("attempted_runs")
    attempted = int(r["runs"]) if missing(attempted) else int(attempted)
    lost = int(r["failed_runs"]) - (attempted - int(r["runs"]))
    return f"{int(r['reached'])}/{attempted}" + (f" +{lost}✗" if lost else "")


def _leader_row(r, gaps):
    runs = _runs(r)
    setup = fmt_num(r["setup_time_s"], "s") + ("" if missing(r["warmup_time_s"]) else f" ({fmt_num(r['warmup_time_s'], 's')})")
    return [fmt_num(r["rank"], "int"), _config(r), _device(r), runs, fmt_num(r["median_time_to_target_s"], "s2"),
            fmt_range(r["min_time_to_target_s"], r["max_time_to_target_s"]),
            fmt_range(r["ci95_lo_time_to_target_s"], r["ci95_hi_time_to_target_s"]), _gap(gaps, r["group_id"]),
            fmt_num(r["mean_final_acc"], "acc"), fmt_num(r["ci95_final_acc"], "pp"),
            fmt_num(r["mean_train_images_per_s"], "ips"), fmt_num(r.get("mfu"), "mfu"), setup, _mem(r),
            fmt_num(r["mean_energy_j"], "j"), fmt_num(r["cost_to_target_usd"], "usd"), _flags(r), r["group_id"]]


def tasks(board):
    """The ranked groups of each task (data set, train images, target), the main task first: the most
    ranked groups, then the most runs."""
    if board.empty or "ranked" not in board.columns:  # e.g. a results folder of GAN runs only
        return []
    ranked = board[board["ranked"]]
    size = ranked.groupby("task").agg(n=("group_id", "size"), runs=("runs", "sum"))
    return [ranked[ranked["task"] == t] for t in size.sort_values(["n", "runs"], ascending=False).index]


def _task_name(r):
    n = "" if missing(r.get("train_images")) else f" ({int(r['train_images']):,} train images)"
    return f"{r['dataset']}{n}, target {fmt_num(float(r['target']), 'target')}"


def _leader_note(g):
    clock = ("other clock (flags): timed by an outside code's clock, not this harness's; hover the configuration "
             "for what it covers. ") if g.apply(other_clock, axis=1).notna().any() else ""
    return (clock + "runs: reached the target / attempted (finished, diverged or out of memory), +N✗: crashed, timed out "
            "or interrupted, not counted; time: median seconds to target; vs above: against the next faster rank.")


def leaderboards(rep):
    out = []
    for i, g in enumerate(tasks(rep.board)):
        hw = g["hardware_key"].nunique()
        where = "" if hw > 1 else f" on {_device(g.iloc[0])}"
        narrow = ["#", "configuration"] + (["device"] if hw > 1 else []) + ["runs", "time s", "min–max", "acc"]
        title = f"{'Leaderboard' if i == 0 else 'Also ranked'}: {_task_name(g.iloc[0])}{where}"
        out.append(Board(f"leader-{i}", title, LEADER, [_leader_row(r, rep.gaps) for _, r in g.iterrows()],
                         note=_leader_note(g), left=("configuration", "device", "flags", "group"),
                         narrow=tuple(narrow), plot="curves" if i == 0 else None, optional=LEADER_OPTIONAL))
    return out


def thresholds_board(rep):
    cols = [threshold_column(t) for t in rep.thresholds]
    heads = [f"{t * 100:g}%" for t in rep.thresholds]
    rows = []
    for _, r in rep.board.iterrows():
        cells = [Cell(("≤" if bool(r.get(c[:-2] + "_first_eval", False)) else "") + fmt_num(r[c], "s2")
                      + f" ({r[c.replace('time_to_', 'reached_')[:-2]]})") for c in cols]
        rows.append([_config(r), _device(r), fmt_num(r["target"], "target")] + cells + [r["group_id"]])
    return Board("thresholds", "Time to several accuracies", ["configuration", "device", "target"] + heads + ["group"],
                 rows, note=("Median seconds on the training clock to the first epoch at or over each accuracy, over "
                             "the finished runs that got there (how many of them in brackets); from the epoch files. "
                             "≤: a run got there at its first evaluation, so it may have got there sooner (a run "
                             "evaluated only at its end, as airbench, gives its whole training time)."),
                 left=("configuration", "device", "group"), narrow=tuple(["configuration"] + heads), plot="curves-all")


def effects_board(rep):
    e = rep.effects
    rows = [[f"{x['axis']}: B = {x['b']} vs A = {x['a']}", x["context"], f"{x['runs_a']}+{x['runs_b']}",
             fmt_num(x["speed_b_over_a"], "x"), x["speed_metric"], fmt_range(x["speed_lo"], x["speed_hi"], "s2"),
             {"noise": "within noise", "differs": "differs", "untested": "untested (1 run)",
              "empty": "no finished run on a side"}[x["verdict"]]
             + (" · contended" if x["contended_runs"] else ""),
             fmt_num(x["acc_diff_b_minus_a"], "dpp"), fmt_num(x["acc_ci95"] or None, "pp"), fmt_num(x["mem_ratio_b_over_a"], "x")]
            for _, x in e.iterrows()] if len(e) else []
    return Board("effects", "Axis effects", ["B vs A", "context", "runs A+B", "speed B/A", "speed by", "95% CI",
                                             "verdict", "acc B−A pp", "±95% pp", "mem B/A"], rows,
                 note=("Pairs of configurations that differ in one setting only, on the same hardware and code. "
                       "Speed B/A > 1: B is faster; measured by time to target when both reached it, else by "
                       "throughput. Effects from contended runs are marked and are not findings."),
                 left=("B vs A", "context", "speed by", "verdict"), narrow=("B vs A", "context", "speed B/A", "speed by", "verdict"),
                 plot="effects" if len(e) else None, items=list(e["summary"]) if len(e) else [],
                 empty="No pair of configurations differs in exactly one setting.")


def hardware_board(rep):
    rows = [[_config(r), _device(r), str(r["hardware_key"]), fmt_num(r.get("cpu_count"), "int"),
             fmt_num(r["gpu_count"], "int"), fmt_num(r["runs"], "int"), fmt_num(r["median_time_to_target_s"], "s2"),
             fmt_num(r["mean_train_images_per_s"], "ips"), fmt_num(r.get("mfu"), "mfu"),
             fmt_num(r["cost_to_target_usd"], "usd")] for _, r in rep.hw.iterrows()]
    return Board("hardware", "Hardware", ["configuration", "device", "hardware key", "cores", "GPUs", "runs",
                                          "time s", "img/s", "MFU", "cost"], rows,
                 note=("One configuration on several machines. The hardware key hashes the device, GPU count, CPU model, cores"
                       " and host memory (older rows: device and GPU count); /Nthr: a CPU run on N threads, fewer than its cores."),
                 left=("configuration", "device", "hardware key"), empty="No configuration has results on more than one machine yet.")


def machines_board(rep):
    """Every machine the figures come from, with the software that ran there: a figure's fingerprint."""
    runs = pd.concat([f for f in (rep.runs, rep.gan_runs) if f is not None and len(f)], ignore_index=True)
    rows = []
    for hw, g in runs.groupby(runs["hardware_id"].fillna(runs["device_name"].astype(str)), sort=False):
        r = g.iloc[0]
        commits = sorted({str(c)[:7] for c in g["git_commit"].dropna()}) if "git_commit" in g else []
        soft = {c: distinct(g, c) or "–"
                for c in ("torch_version", "cuda_version", "cudnn_version", "driver_version", "python_version")}
        rows.append([Cell(short_device(r["device_name"], r.get("gpu_count"), r.get("cpu_count")), str(r["device_name"])),
                     str(hw), fmt_num(r.get("cpu_count"), "int"), fmt_num(r.get("host_mem_bytes"), "gib"),
                     fmt_num(r.get("gpu_mem_total_bytes"), "mib"), soft["driver_version"], soft["cuda_version"],
                     soft["cudnn_version"], soft["torch_version"], soft["python_version"],
                     Cell(", ".join(commits[:3]) + (f" +{len(commits) - 3}" if len(commits) > 3 else ""),
                          ", ".join(commits)), str(len(g))])
    return Board("machines", "Machines and software", ["device", "hardware id", "cores", "host GiB", "GPU MiB",
                                                      "driver", "CUDA", "cuDNN", "torch", "Python", "commits", "runs"],
                 rows, note="Where every run on this page ran: the fingerprint each row carries (bench env prints a "
                            "machine's own). Commits: this project's, short.",
                 left=("device", "hardware id", "torch", "commits"), narrow=("device", "cores", "torch", "commits", "runs"))


def cost_board(rep):
    rows = [[str(r["cost_rank"]), _config(r), _task_name(r), _device(r), fmt_num(r["gpu_count"], "int"),
             fmt_num(r["median_time_to_target_s"], "s2"), f"${r['price_per_hour']:.2f}", fmt_num(r["cost_to_target_usd"], "usd")]
            for _, r in rep.cost.iterrows()]
    return Board("cost", "By cost", ["#", "configuration", "task", "device", "GPUs", "time s", "$/hour", "cost to target"],
                 rows, note="Ranked configurations on priced hardware, cheapest run to the target first within each task.",
                 left=("configuration", "task", "device"))


def latency_board(rep):
    rows = [[fmt_num(r["rank"], "int"), Cell(model_label(r)), str(r["precision"]), Cell(short_device(r["device_name"]), r["device_name"]),
             fmt_num(r["top1_acc"], "acc"), fmt_num(r["target"], "acc"), f"{r['latency_p50_ms']:.2f}",
             f"{r['latency_p99_ms']:.2f}", f"{r['latency_mean_ms']:.2f}",
             f"{r['throughput_images_per_s']:,.0f} ({int(r['throughput_batch_size'])})", str(r["run_id"])]
            for _, r in rep.latency.iterrows()]
    return Board("latency", "Inference latency (batch 1)", ["#", "model", "precision", "device", "top-1", "target",
                                                            "p50 ms", "p99 ms", "mean ms", "images/s (batch)", "run"], rows,
                 note=("DAWNBench's rule: each test image alone (batch 1); ranked within a task among checkpoints "
                       "whose top-1 reached their run's target."), left=("model", "device", "run"))


def sweeps_board(rep):
    s = rep.sweeps
    rows = [[str(r.get("sweep")), str(r.get("started_at"))[:19], fmt_num(r["wall_s"], "s"),
             f"{fmt_num(r.get('ok_runs'), 'int')}/{fmt_num(r.get('runs'), 'int')}", fmt_num(r["train_time_s"], "s"),
             fmt_num(r["eval_time_s"], "s"), fmt_num(r["setup_time_s"], "s"), fmt_num(r["other_time_s"], "s"),
             fmt_num(r.get("efficiency"), "pct"), Cell(short_device(r.get("device_name")), r.get("device_name"))]
            for _, r in s.iterrows()] if len(s) else []
    return Board("sweeps", "Device time", ["sweep", "started (UTC)", "wall s", "ok/runs", "training s", "eval s",
                                           "setup s", "other s", "efficiency", "device"], rows,
                 note=("Each `bench sweep` call: efficiency = the runs' training clocks / the sweep's wall time. "
                       "Other = wall - training - evaluation - setup: process starts, imports, gaps."),
                 left=("sweep", "device"), narrow=("sweep", "wall s", "training s", "other s", "efficiency"))


def unranked_board(rep):
    b = rep.board[~rep.board["ranked"]] if len(rep.board) else rep.board
    rows = [[_config(r), _device(r), fmt_num(r["target"], "target"), _runs(r), fmt_num(r["epochs"], "int"),
             fmt_num(r["best_acc"], "acc"), fmt_num(r["mean_final_acc"], "acc"), fmt_num(r["mean_train_images_per_s"], "ips"),
             fmt_num(r.get("mfu"), "mfu"), fmt_num(r["setup_time_s"], "s"), _mem(r), _flags(r), r["group_id"]]
            for _, r in b.iterrows()]
    return Board("unranked", "Throughput-only and unranked runs",
                 ["configuration", "device", "target", "reached", "epochs", "best acc", "final acc", "img/s", "MFU",
                  "setup s", "mem MiB", "flags", "group"], rows,
                 note=("Configurations where at most half the attempted runs reached their target: no rank, no time. "
                       "reached: reached / attempted (finished, diverged or out of memory), +N✗ crashed, timed out or interrupted."),
                 left=("configuration", "device", "flags", "group"),
                 narrow=("configuration", "target", "reached", "best acc", "img/s"), plot="throughput",
                 optional=("setup s", "flags"))


def compile_board(rep):
    items = [f"{model_label(r)} {r['precision']} batch {r['batch_size']} (group {r['group_id']}): torch.compile "
             f"compiled up to {int(r['timed_compiles'])} graph(s) during timed steps, so its times include "
             "compilation (give it --warmup-steps)"
             for _, r in rep.board.iterrows() if not missing(r.get("timed_compiles")) and r["timed_compiles"] > 0]
    return Board("compile", "Compilation on the clock", items=items, narrow=())


def notes_board(rep):
    items = [f"group {r['group_id']} ({config_name(r)}): {int(r['contended_runs'])} of its {int(r['runs'] + r['failed_runs'])} "
             "runs were measured under contention; its times include other processes' load"
             for _, r in rep.board.iterrows() if r.get("contended_runs")]
    items += [f"{config_name(s['row'])} on {s['hardware_key']} ran from different code ({', '.join(s['code_hashes'])}): "
              f"shown as separate groups {', '.join(s['groups'])}" for s in rep.splits]
    items += [f"code {p} pooled as one by `--same-code`: their runs are grouped together" for p in rep.pooled]
    items += [f"group {r['group_id']} ({config_name(r)}): its model takes {', '.join(json.loads(u))} only through `**kwargs`; "
              "nothing checked that it uses them" for _, r in rep.board.iterrows() if not missing(u := r.get("model_kwargs_unchecked"))]
    return Board("notes", "Contention, code changes and unchecked keywords", items=items, narrow=())


def boards(rep):
    """Every board of the report, in page order."""
    out = []
    if not rep.board.empty:  # classifier runs (a results directory may hold only GANs)
        out = leaderboards(rep)
        out += [thresholds_board(rep), effects_board(rep), hardware_board(rep), cost_board(rep), latency_board(rep),
                sweeps_board(rep), unranked_board(rep), compile_board(rep), notes_board(rep)]
    out += gan_boards(rep)
    out.append(machines_board(rep))
    if rep.warnings:
        out.append(Board("skipped", "Files skipped", items=list(rep.warnings)))
    out.append(Board("method", "How to read this", items=[
        RANK_RULE, STATS_RULE, CONTENTION_RULE,
        "Costs use $/GPU-hour on-demand list prices (PRICES in bench/report.py, sources and dates there; "
        "override with --prices). Each figure's configuration, hardware and run count are in leaderboard.json."]))
    # boards with nothing to show are dropped, except those that say why they are empty
    return [b.pruned() for b in out if b.rows or b.items or b.empty]


def gan_boards(rep):
    """The GAN workloads' boards (bench/report_gan.py) as Boards, shown in full."""
    if rep.gan_runs is None or rep.gan_runs.empty:
        return []
    from .report_gan import gan_boards as tables
    out = []
    for i, (title, df) in enumerate(tables(rep.gan_runs, rep.epochs)):
        rows = [[Cell("–") if pd.isna(v) else Cell(f"{v:.4g}" if isinstance(v, float) else str(v)) for v in r]
                for r in df.itertuples(index=False)]
        out.append(Board(f"gan-{i}", title, headers=[str(c) for c in df.columns], rows=rows,
                         left=(str(df.columns[0]),), narrow=tuple(str(c) for c in df.columns[:6])))
    return out


def visible(board, wide):
    """Column indices the terminal shows."""
    if wide or board.narrow is None:
        return list(range(len(board.headers)))
    return [i for i, h in enumerate(board.headers) if h in board.narrow]


def frame(board):
    return pd.DataFrame([[str(c) for c in r] for r in board.rows], columns=board.headers)
