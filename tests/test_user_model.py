"""A user's own network: the code a run records is the code that ran, its keywords read one way."""
import hashlib
import importlib
import sys

import pytest
import torch

import bench
import models
from bench.config import BenchError, RunConfig, canonical_kwargs, validate
from models import registry

SMALL = dict(batch_size=100, epochs=1, target=0.1, precision="bf16", device="cpu", progress=False)

# Each build edits this file, as a person might while a run's seeds train: the later seeds must still
# build (and name) the version the run started with.
SELF_EDITING = '''
import pathlib
from torch import nn

WIDTH = 4


def net(num_classes: int = 10):
    p = pathlib.Path(__file__)
    p.write_text(p.read_text().replace("WIDTH = " + str(WIDTH), "WIDTH = " + str(WIDTH + 1)))
    return nn.Sequential(nn.Conv2d(3, WIDTH, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(WIDTH, num_classes))
'''

NET = '''
from torch import nn
V = 1


def net(width: float = 1.0, widths: tuple[float, ...] = (1.0, 2.0), flag: bool = False, act=nn.ReLU,
        untyped=None):
    assert isinstance(width, float), width  # what the key says is what the factory gets
    return nn.Sequential(nn.Conv2d(3, 4, 3), act(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
'''


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    """A folder on sys.path; the modules imported from it are forgotten afterwards."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("um_"):
            del sys.modules[name]


def test_every_seed_of_a_run_builds_and_records_the_code_its_run_started_with(tmp_path, small_data):
    """Later seeds re-read the file: their rows named an edited file the run never built (bench/row.py),
    and their reset ran the edited factory into the first seed's network."""
    f = tmp_path / "selfedit.py"
    f.write_text(SELF_EDITING)
    ran = sha(f)
    rows = bench.run(model=f"{f}:net", data=small_data, results=tmp_path / "r", seeds=[0, 1], limit_train=200,
                     **SMALL)
    assert sha(f) != ran  # the file did change under the run
    assert [r["status"] for r in rows] == ["ok", "ok"], [r["error"] for r in rows]
    assert [r["model_source_hash"] for r in rows] == [ran, ran]


def test_a_module_edited_after_import_is_named_by_what_was_imported_and_refused_before_a_run(module_dir):
    """`pkg.mod:fn` used the module in sys.modules while the hash was of the file on disk now."""
    f = module_dir / "um_edited.py"
    f.write_text(NET)
    imported = sha(f)
    spec = models.resolve("um_edited:net")
    assert spec.source_hash == imported
    f.write_text(NET.replace("V = 1", "V = 2"))
    again = models.resolve("um_edited:net")
    assert (again.source_hash, again.factory) == (imported, spec.factory)
    assert RunConfig(model="um_edited:net").key() == RunConfig(model="um_edited:net").key()
    with pytest.raises(BenchError, match="um_edited.py changed on disk since this process imported um_edited; "
                                         "restart") as e:
        bench.run(model="um_edited:net", device="cpu", results=module_dir / "r")
    assert "\n" not in str(e.value)
    importlib.reload(sys.modules["um_edited"])  # the caller takes the edit up itself
    registry.refresh("um_edited:net")
    assert models.resolve("um_edited:net").source_hash == sha(f)


def test_a_re_exported_factory_is_named_by_the_file_that_defines_it(module_dir):
    pkg = module_dir / "um_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .nets import net\n")
    (pkg / "nets.py").write_text(NET)
    assert models.resolve("um_pkg:net").source_hash == sha(pkg / "nets.py")


def test_a_model_file_imports_a_module_beside_it(module_dir, monkeypatch):
    d = module_dir / "elsewhere"
    d.mkdir()
    (d / "um_helper.py").write_text("WIDTH = 6\n")
    f = d / "mynet.py"
    f.write_text("import um_helper\nfrom torch import nn\n\n\ndef net():\n    w = um_helper.WIDTH\n"
                 "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, w), nn.Linear(w, 10))\n")
    path = list(sys.path)
    assert models.create(f"{f}:net")[1].out_features == 6
    assert sys.path == path  # its folder was on the path only while the file ran


def test_a_file_edited_between_runs_is_taken_up_by_the_next_run_only(tmp_path):
    f = tmp_path / "um_file.py"
    f.write_text(NET)
    first = models.resolve(f"{f}:net")
    f.write_text(NET.replace("V = 1", "V = 2"))
    assert models.resolve(f"{f}:net").factory is first.factory  # mid-run: the same code
    registry.refresh(f"{f}:net")  # bench.run, before a run
    assert models.resolve(f"{f}:net").source_hash == sha(f) != first.source_hash


def test_a_whole_number_for_a_float_keyword_is_that_float(tmp_path):
    """width=1 and width=1.0 were two configurations: two keys, two report rows, one network."""
    from bench.cli_config import parse_kv
    f = tmp_path / "um_floats.py"
    f.write_text(NET)
    spec = f"{f}:net"
    keys = {RunConfig(model=spec, model_kwargs=parse_kv([w])).key() for w in ("width=1", "width=1.0")}
    assert len(keys) == 1
    kw = canonical_kwargs(spec, parse_kv(["width=1", "widths=1,2"]))
    assert (kw["width"], kw["widths"]) == (1.0, [1.0, 2.0]) and type(kw["width"]) is float
    assert type(canonical_kwargs(spec, {"width": 1})["width"]) is float
    models.create(spec, width=1)  # the factory gets the float the key holds (it asserts so)
    assert RunConfig(model_kwargs={"blocks": [1, 2, 4, 6, 3], "nf": 32, "width": 1}).key() == \
        RunConfig(model_kwargs={"blocks": [1, 2, 4, 6, 3], "nf": 32, "width": 1.0}).key()
    assert canonical_kwargs("wrn", {"depth": 16})["depth"] == 16  # an int keyword stays an int


def test_lowercase_true_false_null_in_model_kwargs_are_booleans_and_none(tmp_path):
    from bench.cli_config import parse_kv
    f = tmp_path / "um_words.py"
    f.write_text(NET)
    kw = parse_kv(["flag=true", "untyped=FALSE", "width=null", "act=True"])
    assert kw == {"flag": True, "untyped": False, "width": None, "act": True}
    validate(RunConfig(model=f"{f}:net", model_kwargs=parse_kv(["flag=true", "untyped=false"]), device="cpu"))


ITEM_NET = '''
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c, self.l = nn.Conv2d(3, 4, 3), nn.Linear(4, 10)

    def forward(self, x):
        y = self.c(x)
        if y.mean().item() > 1e9:  # a forward the meta device cannot run: validate builds it for real
            y = y * 2
        return self.l(y.mean((2, 3)))


def net():
    return Net()


def needs_values():
    m = nn.Linear(4, 10)
    assert m.weight.norm().item() > 0  # a build the meta device cannot run: bench.models builds it for real
    return m
'''


def test_checking_a_run_or_listing_models_draws_nothing_from_the_callers_generator(tmp_path):
    f = tmp_path / "um_item.py"
    f.write_text(ITEM_NET)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a results directory")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with pytest.raises(BenchError):  # refused after validate() built the network
        bench.run(model=f"{f}:net", device="cpu", results=blocker / "r")
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(123)
    assert bench.models(f"{f}:needs_values")[-1]["param_count"] == 50
    assert torch.equal(torch.rand(3), expected)


def test_a_checkpoint_whose_factory_raises_anything_is_one_line(tmp_path):
    from bench import infer
    f = tmp_path / "um_raises.py"
    f.write_text("import os\n\n\ndef net():\n    if os.environ.get('UM_RAISE') == 'import':\n"
                 "        import um_no_such_module  # noqa: F401\n    assert False, 'the factory refused'\n")
    ckpt = {"model": "um_raises.net", "model_source": f"{f}:net", "model_source_hash": sha(f), "model_kwargs": {},
            "inplace": True, "channels_last": False, "state_dict": {}}
    for raise_ in ("import", "assert"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("UM_RAISE", raise_)
            with pytest.raises(BenchError, match="cannot rebuild the checkpoint's model") as e:
                infer.build(ckpt, "cpu")
        assert "\n" not in str(e.value)


def test_a_checkpoint_of_a_network_with_a_class_default_is_rebuilt(tmp_path):
    """The checkpoint holds canonical keywords, where `act=nn.ReLU` is its repr: a string the factory called."""
    from bench import infer
    f = tmp_path / "um_act.py"
    f.write_text(NET)
    spec = f"{f}:net"
    net = models.create(spec)
    ckpt = {"model": "um_act.net", "model_source": spec, "model_source_hash": sha(f),
            "model_kwargs": canonical_kwargs(spec, {}), "inplace": True, "channels_last": False,
            "state_dict": net.state_dict()}
    assert isinstance(ckpt["model_kwargs"]["act"], str)
    built = infer.build(ckpt, "cpu")
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(), net.state_dict().values()))


def test_one_annotation_that_does_not_evaluate_leaves_the_others_checked(tmp_path):
    f = tmp_path / "um_future.py"
    f.write_text("from __future__ import annotations\nfrom typing import TYPE_CHECKING\nfrom torch import nn\n"
                 "if TYPE_CHECKING:\n    from torch import Tensor\n\n\n"
                 "def net(width: int = 4, use_bn: bool = True, init: Tensor | None = None, depth: int | None = None):\n"
                 "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))\n")
    keywords = models.resolve(f"{f}:net").keywords
    assert (keywords["width"].annotation, keywords["use_bn"].annotation) == (int, bool)
    assert keywords["init"].annotation is None  # unreadable, default None: any value
    with pytest.raises(ValueError, match="keyword 'use_bn' takes true or false"):
        models.check_kwargs(f"{f}:net", {"use_bn": "false"})
    with pytest.raises(ValueError, match="keyword 'depth' takes an integer or None"):  # its default says nothing
        models.check_kwargs(f"{f}:net", {"depth": "deep"})
