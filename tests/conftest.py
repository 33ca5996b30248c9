"""Shared fixtures. Tests read the real CIFAR-10 copy (JPEG) from ../shared/data or $BENCH_TEST_DATA;
synthetic images appear only where a test says so."""
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def shared_archive():
    p = Path(os.environ.get("BENCH_TEST_DATA", SHARED))
    if not p.exists():
        pytest.fail(f"the CIFAR-10 copy is not at {p}; set BENCH_TEST_DATA to cifar10-jpeg.tar.xz")
    return p


@pytest.fixture(scope="session")
def full_data():
    return shared_archive()


@pytest.fixture(scope="session")
def real_members():
    """{(split, class): [(name, jpeg bytes)]}: the first 60 train and 20 test images per class of the real copy."""
    want = {"train": 60, "test": 20}
    out = {}
    with tarfile.open(shared_archive()) as tf:
        for m in tf:
            if not m.isfile():
                continue
            split, cls, name = m.name.split("/")[-3:]
            lst = out.setdefault((split, cls), [])
            if len(lst) < want.get(split, 0):
                lst.append((name, tf.extractfile(m).read()))
    return out


def write_archive(path, members, skip=(), replace=None):
    """A class-folder .tar of the given real members; `skip` drops (split, class) folders,
    `replace` maps an archive name to other bytes (for broken-data tests)."""
    replace = replace or {}
    with tarfile.open(path, "w") as tf:
        for (split, cls), files in sorted(members.items()):
            if (split, cls) in skip:
                continue
            for name, blob in files:
                arc = f"{split}/{cls}/{name}"
                blob = replace.get(arc, blob)
                info = tarfile.TarInfo(arc)
                info.size = len(blob)
                tf.addfile(info, io.BytesIO(blob))
    return path


@pytest.fixture(scope="session")
def small_data(tmp_path_factory, real_members):
    """800 real images (600 train, 200 test) from the shared copy, as a class-folder archive."""
    return write_archive(tmp_path_factory.mktemp("data") / "cifar10-small.tar", real_members)


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    """One decode cache for the whole session, apart from the user's; no stray fault or data."""
    import signal

    keys = ("BENCH_CACHE", "BENCH_FAULT", "BENCH_DATA")
    saved = {k: os.environ.pop(k, None) for k in keys}
    os.environ["BENCH_CACHE"] = str(tmp_path_factory.getbasetemp() / "cache")
    # Started in the background from a script (`.ci/run &`, nohup), the suite inherits Ctrl-C ignored,
    # and so does every `bench` it starts, which then rightly keeps ignoring it (a sweep's children do):
    # the Ctrl-C tests would fail or hang for how they were launched. Ctrl-C as in a terminal instead.
    sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, sigint)
    for k, v in saved.items():
        os.environ.pop(k, None)
        if v is not None:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _signal_handlers_left_as_found(request):
    """A test that leaves SIGINT or SIGTERM handled otherwise than it found them fails here, by name:
    a later test's Ctrl-C would go to that handler instead and be lost (a hang, or a failure that
    blames the wrong test)."""
    import signal
    found = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    left = {s: signal.getsignal(s) for s in found}
    for s, h in found.items():
        signal.signal(s, h)
    changed = [f"{signal.Signals(s).name}: {left[s]!r} (was {found[s]!r})" for s in found if left[s] is not found[s]]
    assert not changed, f"{request.node.nodeid} left signal handlers changed: " + "; ".join(changed)


def bench(*args, env=None, timeout=1500, check=None):  # wide: CI may share its cores
    """Run the real CLI in a fresh process."""
    e = dict(os.environ)
    e.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "bench", *map(str, args)], capture_output=True, text=True,
                          env=e, cwd=ROOT, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, f"rc {proc.returncode}\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr}"
    return proc


TINY = ["--model", "resnet9", "--model-kwargs", "width=0.125", "--batch-size", "50", "--epochs", "2",
        "--lr", "0.2", "--div", "10", "--pct", "10", "--wd", "5e-4", "--device", "cpu", "--precision", "bf16"]


TINY_SWEEP = """
[sweep]
name = "tiny"
seeds = [0, 1]
time_limit_s = 300

[base]
model = "resnet9"
model_kwargs = {{ width = 0.125 }}
precision = "bf16"
batch_size = 50
epochs = {epochs}
lr = 0.2
div = 10
pct = 10
target = 0.15
device = "cpu"

[axes]
inplace = [true, false]
"""


def write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture(scope="session")
def finished_sweep(small_data, tmp_path_factory):
    """A real sweep on real images: 2 in-place settings x 2 seeds, 2 epochs each."""
    d = tmp_path_factory.mktemp("sweep")
    s = write(d, TINY_SWEEP.format(epochs=2))
    p = bench("sweep", s, "--results", d / "results", "--data", small_data, check=0)
    return s, d / "results", p, small_data
