"""A user's own network: `MODULE:FUNCTION` (importable) or `FILE.py:FUNCTION` (a path).

The function may be any callable returning an nn.Module (a class included). The source file that
defines it is hashed (sha256), and the hash is part of the configuration key, so two versions of a
user's network never merge. The hash covers that one file, not what it imports.

A spec is resolved once per process and kept: a run's later seeds rebuild their network with the
factory its first seed built, and every row names it by the hash of the bytes that defined it, even
if the file is edited meanwhile. `refresh` is the one place an edit is taken up: bench.run and
bench.models call it before they start, so a notebook need not restart for an edited FILE.py.
"""
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys

_FILES = {}  # (absolute path, sha256) -> module: a file is executed once per version
_KEPT = {}   # (absolute path or module name, function) -> (factory, import path, sha256, file hashed)


def load(spec):
    """(factory, import_path, source sha256) for a user spec; ValueError with one line otherwise."""
    target, fn = _split(spec)
    if _is_file(target):
        key = (os.path.abspath(target), fn)
        if key not in _KEPT:
            module, path, digest = _from_file(target)
            _KEPT[key] = (_attribute(module, fn, path), f"{path}:{fn}", digest, path)
    else:
        module = _from_module(target)
        factory, key = _attribute(module, fn, target), (target, fn)
        if key not in _KEPT or _KEPT[key][0] != factory:  # first seen, or the caller reloaded its module
            _KEPT[key] = (factory, f"{module.__name__}:{fn}", *_source_hash(module, factory))
    return _KEPT[key][:3]


def refresh(spec):
    """Take up an edit before a run starts: a FILE.py whose bytes changed since this process ran it is
    run again at its next load; an imported module cannot be imported again safely, so one line."""
    target, fn = _split(spec)
    key = (os.path.abspath(target), fn) if _is_file(target) else (target, fn)
    if key in _KEPT and not _is_file(target):
        load(spec)  # an importlib.reload by the caller is taken up here
    if key not in _KEPT or _KEPT[key][3] is None or _digest(_KEPT[key][3]) == _KEPT[key][2]:
        return
    if _is_file(target):
        del _KEPT[key]
        return
    raise ValueError(f"{_KEPT[key][3]} changed on disk since this process imported {target}; restart the "
                     f"process (a notebook: its kernel) to time the new version")


def _split(spec):
    target, _, fn = spec.rpartition(":")
    if not target or not fn:
        raise ValueError(f"model {spec!r}: give MODULE:FUNCTION or FILE.py:FUNCTION")
    return target, fn


def _is_file(target):
    return target.endswith(".py") or os.sep in target or "/" in target


def _one_line(e):
    text = f"{type(e).__name__}: {e}"
    return " ".join(text.split())


def _digest(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _from_file(target):
    path = os.path.abspath(target)
    if not os.path.isfile(path):
        raise ValueError(f"model file not found: {target} (looked for {path})")
    with open(path, "rb") as f:
        source = f.read()
    digest = hashlib.sha256(source).hexdigest()
    module = _FILES.get((path, digest))
    if module is None:
        stem = "".join(c if c.isalnum() else "_" for c in os.path.basename(path)[:-3])
        name = f"_bench_user_{stem}_{digest[:12]}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None:
            raise ValueError(f"model file {target} cannot be imported (is it a .py file?)")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module  # pickling and torch.compile look the module up by name
        folder = os.path.dirname(path)
        sys.path.insert(0, folder)  # its own folder first, as `python mynet.py` has it: `import helper` works
        try:  # the bytes hashed, not a second read of a file that may have changed in between
            exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102
        except Exception as e:  # noqa: BLE001 - whatever the user's file raises, said in one line
            del sys.modules[name]
            raise ValueError(f"importing model file {target} failed: {_one_line(e)}") from None
        finally:
            if folder in sys.path:
                sys.path.remove(folder)
        _FILES[(path, digest)] = module
    return module, path, digest


def _from_module(target):
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as e:
        if e.name and (target == e.name or target.startswith(e.name + ".")):
            raise ValueError(f"no module named {target!r} (is it on PYTHONPATH? a file path must "
                             f"end in .py)") from None
        raise ValueError(f"importing module {target} failed: {_one_line(e)}") from None
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"importing module {target} failed: {_one_line(e)}") from None


def _attribute(module, fn, where):
    obj = module
    for part in fn.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{where} has no function {fn!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{where}:{fn} is not callable (it is a {type(obj).__name__}); "
                         f"name a function that returns an nn.Module")
    return obj


def _source_hash(module, factory):
    """(sha256, the file hashed): the file that defines the factory, so `pkg:net` re-exported by
    pkg/__init__.py from pkg/nets.py is named by nets.py; else its module's file, else its own source."""
    candidates = [getattr(module, "__file__", None)]
    try:
        candidates.insert(0, inspect.getsourcefile(inspect.unwrap(factory)))
    except (TypeError, ValueError):  # a builtin, a functools.partial, an object: its module's file
        pass
    for path in candidates:
        if path and os.path.isfile(path) and (digest := _digest(path)):
            return digest, path
    try:  # a module without a file: the function's own source
        return hashlib.sha256(inspect.getsource(factory).encode()).hexdigest(), None
    except (OSError, TypeError):
        return None, None
