"""The column registry: every column declared once, every configuration field recorded and grouped,
writers that refuse what the schema does not know, and code identity that follows the code."""
import dataclasses
import json
import shutil
from datetime import datetime, timezone

import pytest

from bench import columns, results
from bench.config import FIELDS, KEY_FIELDS, RunConfig
from bench.measure import code_hash
from bench.row import base_row

from .conftest import ROOT


def test_the_schema_doc_is_the_registry():
    doc = (ROOT / "results" / "README.md").read_text()
    generated = doc.split("<!-- columns -->\n", 1)[1].split("<!-- /columns -->", 1)[0]
    assert generated == columns.schema_doc(), "run `python -m bench.columns` and paste it into results/README.md"


def test_every_run_setting_is_a_column_of_the_row_and_of_the_grouping():
    """Enumerates RunConfig's fields: one that changes a run (nesterov, limit_train, ...) and is not
    written to the row, or not grouped on the leaderboard, would merge runs that differ."""
    cfg = RunConfig(model="resnet9", model_kwargs={"width": 0.25}, nesterov=False, limit_train=1000, seed=3,
                    label_smoothing=0.1, compile_mode="reduce-overhead", time_limit_s=60.0)
    row = base_row(cfg, "r", "cpu", 1, datetime.now(timezone.utc))
    run_columns = columns.by_name("runs")
    grouping = columns.group_columns()
    assert set(KEY_FIELDS) == {n for n, f in FIELDS.items() if f.metadata["key"]} and "nesterov" in KEY_FIELDS
    for name in FIELDS:
        if name == "device":  # the fingerprint's `device` says which device ran
            continue
        assert name in run_columns, name
        # what ran, where the setting leaves it open: the views evaluated (1 without tta), and whether
        # the optimizers were fused (null: on CUDA only; this row is a CPU's)
        want = {"tta_views": 1, "fused": False}.get(name, getattr(cfg, name))
        got = json.loads(row[name]) if name == "model_kwargs" else row[name]
        assert got == want, (name, got, want)
        if name in KEY_FIELDS and name != "seed":
            assert run_columns[name].role == "config" and name in grouping, name
    assert row["config_key"] == cfg.key()
    # and the key hashes every identifying field: changing any one changes it
    for name in KEY_FIELDS:
        if name in ("model", "model_kwargs"):
            continue
        v = getattr(cfg, name)
        other = {bool: lambda x: not x, int: lambda x: (x or 0) + 1, float: lambda x: x + 0.5,
                 str: lambda x: {"classify": "dcgan", "bf16": "fp32", "reduce-overhead": "default",
                                 "one_cycle": "triangle"}.get(x, x + "x")}
        changed = dataclasses.replace(cfg, **{name: other[type(v) if v is not None else int](v)})
        assert changed.key() != cfg.key(), name


def test_old_keys_survive_the_new_fields():
    """Fields added in schema 2 hash only off their defaults: a sweep resumed over schema-1 results
    still finds its cells. The schema-1 key hashed exactly these fields."""
    schema1 = ("model", "model_kwargs", "precision", "inplace", "channels_last", "compile", "batch_size", "world_size",
               "epochs", "target", "seed", "lr", "div", "pct", "mom_max", "mom_min", "weight_decay", "nesterov",
               "label_smoothing", "cutout", "tta", "warmup_steps", "limit_train", "stop_at_target")
    import hashlib
    cfg = RunConfig(model="resnet9", model_kwargs={"width": 0.25})
    d = {k: v for k, v in cfg.to_dict().items() if k in schema1}
    d["model_kwargs"] = {"width": 0.25}
    assert cfg.key() == hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
    assert RunConfig().key() == "e4610d93f5abdb4c"  # the lesson's default, as the schema-1 code hashed it
    assert dataclasses.replace(cfg, tta_views=6).key() != cfg.key()


def test_writing_an_unknown_or_missing_column_raises(tmp_path):
    row = results.new_row("epochs")
    row.update(run_id="r", epoch=1)
    results.write(tmp_path, "epochs", "r", [row])
    with pytest.raises(results.SchemaError, match="unknown columns \\['tset_acc'\\]"):
        results.write(tmp_path, "epochs", "r2", [{**row, "tset_acc": 0.5}])
    partial = dict(row)
    del partial["test_acc"]
    with pytest.raises(results.SchemaError, match="missing \\['test_acc'\\]"):
        results.write(tmp_path, "epochs", "r3", [partial])
    assert not (tmp_path / "epochs" / "r2.parquet").exists() and not (tmp_path / "epochs" / "r3.parquet").exists()


def test_a_temporary_of_another_machine_is_left_until_it_is_stale(tmp_path):
    """Shards on several machines share one results directory: a pid is only this machine's to judge.
    Another host's fresh temporary may be a write in progress; an hour old, it is a leftover."""
    import os
    import subprocess
    import time
    dead = subprocess.Popen(["true"])
    dead.wait()
    d = tmp_path / "runs"
    d.mkdir()
    mine, legacy, theirs, old = (d / f".{n}.parquet.{dead.pid}{tag}.tmp" for n, tag in
                                 (("a", f"@{results._HOST}"), ("b", ""), ("c", "@elsewhere"), ("d", "@elsewhere")))
    for p in (mine, legacy, theirs, old):
        p.write_bytes(b"PAR1 half")
    os.utime(old, (time.time() - 2 * results.OTHER_HOST_STALE_S,) * 2)
    assert set(results.clean_temporaries(tmp_path)) == {mine, legacy, old} and theirs.exists()
    assert "." not in results._HOST, "a host name with dots would not parse back"


def test_code_hash_follows_the_harness_source_not_the_results(tmp_path):
    for d in ("bench", "models"):
        shutil.copytree(ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.parquet").write_bytes(b"a result")
    before = code_hash(tmp_path)
    assert before == code_hash(ROOT), "a copy of the tree hashes like the tree"
    (tmp_path / "results" / "x.parquet").write_bytes(b"another result")
    (tmp_path / "README.md").write_text("docs")
    assert code_hash(tmp_path) == before
    runner = tmp_path / "bench" / "runner.py"
    runner.write_text(runner.read_text() + "\n# a change\n")
    assert code_hash(tmp_path) != before
