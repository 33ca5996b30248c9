"""The result schema and the only code that writes or reads result files.

Layout under a results directory RESULTS:
    RESULTS/runs/<run_id>.parquet       one row: the run (RUN_COLUMNS)
    RESULTS/epochs/<run_id>.parquet     one row per finished epoch (EPOCH_COLUMNS)
    RESULTS/inference/<id>.parquet      one row per `bench infer` (INFERENCE_COLUMNS)
    RESULTS/maxbatch/<id>.parquet       one row per `bench maxbatch` (MAXBATCH_COLUMNS)
    RESULTS/logs/<run_id>.log           a sweep run's console output

Every file is written under a temporary name starting with "." and renamed into place, so a
reader (this one, pandas, DuckDB, pyarrow datasets: all skip names starting with "." or "_")
never sees a partial file. Columns have fixed Arrow types, so a null is typed and files of one
kind concatenate; `schema_version` says which version of this schema wrote a row.
Plain pandas reads them: `pd.read_parquet("results/runs")`.
"""
import json
import os
import re
import socket
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import columns as cols
from .columns import SCHEMA_VERSION  # noqa: F401 - re-exported: readers and writers name it from here

STATUSES = ("ok", "diverged", "oom", "timeout", "interrupted", "crashed")


def _triples(kind):
    return [(c.name, c.type, c.meaning) for c in cols.KINDS[kind]]


# (name, type, meaning) per kind, derived from bench/columns.py (the one declaration of each column)
RUN_COLUMNS, EPOCH_COLUMNS = _triples("runs"), _triples("epochs")
INFERENCE_COLUMNS, MAXBATCH_COLUMNS, SWEEP_COLUMNS = _triples("inference"), _triples("maxbatch"), _triples("sweeps")
FINGERPRINT_COLUMNS = [(c.name, c.type, c.meaning) for c in cols.FINGERPRINT]
KINDS = {kind: _triples(kind) for kind in cols.KINDS}


class SchemaError(ValueError):
    """A row that does not match its kind's columns: a bug in the writer, never silently dropped."""


def new_row(kind):
    """Every column of `kind`, null: writers fill in what they measured."""
    return dict.fromkeys(cols.names(kind))


def schema(columns):
    return pa.schema([pa.field(n, t) for n, t, _ in columns],
                     metadata={"schema_version": str(SCHEMA_VERSION)})


def safe_name(name):
    """A file name that cannot leave its directory (no '/', no '..') and that readers see: no leading
    '.' or '_', the names that parquet readers (and read() below) skip as temporary or hidden."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).lstrip("._")
    return name[:200] or "unnamed"


def _table(rows, columns):
    names = [n for n, _, _ in columns]
    for r in rows:
        unknown = sorted(set(r) - set(names))
        missing = [n for n in names if n not in r]
        if unknown or missing:
            raise SchemaError(f"row does not match its schema: unknown columns {unknown}, missing {missing} "
                              f"(declare columns in bench/columns.py; build rows with results.new_row)")
    data = {n: [_coerce(r.get(n), t) for r in rows] for n, t, _ in columns}
    return pa.Table.from_pydict(data, schema=schema(columns))


def _coerce(v, t):
    if v is None:
        return None
    if isinstance(v, float) and v != v:  # NaN -> null
        return None
    if t == pa.string() and not isinstance(v, str):
        return json.dumps(v) if isinstance(v, (dict, list)) else str(v)
    if t == pa.int64():
        return int(v)
    if t == pa.float64():
        return float(v)
    if t == pa.bool_():
        return bool(v)
    return v


def write(results_dir, kind, name, rows):
    """Atomically write `rows` (dicts) as RESULTS/<kind>/<name>.parquet; returns the path."""
    d = Path(results_dir) / kind
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{safe_name(name)}.parquet"
    tmp = d / f".{path.name}.{os.getpid()}@{_HOST}.tmp"
    pq.write_table(_table(rows, KINDS[kind]), tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


# a results directory shared by several machines (sweep shards on Slurm) holds other hosts' writes:
# their pids mean nothing here, so theirs are left alone until far older than any write takes
_HOST = re.sub(r"[.@/]", "-", socket.gethostname()) or "host"
OTHER_HOST_STALE_S = 3600


def clean_temporaries(results_dir, min_age_s=0):
    """Remove temporary files whose writer is gone (a SIGKILLed run leaves them behind)."""
    removed = []
    for kind in KINDS:
        for p in (Path(results_dir) / kind).glob(".*.tmp"):
            pid, _, host = p.name.rsplit(".", 2)[-2].partition("@")  # no host: written before hosts were named
            mine = host in ("", _HOST)
            alive = pid.isdigit() and _pid_alive(int(pid)) if mine else False
            try:
                age = time.time() - p.stat().st_mtime
            except FileNotFoundError:  # since the glob: renamed into place by its writer, or cleaned by another sweep
                continue
            if not alive and age >= (min_age_s if mine else OTHER_HOST_STALE_S):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def read_one(results_dir, kind, name):
    """The rows of RESULTS/<kind>/<name>.parquet as a DataFrame, or None if absent or unreadable."""
    path = Path(results_dir) / kind / f"{safe_name(name)}.parquet"
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException):
        return None


def read(results_dirs, kind="runs", warn=None):
    """All rows of `kind` under the given results directories, as one DataFrame.

    Files are read one by one, so an unreadable, foreign or truncated file is named in a
    warning and skipped; older schema versions read with their missing columns as nulls.
    """
    warn = warn or (lambda msg: None)
    columns = [n for n, _, _ in KINDS[kind]]
    frames = []
    for results_dir in [results_dirs] if isinstance(results_dirs, (str, Path)) else results_dirs:
        d = Path(results_dir)
        if not d.is_dir():
            warn(f"warning: {d} is not a directory; skipped")
            continue
        for p in sorted((d / kind).glob("*")):
            if p.name.startswith((".", "_")) or p.is_dir():
                continue
            try:
                t = pq.read_table(p)
            except Exception as e:
                warn(f"warning: skipped {p}: not a readable parquet file ({type(e).__name__}: {str(e)[:120]})")
                continue
            df = t.to_pandas()
            key = columns[0]
            if key not in df.columns:
                warn(f"warning: skipped {p}: no '{key}' column, not a {kind} file of this harness")
                continue
            version = df["schema_version"].iloc[0] if "schema_version" in df.columns and len(df) else None
            if version is not None and pd.notna(version) and int(version) > SCHEMA_VERSION:
                warn(f"warning: {p} has schema version {int(version)}, newer than this harness's "
                     f"{SCHEMA_VERSION}; reading the columns it knows")
            df["source_file"] = str(p)
            frames.append(df)
    if not frames:
        return pd.DataFrame(columns=columns + ["source_file"])
    out = pd.concat(frames, ignore_index=True, sort=False)
    for c in columns:
        if c not in out.columns:
            out[c] = None
    return out
