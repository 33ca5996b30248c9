"""cifar-bench: time-to-accuracy benchmarks for CIFAR-10 on PyTorch.

From Python: `bench.run(...)`, `bench.report(dirs)`, `bench.models()` (bench/api.py). They are
imported on first use, so `import bench` (the CLI's first step) loads neither torch nor pandas.
"""
import sys
import types

_API = ("run", "models", "make_config", "RunConfig", "BenchError")


def __getattr__(name):
    if name in _API:
        from . import api, config
        return getattr(api, name, None) or getattr(config, name)
    if name == "report":
        import importlib
        return importlib.import_module(f"{__name__}.report")  # callable: see _Package below
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableReport(types.ModuleType):
    """`bench.report` is both the report module (`bench.report.build`, `from bench import report`)
    and the API function `bench.report(dirs)`: importing a submodule always sets the package's
    attribute of that name to the module, so a plain function there would be overwritten."""

    def __call__(self, dirs, prices=None):
        from .api import report
        return report(dirs, prices)


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        if name == "report" and type(value) is types.ModuleType:
            value.__class__ = _CallableReport
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
