"""How the report writes one value: numbers, model labels, short device names. Nothing here
knows about boards or output formats."""
import json
import math
import re

import pandas as pd


def distinct(frame, col):
    """A column's distinct values in a group of rows as text ('a, b'), or None. An int column read back
    as float (nulls beside it) shows as the ints its rows wrote."""
    vals = frame[col].dropna() if col in frame else []
    return ", ".join(sorted({str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in vals})) or None


def missing(v):
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _target(x):
    # a target keeps its decimals (90.6% must not read 91%), without padding 94% to 94.00%
    return f"{x * 100:.2f}".rstrip("0").rstrip(".") + "%"


def fmt_num(v, kind):
    if missing(v):
        return "–"
    return {"s": lambda x: f"{x:.1f}" if x < 1000 else f"{x:,.0f}", "s2": lambda x: f"{x:.2f}" if x < 100 else f"{x:.1f}",
            "acc": lambda x: f"{x * 100:.2f}%", "pct": lambda x: f"{x * 100:.0f}%", "target": _target, "ips": lambda x: f"{x:,.0f}",
            "mib": lambda x: f"{x / 2**20:,.0f}", "gib": lambda x: f"{x / 2**30:,.1f}", "usd": lambda x: f"${x:.3f}", "j": lambda x: f"{x / 1000:,.1f}",
            "x": lambda x: f"{x:.2f}x", "pp": lambda x: f"{x * 100:.2f}", "dpp": lambda x: f"{x * 100:+.2f}", "int": lambda x: f"{int(x)}",
            "mfu": lambda x: f"{x * 100:.1f}%", "tflops": lambda x: f"{x:.1f}", "gflop": lambda x: f"{x / 1e9:.2f}",
            "frac": lambda x: f"{x:.0%}"}[kind](float(v))


def fmt_range(lo, hi, kind="s2"):
    return "–" if missing(lo) or missing(hi) else f"{fmt_num(lo, kind)}–{fmt_num(hi, kind)}"


def cut(s, n=24):
    return s if len(s) <= n else s[:n - 1] + "…"


def model_label(row):
    try:
        kw = json.loads(row["model_kwargs"]) if isinstance(row["model_kwargs"], str) else {}
    except ValueError:
        kw = {}
    # a long value (a note, a path) is cut in tables; the full text stays in model_kwargs
    inner = ",".join(f"{k}={cut(str(v).replace(' ', ''))}" for k, v in kw.items())
    return _versioned(row, f"{row['model']}({inner})" if inner else str(row["model"]))


def short_model(row):
    """The model with only its short keywords: enough for a narrow table cell."""
    try:
        kw = json.loads(row["model_kwargs"]) if isinstance(row["model_kwargs"], str) else {}
    except ValueError:
        kw = {}
    keep = {k: v for k, v in kw.items() if k in ("width", "blocks", "nf", "depth", "k", "bottleneck", "wide")}
    inner = ",".join(f"{k}={str(v).replace(' ', '')}" for k, v in keep.items())
    return _versioned(row, f"{row['model']}({inner})" if inner else str(row["model"]))


def _versioned(row, label):
    """A user's network with its source's short sha256: two versions of one file are two groups,
    and without it the board would show them under one name."""
    h = row.get("model_source_hash")
    return label if missing(h) else f"{label}@{str(h)[:7]}"


def flags(row):
    """The settings a reader most often compares, as short words (absent ones are the defaults)."""
    out = [str(row.get("precision")), f"bs{row.get('batch_size')}"]
    if row.get("inplace") is False or row.get("inplace") == 0:
        out.append("no-inplace")
    if row.get("compile") is True:
        out.append("compiled")
    if not missing(row.get("world_size")) and int(row["world_size"]) > 1:
        out.append(f"x{int(row['world_size'])}")
    return " ".join(out)


def config_name(row):
    """One configuration in a few words: model, precision, batch and any non-default switch."""
    return f"{short_model(row)} {flags(row)}"


def short_device(name, gpu_count=None, cpu_count=None):
    """'NVIDIA H200' -> 'H200'; 'CPU: Intel(R) Xeon(R) Processor' with 2 cores -> 'Xeon CPU 2c'."""
    s = str(name)
    cpu = s.startswith("CPU:")
    s = re.sub(r"\((R|TM|tm|r)\)", "", s)  # first, so "Intel(R) Xeon(R)" reads "Intel Xeon" below
    s = re.sub(r"^CPU:\s*|NVIDIA\s+|Intel\s+|AMD\s+|\bCPU\b|Processor|@.*$", "", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = cut(s, 18)
    if cpu:
        return f"{s} CPU" + (f" {int(cpu_count)}c" if not missing(cpu_count) else "")
    if not missing(gpu_count) and int(gpu_count) > 1:
        return f"{int(gpu_count)}x {s}"
    return s


def context_label(row):
    return f"{config_name(row)} on {short_device(row['device_name'], row.get('gpu_count'), row.get('cpu_count'))}"


def json_num(v):
    return None if missing(v) else float(v)


def is_nan(v):
    return isinstance(v, float) and math.isnan(v)


def _setting(v):
    return f"{v:g}" if isinstance(v, float) else str(v)


def distinct_names(board, columns):
    """Each group's config_name, with the settings that tell namesakes apart. First among groups on one
    machine and target (an ablation's arms), then across the board (one configuration run to two targets,
    or on two machines of one model, whose device cells read alike). A setting is named where the group's
    value is not the one most of its namesakes share (every one of them where no value has a majority);
    a name still shared after both ends with its group id."""
    names = pd.Series([config_name(r) for _, r in board.iterrows()], index=board.index, dtype=object)
    _tell_apart(board, names, [names, board["hardware_key"], board["target"]], columns)
    _tell_apart(board, names, [names.copy()], list(columns) + ["hardware_key"])
    shared = names.duplicated(keep=False)
    names[shared] += " · group " + board.loc[shared, "group_id"].astype(str)
    return names


def _tell_apart(board, names, by, columns):
    for _, g in board.groupby(by, sort=False):
        if len(g) < 2:
            continue
        # settings every namesake recorded (older rows lack newer columns): a null is no difference
        vals = {c: g[c].map(lambda v: json.dumps(v, default=str)) for c in columns if c in g and not g[c].isna().any()}
        vals = {c: v for c, v in vals.items() if v.nunique() > 1}
        for i, r in g.iterrows():
            shown = [c for c, v in vals.items() if (v == v[i]).sum() * 2 <= len(g)]
            names[i] += "".join(f" · {_word(c, r[c])}" for c in shown)


def _word(col, v):
    if col == "target":
        return f"target {_target(float(v))}"
    if col == "hardware_key":  # the machine's hash short, a thread count (report.group_runs) whole
        h, _, threads = str(v).partition("/")
        return f"hardware {h[:8]}" + (f"/{threads}" if threads else "")
    if col == "code_hash":  # a pooled code (--same-code) reads "A+B"
        return f"code {'+'.join(part[:8] for part in str(v).split('+'))}"
    return f"{col} {_setting(v)}"
