"""A user's own network: `MODULE:FUNCTION` (importable) or `FILE.py:FUNCTION` (a path).

The function may be any callable returning an nn.Module (a class included). Its module's source
file is hashed (sha256), and the hash is part of the configuration key, so two versions of a
user's network never merge. The hash covers that one file, not what it imports.
"""
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys

_FILES = {}  # (absolute path, sha256) -> module: a file is executed once per version


def load(spec):
    """(factory, import_path, source sha256) for a user spec; ValueError with one line otherwise."""
    target, _, fn = spec.rpartition(":")
    if not target or not fn:
        raise ValueError(f"model {spec!r}: give MODULE:FUNCTION or FILE.py:FUNCTION")
    if target.endswith(".py") or os.sep in target or "/" in target:
        module, where = _from_file(target)
        import_path = f"{where}:{fn}"
    else:
        module, where = _from_module(target), target
        import_path = f"{module.__name__}:{fn}"
    factory = _attribute(module, fn, where)
    return factory, import_path, _source_hash(module, factory)


def _one_line(e):
    text = f"{type(e).__name__}: {e}"
    return " ".join(text.split())


def _from_file(target):
    path = os.path.abspath(target)
    if not os.path.isfile(path):
        raise ValueError(f"model file not found: {target} (looked for {path})")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    module = _FILES.get((path, digest))
    if module is None:
        stem = "".join(c if c.isalnum() else "_" for c in os.path.basename(path)[:-3])
        name = f"_bench_user_{stem}_{digest[:12]}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None:
            raise ValueError(f"model file {target} cannot be imported (is it a .py file?)")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module  # pickling and torch.compile look the module up by name
        try:
            loader_spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - whatever the user's file raises, said in one line
            del sys.modules[name]
            raise ValueError(f"importing model file {target} failed: {_one_line(e)}") from None
        _FILES[(path, digest)] = module
    return module, path


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
    path = getattr(module, "__file__", None)
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    try:  # a module without a file: the function's own source
        return hashlib.sha256(inspect.getsource(factory).encode()).hexdigest()
    except (OSError, TypeError):
        return None
