"""CIFAR-10 in, uint8 tensors out: sources, checks, and the decode-once cache.

Sources (`--data`, else $BENCH_DATA, else "download"):
  - "download" / "cifar10": torchvision's official download (md5 checked by torchvision) into
    the cache directory;
  - a directory holding torchvision's `cifar-10-batches-py`;
  - a directory or a tar archive (.tar, .tar.gz/.tgz, .tar.xz/.txz, .tar.bz2/.tbz2) in the class-folder layout
    `train/<class>/*`, `test/<class>/*` (PNG or JPEG; fast.ai's layout, and the layout of the
    shared `cifar10-jpeg.tar.xz`). The data set is named after the archive or directory.

Decoded images are cached as uint8 under $BENCH_CACHE (default $XDG_CACHE_HOME/cifar-bench, or
~/.cache/cifar-bench), keyed
by the source's checksum (an archive's sha256; a directory's file names, sizes and mtimes).
The cache carries the sha256 of its own bytes and is rebuilt, never trusted, if it differs.
"""
import hashlib
import io
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import BenchError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CACHE_FORMAT = 1
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
ARCHIVE_EXTS = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")  # any case: tarfile reads all
_MEMBER = re.compile(r"(?:^|/)(train|test)/([^/]+)/([^/]+)$")


@dataclass
class Dataset:
    name: str
    source: str
    checksum: str
    train_x: torch.Tensor  # uint8 [N, 3, 32, 32]
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple            # per channel, 0-255 scale, from the train set
    std: tuple


def cache_dir():
    root = os.environ.get("BENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cifar-bench")
    return Path(root)


def resolve_source(data=None):
    return data or os.environ.get("BENCH_DATA") or "download"


def load(data=None, cache=None, warn=print):
    """Load a data set from `data` (see module doc), via the uint8 cache."""
    source = resolve_source(data)
    cache = Path(cache) if cache else cache_dir()
    if source in ("download", "cifar10"):
        root = cache / "torchvision"
        _download(root)
        return _cached(source, "cifar10", "torchvision-cifar-10-python-c58f30108f718f92721af3b95e74349a",
                       lambda: _read_torchvision(root / "cifar-10-batches-py"), cache, warn)
    path = Path(source).expanduser()
    if not path.exists():
        raise BenchError(f"data not found: {source} (pass --data PATH to a CIFAR-10 directory or "
                         f".tar/.tar.xz archive, set BENCH_DATA, or use --data download)")
    if path.is_dir() and (path / "cifar-10-batches-py").is_dir():
        path = path / "cifar-10-batches-py"
    if path.is_dir() and (path / "data_batch_1").exists():
        return _cached(str(path), "cifar10", "torchvision-" + _dir_checksum(path),
                       lambda: _read_torchvision(path), cache, warn)
    if path.is_dir():
        # resolved: `--data .` names the folder it is, not ""
        return _cached(str(path), path.resolve().name, _dir_checksum(path), lambda: _read_folder(path), cache, warn)
    if path.name.lower().endswith(ARCHIVE_EXTS):
        name = re.sub(r"\.(tar\.gz|tar\.xz|tar\.bz2|tgz|txz|tbz2|tar)$", "", path.name, flags=re.IGNORECASE)
        return _cached(str(path), name, _file_checksum(path), lambda: _read_archive(path), cache, warn)
    raise BenchError(f"cannot read {source}: expected a directory or a {'/'.join(ARCHIVE_EXTS)} archive")


# --- sources ----------------------------------------------------------------------------------

def _download(root):
    import torchvision

    if (root / "cifar-10-batches-py" / "test_batch").exists():
        return
    try:
        for train in (True, False):
            torchvision.datasets.CIFAR10(str(root), train=train, download=True)
    except Exception as e:  # URLError, RuntimeError(md5), ...: all mean "could not get it"
        raise BenchError(f"could not download CIFAR-10 into {root} ({type(e).__name__}: {e}); "
                         f"without internet pass --data PATH to a local copy (class-folder directory "
                         f"or .tar/.tar.xz archive) or set BENCH_DATA") from None


def _read_torchvision(path):
    import pickle

    def batch(name):
        with open(path / name, "rb") as f:
            d = pickle.load(f, encoding="latin1")
        return np.asarray(d["data"], np.uint8).reshape(-1, 3, 32, 32), np.asarray(d["labels"], np.int64)

    try:
        parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
        tx, ty = batch("test_batch")
    except (OSError, pickle.UnpicklingError, KeyError, ValueError) as e:
        raise BenchError(f"cannot read torchvision CIFAR-10 batches in {path}: {e}") from None
    out = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), tx, ty)
    # unchecked, a bad label passes the load and crashes training, recorded as a crashed run
    for split, x, y in (("train", *out[:2]), ("test", *out[2:])):
        if len(x) != len(y):
            raise BenchError(f"{path}: the {split} batches hold {len(y)} labels for {len(x)} images")
        if len(y) and not 0 <= y.min() <= y.max() < len(CLASSES):
            raise BenchError(f"{path}: the {split} batches hold labels outside 0..9 ({y.min()}..{y.max()})")
    return out


def _read_archive(path):
    files = []
    try:
        with tarfile.open(path) as tf:
            for m in tf:
                if m.isfile():
                    files.append((m.name, tf.extractfile(m).read()))
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        # tarfile lists every compression it tried, a line each: the first line says it
        raise BenchError(f"cannot read archive {path}: {(str(e).splitlines() or [type(e).__name__])[0].rstrip(':')} "
                         "(a tar archive, plain or gz/bz2/xz-compressed, of CIFAR-10 images)") from None
    return _decode_layout(files, str(path))


def _read_folder(path):
    files = [(str(p.relative_to(path)), p.read_bytes()) for p in sorted(path.rglob("*")) if p.is_file()]
    return _decode_layout(files, str(path))


def _decode_layout(files, where):
    """files: [(relative name, bytes)] in the class-folder layout -> uint8 arrays, checked."""
    splits = {"train": {}, "test": {}}
    for name, blob in files:
        m = _MEMBER.search(name)
        base = name.rsplit("/", 1)[-1]
        if not m or base.startswith(".") or not base.lower().endswith(IMAGE_EXTS):
            continue
        split, cls, _ = m.groups()
        splits[split].setdefault(cls, []).append((name, blob))
    out = []
    for split in ("train", "test"):
        classes = splits[split]
        if not classes:
            raise BenchError(f"{where}: no {split}/<class>/ images found (expected the class-folder "
                             f"layout train/<class>/*.jpg|png, test/<class>/*.jpg|png)")
        missing = [c for c in CLASSES if c not in classes]
        if missing:
            raise BenchError(f"{where}: {split}/ is missing classes: {', '.join(missing)}")
        extra = sorted(set(classes) - set(CLASSES))
        if extra:
            raise BenchError(f"{where}: {split}/ has folders that are not CIFAR-10 classes: {', '.join(extra)}")
        counts = {c: len(classes[c]) for c in CLASSES}
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"{c} {n}" for c, n in counts.items())
            raise BenchError(f"{where}: {split}/ classes have unequal image counts ({detail}); "
                             f"the copy looks incomplete")
        items = [(i, n, b) for i, c in enumerate(CLASSES) for n, b in sorted(classes[c])]
        x = _decode([n for _, n, _ in items], [b for _, _, b in items], where)
        out += [x, np.asarray([i for i, _, _ in items], np.int64)]
    return tuple(out)


def _decode(names, blobs, where):
    import warnings

    # torchvision 0.29 deprecates its decoders in favour of TorchCodec; they still work and are
    # what the GPU image's torchvision 0.26 has, so the warning is noise here.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision.io")
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    jpeg = [i for i, n in enumerate(names) if n.lower().endswith((".jpg", ".jpeg"))]
    imgs = [None] * len(names)
    try:  # the batched decoder is ~10x faster than one call per image
        for i, img in zip(jpeg, decode_jpeg([tensors[i] for i in jpeg], mode=ImageReadMode.UNCHANGED)):
            imgs[i] = img
    except RuntimeError:
        pass  # find the culprit one by one below
    for i, name in enumerate(names):
        if imgs[i] is None:
            try:
                imgs[i] = decode_image(tensors[i], mode=ImageReadMode.UNCHANGED)
            except RuntimeError as e:
                raise BenchError(f"{where}: cannot decode image {name}: {str(e).splitlines()[0]}") from None
        if tuple(imgs[i].shape) != (3, 32, 32):
            h, w = imgs[i].shape[-2:]
            raise BenchError(f"{where}: image {name} is {w}x{h}x{imgs[i].shape[0]}, expected 32x32x3")
    return torch.stack(imgs).numpy()


# --- cache ------------------------------------------------------------------------------------

def _file_checksum(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dir_checksum(path):
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _cached(source, name, checksum, read, cache, warn):
    stem = cache / f"{re.sub(r'[^A-Za-z0-9._-]', '_', name)}-{checksum[:16]}"
    # appended, not with_suffix: a name with a dot (cifar10.v2) would lose its checksum to it
    npz, meta_path = stem.parent / f"{stem.name}.npz", stem.parent / f"{stem.name}.json"
    arrays = meta = None
    _remove_orphans(cache)
    if npz.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict):  # valid JSON, but not what this module writes: no .get to call
                raise ValueError(f"its description {meta_path.name} is not a JSON object")
            if meta.get("format") != CACHE_FORMAT or meta.get("source_checksum") != checksum:
                raise ValueError("written for another source or format")
            if _file_checksum(npz) != meta.get("sha256"):
                raise ValueError("checksum mismatch")
            with np.load(npz) as z:
                arrays = tuple(z[k] for k in ("train_x", "train_y", "test_x", "test_y"))
        except (ValueError, OSError, KeyError, json.JSONDecodeError) as e:
            warn(f"warning: cache {npz} is unusable ({e}); rebuilding it from {source}")
            arrays = None
    if arrays is None:
        arrays = read()
        tx = arrays[0].astype(np.float64)
        mean = tx.mean(axis=(0, 2, 3)).tolist()
        std = tx.std(axis=(0, 2, 3)).tolist()
        del tx
        buf = io.BytesIO()
        np.savez(buf, **dict(zip(("train_x", "train_y", "test_x", "test_y"), arrays)))
        blob = buf.getvalue()
        meta = {"format": CACHE_FORMAT, "name": name, "source": source, "source_checksum": checksum,
                "sha256": hashlib.sha256(blob).hexdigest(), "mean": mean, "std": std,
                "train_images": len(arrays[0]), "test_images": len(arrays[2])}
        try:
            cache.mkdir(parents=True, exist_ok=True)
            _atomic_write(npz, blob)
            _atomic_write(meta_path, json.dumps(meta, indent=1).encode())
        except OSError as e:
            warn(f"warning: cannot write the data cache in {cache} ({e}); it will be decoded again next time")
    tx, ty, vx, vy = (torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
    return Dataset(name, source, checksum, tx, ty, vx, vy, tuple(meta["mean"]), tuple(meta["std"]))


def _atomic_write(path, blob):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk must not keep a half-written copy of the whole data set
        tmp.unlink(missing_ok=True)
        raise


def _remove_orphans(cache):
    """A writer killed mid-fill leaves its temporary (the whole decoded set, ~185 MB for CIFAR-10)
    that nothing else would ever remove; one whose writer still runs is left alone."""
    from .results import _pid_alive

    for p in cache.glob(".*.tmp"):
        pid = p.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _pid_alive(int(pid)):
            try:
                p.unlink()
            except OSError:  # a read-only cache: reading it still works
                pass
