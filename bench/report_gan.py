"""The GAN boards of `bench report` and the sample grids of its HTML page.

    gan_boards(runs, epochs) -> [(title, DataFrame), ...]
    sample_grid_html(results_dirs, runs) -> str (an HTML fragment; "" without GAN runs)

`runs`/`epochs` are results.read(dirs, "runs"/"epochs") frames (any workloads: the GAN runs are
picked out). A configuration is every GAN setting but the seed, on one device. Quality is the
Frechet distance in the judge's features (lower is better), named by each board's title, and only
runs with the same judge are lined up (the judge is part of the configuration).
"""
import base64
import html
from pathlib import Path

import pandas as pd

from .report_effects import contended_mask

GAN_WORKLOADS = ("dcgan", "wgan")
CONFIG = ["workload", "model_kwargs", "precision", "inplace", "channels_last", "compile", "batch_size",
          "epochs", "target", "lr", "train_images", "judge", "device_name"]
MIB = 1 << 20


def gan_runs(runs):
    """The GAN rows, with a `workload` column even on rows written before it existed."""
    if runs is None or runs.empty:
        return pd.DataFrame()
    runs = runs.copy()
    if "workload" not in runs.columns:
        runs["workload"] = None
    guess = runs["critic_steps_per_gen_step"].map({1.0: "dcgan", 5.0: "wgan"}) \
        if "critic_steps_per_gen_step" in runs.columns else None
    if guess is not None:
        runs["workload"] = runs["workload"].fillna(guess)
    out = runs[runs["workload"].isin(GAN_WORKLOADS)].copy()
    for c in CONFIG:
        if c not in out.columns:
            out[c] = None
    return out


def _config_key(df):
    # str() of each value, NaN included (pandas' string dtype would keep NaN as a float)
    return df[CONFIG].apply(lambda r: " | ".join(str(v) for v in r), axis=1)


def _label(row):
    kw = str(row.get("model_kwargs") or "").replace('"', "").replace(" ", "")
    flags = [row["precision"], "inplace" if row["inplace"] else "out-of-place"]
    flags += ["channels_last"] * bool(row.get("channels_last")) + ["compile"] * bool(row.get("compile"))
    n = row.get("train_images")
    size = f" {int(n):,} img" if pd.notna(n) else ""
    return f"{row['workload']} {kw} bs{row['batch_size']} {' '.join(map(str, flags))}{size}"


def _labels(g):
    """A label per row of g (which has `config`): _label, plus the settings that tell apart
    configurations whose _label is the same (lr, epochs, target, judge, ...)."""
    base = g.apply(_label, axis=1)
    out = base.copy()
    for _, same in g.groupby(base, sort=False):
        if same["config"].nunique() < 2:
            continue
        differ = [c for c in CONFIG if c != "device_name" and same[c].astype(str).nunique() > 1]
        for i, r in same.iterrows() if differ else ():  # differing by device only: the board shows it
            out[i] = base[i] + " " + " ".join(f"{c}={r[c]}" for c in differ)
    return out


def _fd_label(g):
    labels = g["fd_label"].dropna().unique() if "fd_label" in g.columns else []
    return labels[0] if len(labels) == 1 else "FD in each row's judge's features"


def summarise(runs):
    """One row per configuration: speed, memory, quality, time to the FD target."""
    g = gan_runs(runs)
    if g.empty:
        return pd.DataFrame()
    g["config"] = _config_key(g)
    g["label"] = _labels(g)
    g["contended"] = contended_mask(g)
    rows = []
    for _, grp in g.groupby("config", sort=False):
        ok = grp[grp["status"] == "ok"]
        first = grp.iloc[0]
        hit = ok[ok["reached_target"].fillna(False).astype(bool)]
        rows.append({
            "configuration": first["label"], "workload": first["workload"], "precision": first["precision"],
            "inplace": bool(first["inplace"]), "device": first["device_name"], "judge": first["judge"],
            "fd_label": _fd_label(grp), "runs": len(ok), "failed": len(grp) - len(ok),
            "contended": int(grp["contended"].sum()),
            # a step consumes batch_size x critic_steps_per_gen_step real images
            "gen_steps_per_s": _median(ok.assign(_s=pd.to_numeric(ok["train_images_per_s"], errors="coerce")
                                                 / (ok["batch_size"] * ok["critic_steps_per_gen_step"])), "_s"),
            "images_per_s": _median(ok, "train_images_per_s"),
            "critic_per_gen": _median(ok, "critic_steps_per_gen_step"),
            "peak_gpu_mib": _median(ok, "peak_gpu_mem_bytes") / MIB,
            "peak_rss_mib": _median(ok, "peak_host_rss_bytes") / MIB,
            "fd_target": first["target"], "reached": f"{len(hit)}/{len(ok)}",
            "median_time_to_target_s": _median(hit, "time_to_target_s"),
            # the runner's final/best of the quality metric: for a GAN, the FD
            "median_final_fd": _median(ok, "final_acc"), "median_best_fd": _median(ok, "best_acc"),
            "fd_real_test": _median(ok, "fd_real_test"),
        })
    return pd.DataFrame(rows)


def _median(df, col):
    if col not in df.columns:
        return float("nan")
    v = pd.to_numeric(df[col], errors="coerce").dropna()
    return float(v.median()) if len(v) else float("nan")


def effect(board, axis, base, other):
    """Pairs of configurations that differ only in `axis`: speed and memory of `other` over `base`."""
    keys = [c for c in ("workload", "precision", "inplace", "device", "judge") if c != axis]
    rows = []
    # only the axis's own words go: the setting held fixed stays, or two pairs would read alike
    words = {"precision": "fp32|fp16|bf16", "inplace": "inplace|out-of-place"}[axis]
    label_wo = board["configuration"].str.replace(rf"\b({words})\b", "", regex=True)
    b = board.assign(_rest=label_wo)
    for _, grp in b.groupby(keys + ["_rest"], dropna=False, sort=False):
        x, y = grp[grp[axis] == base], grp[grp[axis] == other]
        if len(x) != 1 or len(y) != 1:
            continue
        x, y = x.iloc[0], y.iloc[0]
        rows.append({"configuration": " ".join(x["_rest"].split()), "device": x["device"],
                     f"gen_steps_per_s {base}": x["gen_steps_per_s"], f"gen_steps_per_s {other}": y["gen_steps_per_s"],
                     "speed ratio": y["gen_steps_per_s"] / x["gen_steps_per_s"],
                     f"peak_mib {base}": _mem(x), f"peak_mib {other}": _mem(y),
                     "memory ratio": _mem(y) / _mem(x),
                     "contended runs": int(x["contended"] + y["contended"])})  # then not a finding
    return pd.DataFrame(rows)


def _mem(r):
    gpu = r["peak_gpu_mib"]
    return gpu if gpu == gpu else r["peak_rss_mib"]  # the GPU's peak, else the process's (CPU)


def fd_by_epoch(runs, epochs):
    """Median FD (and the WGAN's Wasserstein estimate) per configuration and epoch."""
    g = gan_runs(runs)
    if g.empty or epochs is None or epochs.empty or "fd" not in epochs.columns:
        return pd.DataFrame()
    g["config"] = _config_key(g)  # the device is part of it
    g["configuration"] = _labels(g) + " | " + g["device_name"].astype(str)
    e = epochs.merge(g[["run_id", "configuration"]], on="run_id")
    if e.empty:
        return pd.DataFrame()
    out = e.pivot_table(index="configuration", columns="epoch", values="fd", aggfunc="median")
    out.columns = [f"fd epoch {c}" for c in out.columns]
    return out.reset_index()


def gan_boards(runs, epochs):
    """[(title, DataFrame)]: speed and memory, time to the FD target, in-place and precision effects,
    FD per epoch. Empty without GAN runs."""
    board = summarise(runs)
    if board.empty:
        return []
    speed = board[["configuration", "device", "runs", "failed", "contended", "gen_steps_per_s", "images_per_s",
                   "critic_per_gen", "peak_gpu_mib", "peak_rss_mib"]].sort_values("gen_steps_per_s", ascending=False)
    out = [("GAN speed and memory (a step: one generator update and its critic updates; contended: runs "
            "measured while other processes held the CPU, whose speeds describe the crowd)", speed)]
    # only distances in one judge's features compare: a time-to-target and a per-epoch board per judge
    judges = board["judge"].fillna("").astype(str)
    for j in dict.fromkeys(judges):
        part = board[judges == j]
        ttt = part[["configuration", "device", "fd_target", "reached", "median_time_to_target_s", "median_final_fd",
                    "median_best_fd", "fd_real_test", "judge"]].sort_values(["median_time_to_target_s", "median_best_fd"])
        out.append((f"GAN time to the FD target (DAWNBench clock to the first epoch at or below it; "
                    f"{_fd_label(part)}; lower FD is better, not FID)", ttt))
    inplace = effect(board, "inplace", False, True)
    if not inplace.empty:
        out.append(("GAN in-place effect (in-place over out-of-place)", inplace))
    for low in ("fp16", "bf16"):
        prec = effect(board, "precision", "fp32", low)
        if not prec.empty:
            out.append((f"GAN precision effect ({low} over fp32)", prec))
    run_judges = runs["judge"].fillna("").astype(str) if "judge" in runs.columns else pd.Series("", index=runs.index)
    for j in dict.fromkeys(judges):
        per_epoch = fd_by_epoch(runs[run_judges == j], epochs)
        if not per_epoch.empty:
            out.append((f"GAN FD per epoch (median over seeds; {_fd_label(board[judges == j])})", per_epoch))
    return [(t, df.reset_index(drop=True)) for t, df in out]


def sample_grid_html(results_dirs, runs):
    """<section> of sample grids: per configuration, its latest finished run's last-epoch samples
    (RESULTS/samples/<run_id>.png, embedded as data URIs so the page stands alone)."""
    g = gan_runs(runs)
    if g.empty:
        return ""
    dirs = [Path(d) for d in ([results_dirs] if isinstance(results_dirs, (str, Path)) else results_dirs)]
    g["config"] = _config_key(g)
    if "finished_at" in g.columns:
        g = g.sort_values("finished_at", na_position="first")
    figures = []
    for _, grp in g.groupby("config", sort=False):
        for _, row in grp.iloc[::-1].iterrows():
            png = _find_png(row, dirs)
            if png is None:
                continue
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            fd = row.get("final_acc")  # the final quality: the FD
            done = row.get("epochs_completed")
            caption = (f"{_label(row)} on {row['device_name']}: epoch {int(done) if pd.notna(done) else '?'}, "
                       f"{row.get('fd_label') or 'FD'} {fd:.1f}" if fd is not None and fd == fd else _label(row))
            figures.append(f'<figure class="gan-samples"><img alt="{_e(caption)}" width="274" height="274" '
                           f'src="data:image/png;base64,{data}"><figcaption>{_e(caption)} '
                           f'(run {_e(row["run_id"])})</figcaption></figure>')
            break
    if not figures:
        return ""
    return ('<section id="gan-samples"><h2>GAN samples</h2><p>64 images per configuration from its latest '
            'run\'s last epoch, from the same latent vectors in every run.</p>\n' + "\n".join(figures) + "</section>")


def _find_png(row, dirs):
    name = f"{row['run_id']}.png"
    src = row.get("source_file")
    candidates = ([Path(src).parent.parent / "samples" / name] if isinstance(src, str) else []) + \
        [d / "samples" / name for d in dirs]
    return next((p for p in candidates if p.is_file()), None)


def _e(s):
    return html.escape("" if s is None else str(s), quote=True)
