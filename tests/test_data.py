import io
import pickle

import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg

from bench import data
from bench.config import BenchError

from .conftest import CLASSES, write_archive

SHA256 = "e82212b8f8580e3e79f41a32c7db0e6a5b8fb10188d1723b706e150379c98be9"


def test_shared_copy_loads_whole_and_checked(full_data, monkeypatch):
    ds = data.load(str(full_data))
    assert ds.name == "cifar10-jpeg" and ds.checksum == SHA256
    assert ds.train_x.shape == (50000, 3, 32, 32) and ds.train_x.dtype == torch.uint8
    assert ds.test_x.shape == (10000, 3, 32, 32)
    assert ds.train_y.bincount().tolist() == [5000] * 10
    assert ds.test_y.bincount().tolist() == [1000] * 10
    # per-channel statistics of this copy, close to the original CIFAR-10's 0.491/0.482/0.447
    assert np.allclose(np.array(ds.mean) / 255, [0.491, 0.482, 0.447], atol=0.01)
    # the second load comes from the cache: no clock (a busy machine makes any bound flaky), no decoding
    monkeypatch.setattr(data, "_read_archive", lambda p: pytest.fail("decoded again despite a valid cache"))
    again = data.load(str(full_data))
    assert torch.equal(again.test_x, ds.test_x)


def test_second_load_comes_from_the_cache(small_data, tmp_path, monkeypatch):
    first = data.load(str(small_data), cache=tmp_path)
    monkeypatch.setattr(data, "_read_archive", lambda p: pytest.fail("decoded again despite a valid cache"))
    second = data.load(str(small_data), cache=tmp_path)
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.train_y, second.train_y)
    assert first.train_x.shape == (600, 3, 32, 32) and first.test_x.shape == (200, 3, 32, 32)


def test_every_compression_tarfile_reads_is_a_source_whatever_the_case_of_its_name(small_data, tmp_path):
    import tarfile
    plain = data.load(str(small_data), cache=tmp_path / "c0")
    for name, mode in (("CIFAR.TAR.XZ", "w:xz"), ("cifar.tar.bz2", "w:bz2"), ("cifar.tbz2", "w:bz2")):
        with tarfile.open(small_data) as src, tarfile.open(tmp_path / name, mode) as dst:
            for m in src:
                dst.addfile(m, src.extractfile(m))
        got = data.load(str(tmp_path / name), cache=tmp_path / name.lower())
        assert got.name == name.split(".")[0] and torch.equal(got.train_x, plain.train_x), name


def test_corrupt_cache_is_rebuilt_not_trusted(small_data, tmp_path):
    good = data.load(str(small_data), cache=tmp_path)
    npz = next(tmp_path.glob("*.npz"))
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte inside the image array
    npz.write_bytes(bytes(blob))
    warnings = []
    again = data.load(str(small_data), cache=tmp_path, warn=warnings.append)
    assert any("checksum mismatch" in w and "rebuilding" in w for w in warnings)
    assert torch.equal(again.train_x, good.train_x)


def test_directory_source_in_class_folder_layout(real_members, tmp_path):
    for (split, cls), files in real_members.items():
        d = tmp_path / "mycifar" / split / cls
        d.mkdir(parents=True)
        for name, blob in files:
            (d / name).write_bytes(blob)
    ds = data.load(str(tmp_path / "mycifar"), cache=tmp_path / "cache")
    assert ds.name == "mycifar" and len(ds.train_x) == 600 and ds.train_y.bincount().tolist() == [60] * 10


def test_a_folder_given_as_dot_is_named_as_the_folder_it_is(real_members, tmp_path, monkeypatch):
    for (split, cls), files in real_members.items():
        d = tmp_path / "mycifar" / split / cls
        d.mkdir(parents=True)
        for name, blob in files[:2]:
            (d / name).write_bytes(blob)
    monkeypatch.chdir(tmp_path / "mycifar")
    assert data.load(".", cache=tmp_path / "cache").name == "mycifar"


def test_two_sources_whose_names_differ_after_a_dot_keep_a_cache_each(small_data, tmp_path, monkeypatch):
    """cifar10.v2 and cifar10.v3: a with_suffix file name would cut both to cifar10.npz, and
    alternating runs would decode again each time."""
    import shutil
    for v in ("v2", "v3"):
        shutil.copy(small_data, tmp_path / f"cifar10.{v}.tar")
        data.load(str(tmp_path / f"cifar10.{v}.tar"), cache=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    monkeypatch.setattr(data, "_read_archive", lambda p: pytest.fail("decoded again despite a valid cache"))
    for v in ("v2", "v3"):
        assert data.load(str(tmp_path / f"cifar10.{v}.tar"), cache=tmp_path / "cache").name == f"cifar10.{v}"


def test_torchvision_batches_source(small_data, tmp_path):
    """torchvision's cifar-10-batches-py layout (what its download unpacks), built from real images."""
    ds = data.load(str(small_data), cache=tmp_path / "c1")
    write_batches(tmp_path / "tv", ds)
    tv = data.load(str(tmp_path / "tv"), cache=tmp_path / "c2")
    assert tv.name == "cifar10"
    assert torch.equal(tv.train_x, ds.train_x) and torch.equal(tv.test_y, ds.test_y)


def write_batches(where, ds, train_labels=None):
    root = where / "cifar-10-batches-py"
    root.mkdir(parents=True)
    x = ds.train_x.reshape(len(ds.train_x), -1).numpy()
    y = ds.train_y.tolist() if train_labels is None else train_labels
    for i, part in enumerate(np.array_split(np.arange(len(x)), 5), 1):
        with open(root / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": x[part], "labels": [y[k] for k in part if k < len(y)]}, f)
    with open(root / "test_batch", "wb") as f:
        pickle.dump({"data": ds.test_x.reshape(len(ds.test_x), -1).numpy(), "labels": ds.test_y.tolist()}, f)


def test_torchvision_batches_with_bad_labels_are_refused_at_load(small_data, tmp_path):
    from .conftest import bench

    ds = data.load(str(small_data), cache=tmp_path / "c1")
    labels = ds.train_y.tolist()
    out_of_range = labels[:7] + [10] + labels[8:]
    short = labels[:-1]  # one image without a label
    for name, y, message in (("range", out_of_range, "labels outside 0..9"),
                             ("short", short, "599 labels for 600 images")):
        write_batches(tmp_path / name, ds, y)
        with pytest.raises(BenchError, match=message):
            data.load(str(tmp_path / name), cache=tmp_path / "c2")
    # before the check, training started and crashed on the label, and a crashed run was recorded
    p = bench("run", "--data", tmp_path / "range", "--model", "resnet9", "--model-kwargs", "width=0.125",
              "--device", "cpu", "--epochs", "1", "--batch-size", "64", "--results", tmp_path / "res")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "labels outside 0..9" in p.stderr, p.stderr
    assert not (tmp_path / "res").exists()


def test_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise OSError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(BenchError, match="could not download CIFAR-10.*--data PATH"):
        data.load("download", cache=tmp_path)


def test_bench_data_names_the_default_source(monkeypatch, small_data):
    monkeypatch.setenv("BENCH_DATA", str(small_data))
    assert data.resolve_source(None) == str(small_data)
    assert data.resolve_source("other") == "other"


def bad(real_members, tmp_path, **kw):
    return str(write_archive(tmp_path / "bad.tar", real_members, **kw))


def test_missing_class(real_members, tmp_path):
    with pytest.raises(BenchError, match="train/ is missing classes: cat"):
        data.load(bad(real_members, tmp_path, skip={("train", "cat")}), cache=tmp_path)


def test_undecodable_image(real_members, tmp_path):
    name = real_members[("test", "dog")][3][0]
    path = bad(real_members, tmp_path, replace={f"test/dog/{name}": b"\xff\xd8 not a jpeg"})
    with pytest.raises(BenchError, match=f"cannot decode image test/dog/{name}"):
        data.load(path, cache=tmp_path)


def test_wrong_image_size(real_members, tmp_path):
    name = real_members[("train", "ship")][0][0]
    small = encode_jpeg(torch.zeros(3, 16, 16, dtype=torch.uint8)).numpy().tobytes()  # synthetic: wrong on purpose
    path = bad(real_members, tmp_path, replace={f"train/ship/{name}": small})
    with pytest.raises(BenchError, match=f"train/ship/{name} is 16x16x3, expected 32x32x3"):
        data.load(path, cache=tmp_path)


def test_unequal_class_counts(real_members, tmp_path):
    members = dict(real_members)
    members[("train", "frog")] = members[("train", "frog")][:-1]
    with pytest.raises(BenchError, match="unequal image counts"):
        data.load(bad(members, tmp_path), cache=tmp_path)


def test_missing_path_and_foreign_files(tmp_path):
    with pytest.raises(BenchError, match="data not found: .*nowhere"):
        data.load(str(tmp_path / "nowhere"))
    junk = tmp_path / "junk.tar.xz"
    junk.write_bytes(b"not an archive")
    with pytest.raises(BenchError, match="cannot read archive") as e:
        data.load(str(junk), cache=tmp_path)
    assert "\n" not in str(e.value)  # one line, not tarfile's line per compression tried
    other = tmp_path / "x.zip"
    other.write_bytes(b"PK")
    with pytest.raises(BenchError, match="expected a directory or"):
        data.load(str(other))


def test_classes_are_in_cifar_label_order(small_data, tmp_path):
    assert data.CLASSES == CLASSES
    ds = data.load(str(small_data), cache=tmp_path)
    assert ds.train_y[:60].eq(0).all() and ds.train_y[-60:].eq(9).all()
    assert io  # keep the import list honest for readers


def test_a_cache_fill_killed_midway_is_recovered_and_leaves_no_temporary(small_data, tmp_path):
    import signal
    import subprocess
    import sys

    # a real process SIGKILLed between writing the cache's temporary and renaming it into place
    child = ("import os, signal, sys\nfrom bench import data\n"
             "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
             "data.load(sys.argv[1], cache=sys.argv[2])\n")
    p = subprocess.run([sys.executable, "-c", child, str(small_data), str(tmp_path)], capture_output=True)
    assert p.returncode == -signal.SIGKILL and list(tmp_path.glob(".*.tmp")), p.stderr
    ds = data.load(str(small_data), cache=tmp_path)
    assert len(ds.train_x) == 600 and not list(tmp_path.glob(".*.tmp"))
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_a_failed_cache_write_leaves_no_temporary(small_data, tmp_path, monkeypatch):
    import errno
    import os

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    warnings = []
    ds = data.load(str(small_data), cache=tmp_path, warn=warnings.append)
    assert len(ds.train_x) == 600 and any("cannot write the data cache" in w for w in warnings)
    assert list(tmp_path.iterdir()) == []


def test_pixels_and_labels_are_the_archives_as_pil_decodes_them(small_data, real_members, tmp_path):
    """A second decoder, image by image: the batched JPEG decode gives the same RGB bytes, in the same
    order, with each image's label its class folder's index."""
    from PIL import Image

    ds = data.load(str(small_data), cache=tmp_path)
    for split, x, y in (("train", ds.train_x, ds.train_y), ("test", ds.test_x, ds.test_y)):
        want = [(i, blob) for i, c in enumerate(CLASSES) for _, blob in sorted(real_members[(split, c)])]
        assert y.tolist() == [i for i, _ in want]
        pil = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")).transpose(2, 0, 1) for _, b in want])
        assert np.array_equal(x.numpy(), pil), split


@pytest.mark.parametrize("meta", ["[]", "null", '"cache"', "{}"])
def test_a_cache_description_that_parses_but_is_not_one_is_rebuilt(small_data, tmp_path, meta):
    good = data.load(str(small_data), cache=tmp_path)
    next(tmp_path.glob("*.json")).write_text(meta)
    warnings = []
    again = data.load(str(small_data), cache=tmp_path, warn=warnings.append)
    assert any("rebuilding" in w for w in warnings) and torch.equal(again.train_x, good.train_x)
    assert again.mean == good.mean


def test_limit_train_is_one_subset_whatever_the_seed(small_data, tmp_path):
    """Seeds of a configuration differ in weights and batch order only: a subset drawn from the run's
    seed would make their spread partly a spread of training sets."""
    from bench.config import RunConfig
    from bench.workloads.classify import Classify

    ds = data.load(str(small_data), cache=tmp_path)
    picks = []
    for seed in (0, 1):
        cfg = RunConfig(model="resnet9", model_kwargs={"width": 0.125}, batch_size=50, limit_train=200, seed=seed,
                        device="cpu")
        wl = Classify(cfg, torch.device("cpu"))
        wl.setup(ds)
        picks.append(wl.train_x)
    assert len(picks[0]) == 200 and torch.equal(picks[0], picks[1])
