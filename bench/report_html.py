"""The report as one self-contained HTML page: tables plus PNG plots embedded as data URIs,
no scripts, no network. Every string that comes from result files goes through html.escape."""
import base64
import html
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .report import (COST_COLUMNS, LATENCY_COLUMNS, LEADER_COLUMNS, RANK_RULE, boards_by_task, compile_notes,  # noqa: E402
                     cost_cells, fmt_num, latency_cells, leader_cells, model_label)

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1400px;color:#222;padding:0 16px}
table{border-collapse:collapse;margin:8px 0 24px;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;
text-align:right}th{background:#f2f2f2}td.l,th.l{text-align:left}img{max-width:100%;border:1px solid #ddd;
margin:6px 0}.note{color:#555;max-width:1000px}.wrap{overflow-x:auto}"""


def e(s):
    return html.escape("" if s is None else str(s), quote=True)


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _label(row):
    """Short enough for a legend; the group id leads to the full row in the tables."""
    inplace = "in-place" if row["inplace"] else "out-of-place"
    return (f"{model_label(row)} {row['precision']} bs{row['batch_size']} {inplace} x{row['world_size']} "
            f"[{row['group_id'][:6]}]")


def plot_curves(runs, epochs, board):
    """Test accuracy against wall time, one colour per configuration, all its runs."""
    fig, ax = plt.subplots(figsize=(9, 5))
    cmap = plt.get_cmap("tab10")
    for i, (_, b) in enumerate(board.head(10).iterrows()):
        ids = set(runs.loc[runs["group_id"] == b["group_id"], "run_id"])
        for j, (rid, ep) in enumerate(epochs[epochs["run_id"].isin(ids)].groupby("run_id")):
            ep = ep.sort_values("epoch")
            ax.plot(ep["wall_s"], ep["test_acc"], "-o", ms=3, color=cmap(i % 10), alpha=0.8,
                    label=_label(b) if j == 0 else None)
    for t in sorted(set(board["target"].dropna())):
        ax.axhline(float(t), color="k", ls="--", lw=1)
        ax.annotate(f" target {float(t) * 100:.1f}%", (0, float(t)), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=8)
    xs = epochs["wall_s"][epochs["wall_s"] > 0]
    if len(xs) and xs.max() / xs.min() > 20:  # runs of very different lengths: a log axis shows them all
        ax.set_xscale("log")
    ax.set_xlabel("wall time since the first training step, s (evaluation included)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Test accuracy against wall time (each line a run)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def plot_throughput_memory(board):
    fig, ax = plt.subplots(figsize=(9, 5))
    for _, b in board.iterrows():
        mem = b["peak_gpu_mem_bytes"] if not math.isnan(b["peak_gpu_mem_bytes"]) else b["peak_host_rss_bytes"]
        if math.isnan(mem) or math.isnan(b["mean_train_images_per_s"]):
            continue
        marker = "o" if not math.isnan(b["peak_gpu_mem_bytes"]) else "s"
        ax.scatter(mem / 2**20, b["mean_train_images_per_s"], marker=marker, s=40)
        ax.annotate(_label(b)[:40], (mem / 2**20, b["mean_train_images_per_s"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("peak memory, MiB (circles: GPU allocated; squares: host RSS on CPU runs)")
    ax.set_ylabel("training images/s")
    ax.set_title("Throughput against peak memory")
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_effects(effects):
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.4 * len(effects) + 1)))
    labels = [f"{r['axis']}: {r['b']} vs {r['a']} ({r['context'][:30]})" for _, r in effects.iterrows()]
    vals = [r["speedup_b_over_a"] for _, r in effects.iterrows()]
    ax.barh(range(len(vals)), vals, color=["#4c72b0" if v >= 1 else "#dd8452" for v in vals])
    ax.axvline(1.0, color="k", lw=1)
    ax.set_yticks(range(len(vals)), labels, fontsize=7)
    ax.set_xlabel("throughput ratio (B over A; >1: B is faster)")
    ax.set_title("Axis effects")
    ax.invert_yaxis()
    return _png(fig)


def table(headers, rows, left=()):
    head = "".join(f'<th class="{"l" if i in left else ""}">{e(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i in left else ""}">{e(c)}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<div class='wrap'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def page(rep, sources):
    runs, epochs, board, effects, hw, warnings = rep.runs, rep.epochs, rep.board, rep.effects, rep.hw, rep.warnings
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>CIFAR-10 time-to-accuracy leaderboard"
             f"</title><style>{CSS}</style></head><body>",
             "<h1>CIFAR-10 time-to-accuracy leaderboard</h1>",
             f"<p class='note'>From: {e(', '.join(map(str, sources)))}. {e(RANK_RULE)}</p>"]
    if board.empty:
        parts.append("<p>No run results found.</p>")
    left = (1, 7, 20)
    for title, g in boards_by_task(board):
        parts += [f"<h2>{e(title)}</h2>",
                  table([h for h, _, _ in LEADER_COLUMNS], [leader_cells(r) for _, r in g.iterrows()], left)]
    if not board.empty and len(epochs):
        parts += ["<h2>Accuracy against time</h2>", f"<img alt='accuracy against wall time' src='{plot_curves(runs, epochs, board)}'>"]
        parts += ["<h2>Throughput and memory</h2>",
                  f"<img alt='throughput against peak memory' src='{plot_throughput_memory(board)}'>"]
    notes = compile_notes(board)
    if notes:
        parts += ["<h2>Compilation on the clock</h2><ul>"] + [f"<li>{e(n)}</li>" for n in notes] + ["</ul>"]
    if len(rep.cost):
        parts += ["<h2>By cost</h2>", table(COST_COLUMNS, [cost_cells(i, r) for i, (_, r)
                                                            in enumerate(rep.cost.iterrows(), 1)], (1, 4))]
    if len(rep.latency):
        parts += ["<h2>Inference latency (batch 1)</h2>",
                  table(LATENCY_COLUMNS, [latency_cells(r) for _, r in rep.latency.iterrows()], (1, 3, 10))]
    parts.append("<h2>Axis effects</h2>")
    if len(effects):
        parts += [f"<img alt='axis effects' src='{plot_effects(effects)}'>",
                  table(["effect", "context", "runs", "time-to-target ratio"],
                        [[r["summary"], r["context"], f"{r['runs_a']}+{r['runs_b']}",
                          fmt_num(r["time_to_target_ratio_b_over_a"], "x")] for _, r in effects.iterrows()], (0, 1))]
    else:
        parts.append("<p>No pair of configurations differs in exactly one setting.</p>")
    parts.append("<h2>Hardware</h2>")
    if len(hw):
        parts.append(table(["configuration", "device", "GPUs", "runs", "median TTT s", "img/s", "cost"],
                           [[f"{model_label(r)} {r['precision']} bs{r['batch_size']} ({r['config_id']})",
                             r["device_name"], fmt_num(r["gpu_count"], "int"), fmt_num(r["runs"], "int"),
                             fmt_num(r["median_time_to_target_s"], "s"), fmt_num(r["mean_train_images_per_s"], "ips"),
                             fmt_num(r["cost_to_target_usd"], "usd")] for _, r in hw.iterrows()], (0, 1)))
    else:
        parts.append("<p>No configuration has results on more than one device yet.</p>")
    if warnings:
        parts += ["<h2>Files skipped</h2><ul>"] + [f"<li>{e(w)}</li>" for w in warnings] + ["</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)
