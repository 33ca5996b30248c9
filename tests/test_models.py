import re

import pytest
import torch
from torch import nn

import models
from bench.config import BenchError, RunConfig, validate
from models import registry
from models.darknet import ResLayer


# --- the lesson's network, transcribed from ../shared/seeds/001_*.txt ----------------------------
# (its `k2=3` typo read as `ks=3`; `Flatten` is nn.Flatten). Used only as the reference.

def lesson_conv_layer(ni, nf, ks=3, stride=1):
    return nn.Sequential(
        nn.Conv2d(in_channels=ni, out_channels=nf, kernel_size=ks, bias=False, stride=stride, padding=ks // 2),
        nn.BatchNorm2d(num_features=nf, momentum=0.01),
        nn.LeakyReLU(negative_slope=0.1, inplace=True))


class LessonResLayer(nn.Module):
    def __init__(self, ni):
        super().__init__()
        self.conv1 = lesson_conv_layer(ni, ni // 2, ks=1)
        self.conv2 = lesson_conv_layer(ni // 2, ni, ks=3)

    def forward(self, x):
        return x.add_(self.conv2(self.conv1(x)))


class LessonDarknet(nn.Module):
    def make_group_layer(self, ch_in, num_blocks, stride=1):
        return [lesson_conv_layer(ch_in, ch_in * 2, stride=stride)] + [LessonResLayer(ch_in * 2) for i in range(num_blocks)]

    def __init__(self, num_blocks, num_classes, nf=32):
        super().__init__()
        layers = [lesson_conv_layer(3, nf, ks=3, stride=1)]
        for i, nb in enumerate(num_blocks):
            layers += self.make_group_layer(nf, nb, stride=2 - (i == 1))
            nf *= 2
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(nf, num_classes)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def leaves(m):
    return [x for x in m.modules() if len(list(x.children())) == 0]


def describe(layer):
    if isinstance(layer, nn.Conv2d):
        return ("conv", layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                layer.bias is None)
    if isinstance(layer, nn.BatchNorm2d):
        return ("bn", layer.num_features, layer.momentum, layer.eps)
    if isinstance(layer, nn.LeakyReLU):
        return ("leaky", layer.negative_slope, layer.inplace)
    if isinstance(layer, nn.Linear):
        return ("linear", layer.in_features, layer.out_features, layer.bias is not None)
    return (type(layer).__name__,)


def test_darknet_is_the_lessons_network_layer_for_layer():
    ours = models.create("darknet", blocks=(1, 2, 4, 6, 3), nf=32, width=0.5)
    ref = LessonDarknet([1, 2, 4, 6, 3], num_classes=10, nf=32)
    assert [describe(x) for x in leaves(ours)] == [describe(x) for x in leaves(ref)]
    assert models.param_count(ours) == models.param_count(ref) == 31_410_922


def pytorch_0_3_batchnorm_reset(self):
    # PyTorch 0.3's _BatchNorm.reset_parameters: scales from U(0, 1), shifts at zero
    self.reset_running_stats()
    self.weight.data.uniform_()
    self.bias.data.zero_()


def test_lessons_init_is_its_pytorchs(monkeypatch):
    """bn_weight="uniform" is the lesson's network as the lesson's PyTorch built it, draw for draw;
    "ones" is today's PyTorch."""
    torch.manual_seed(0)
    today = list(LessonDarknet([1, 2], num_classes=10, nf=8).parameters())
    with monkeypatch.context() as m:
        m.setattr(nn.modules.batchnorm._BatchNorm, "reset_parameters", pytorch_0_3_batchnorm_reset)
        torch.manual_seed(0)
        then = list(LessonDarknet([1, 2], num_classes=10, nf=8).parameters())
    for init, ref in (("ones", today), ("uniform", then)):
        torch.manual_seed(0)
        ours = list(models.create("darknet", blocks=(1, 2), nf=8, bn_weight=init).parameters())
        assert len(ours) == len(ref) and all(torch.equal(a, b) for a, b in zip(ours, ref)), init
    scales = torch.cat([b.weight for b in models.create("darknet", bn_weight="uniform").modules()
                        if isinstance(b, nn.BatchNorm2d)])
    assert 0 <= scales.min() and scales.max() < 1 and scales.std() > 0.2  # U(0, 1): sd 0.29


def test_the_lesson_recipe_starts_from_the_lessons_init_and_old_keys_hold():
    from bench.config import from_recipe
    assert from_recipe("lesson").model_kwargs["bn_weight"] == "uniform"
    base = RunConfig().model_kwargs
    # added after rows were recorded: at its default the key is the one those rows carry
    assert RunConfig(model_kwargs={**base, "bn_weight": "ones"}).key() == "e4610d93f5abdb4c"  # as in schema 1
    assert RunConfig(model_kwargs={**base, "bn_weight": "uniform"}).key() != RunConfig().key()
    with pytest.raises(ValueError, match="bn_weight"):
        models.create("darknet", bn_weight="zeros")


def test_darknet_parameter_count_by_hand():
    def conv(ni, nf, ks):  # weights + BatchNorm scale and shift
        return ni * nf * ks * ks + 2 * nf

    n, nf = conv(3, 32, 3), 32
    for blocks in (1, 2, 4, 6, 3):
        n += conv(nf, 2 * nf, 3) + blocks * (conv(2 * nf, nf, 1) + conv(nf, 2 * nf, 3))
        nf *= 2
    n += nf * 10 + 10
    assert models.param_count(models.create("darknet")) == n


def test_lessons_inplace_add_breaks_backward_and_ours_does_not():
    torch.manual_seed(0)
    x = torch.randn(4, 64, 8, 8, requires_grad=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        LessonResLayer(64)(x * 1).sum().backward()
    ResLayer(64, 0.5, inplace=True)(x * 1).sum().backward()


@pytest.mark.parametrize("name,kwargs", [("darknet", dict(blocks=(1, 2), nf=8, width=0.5)),
                                         ("darknet", dict(blocks=(1, 1), nf=8, width=2)),
                                         ("resnet9", dict(width=0.125)),
                                         ("wrn", dict(depth=10, k=1, dropout=0.0))])
def test_inplace_and_out_of_place_give_equal_gradients(name, kwargs):
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(2))
    grads, outs = [], []
    for inplace in (True, False):
        torch.manual_seed(0)
        m = models.create(name, inplace=inplace, **kwargs).double()
        out = m(x.double())
        nn.functional.cross_entropy(out, y).backward()
        outs.append(out.detach())
        grads.append({k: p.grad for k, p in m.named_parameters()})
    assert torch.equal(outs[0], outs[1])
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        assert torch.equal(grads[0][k], grads[1][k]), k


def saved_bytes(model, x):
    """Bytes of distinct activation storages autograd keeps for backward."""
    seen = {}
    weights = {q.untyped_storage().data_ptr() for q in model.parameters()}

    def pack(t):  # activations only: the weights are kept either way
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    return sum(seen.values())


@pytest.mark.parametrize("name,kwargs,fewer", [
    # LeakyReLU's backward needs its input unless it runs in place (then its output): one buffer
    # fewer per layer. ReLU's backward needs only its output either way, so for the ReLU models
    # in-place changes the transient peak (benchmarks/inplace_memory.py), not what is kept.
    ("darknet", dict(blocks=(1, 2), nf=8), True),
    ("resnet9", dict(width=0.125), False),
    ("wrn", dict(depth=10, k=1), False)])
def test_what_inplace_keeps_for_backward(name, kwargs, fewer):
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    on = saved_bytes(models.create(name, inplace=True, **kwargs), x)
    torch.manual_seed(0)
    off = saved_bytes(models.create(name, inplace=False, **kwargs), x)
    assert (on < off) if fewer else (on == off)


@pytest.mark.parametrize("name,kwargs,params", [
    ("resnet9", {}, 6_573_120), ("resnet9", dict(width=0.5), 1_646_112),
    ("wrn", dict(depth=22, k=6), 9_658_458), ("wrn", dict(depth=16, k=4), 2_748_890),
    ("darknet", dict(width=1), 56_506_410)])
def test_documented_parameter_counts(name, kwargs, params):
    with torch.device("meta"):  # shapes only, no memory
        assert models.param_count(models.create(name, **kwargs)) == params


@pytest.mark.parametrize("name,kwargs", [("darknet", dict(blocks=(1, 1), nf=8)), ("wrn", dict(depth=10, k=1)),
                                         ("resnet9", dict(width=0.125))])
def test_forward_shape(name, kwargs):
    assert models.create(name, num_classes=7, **kwargs)(torch.randn(3, 3, 32, 32)).shape == (3, 7)


def test_unknown_names_and_keywords_are_refused():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        models.create("vgg")
    with pytest.raises(ValueError, match="no keyword 'depth'"):
        models.create("darknet", depth=3)
    with pytest.raises(ValueError, match="6n\\+4"):
        models.create("wrn", depth=21)


# --- the registry and a user's own model (issue #14) ---------------------------------------------


USER_NET = '''
from torch import nn


def make_net(width: int = 8, act: str = "relu", bias: bool = False, num_classes=10):
    acts = {"relu": nn.ReLU(), "gelu": nn.GELU()}
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=bias), nn.BatchNorm2d(width), acts[act],
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


def needs_depth(depth: int):
    return make_net(depth)


def untyped(width=4, scale=None):
    return make_net(width)


def not_a_module():
    return "a string"


def wrong_classes():
    return make_net(num_classes=7)


class Net(nn.Module):
    def __init__(self, width: int = 4, num_classes=10):
        super().__init__()
        self.body = make_net(width, num_classes=num_classes)

    def forward(self, x):
        return self.body(x)


NOT_CALLABLE = 3
'''


@pytest.fixture
def user_file(tmp_path):
    p = tmp_path / "mynet.py"
    p.write_text(USER_NET)
    return p


def test_builtin_models_register_themselves_with_annotated_keywords():
    assert {"darknet", "resnet9", "wrn"} <= set(models.registered())
    spec = models.resolve("darknet")
    assert spec.builtin and spec.honours == {"num_classes": True, "inplace": True}
    assert spec.keywords["blocks"].annotation == tuple[int, ...] and spec.keywords["width"].annotation is float


def test_a_new_registered_model_takes_bool_and_string_keywords(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @models.register_model(name="tinynet")
    def tiny(act: str = "relu", bias: bool = False, num_classes: int = 10, inplace: bool = True):
        return nn.Linear(3, num_classes, bias=bias)

    models.check_kwargs("tinynet", {"act": "gelu", "bias": True})
    assert models.create("tinynet", bias=True).bias is not None
    with pytest.raises(ValueError, match="keyword 'bias' takes true or false"):
        models.check_kwargs("tinynet", {"bias": 1})
    with pytest.raises(ValueError, match="keyword 'act' takes a string"):
        models.check_kwargs("tinynet", {"act": 3})
    with pytest.raises(ValueError, match="registered twice"):
        models.register_model(name="tinynet")(lambda: None)


def test_a_users_file_model_is_resolved_hashed_and_built(user_file):
    import hashlib
    spec = models.resolve(f"{user_file}:make_net")
    assert spec.name == "mynet.make_net" and spec.import_path == f"{user_file}:make_net"
    assert spec.source_hash == hashlib.sha256(user_file.read_bytes()).hexdigest()
    assert spec.honours == {"num_classes": True, "inplace": False}
    m = models.create(f"{user_file}:make_net", num_classes=7, inplace=False, width=4, act="gelu", bias=True)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 7) and isinstance(m[2], nn.GELU)
    with pytest.raises(ValueError, match="keyword 'width' takes an integer"):
        models.create(f"{user_file}:make_net", width=2.5)
    # no annotations: the default's type, or any literal where the default is None
    models.check_kwargs(f"{user_file}:untyped", {"scale": "anything"})
    with pytest.raises(ValueError, match="keyword 'width' takes an integer"):
        models.check_kwargs(f"{user_file}:untyped", {"width": "4"})


def test_a_users_nn_module_class_is_a_factory_too(user_file):
    spec = models.resolve(f"{user_file}:Net")
    assert spec.name == "mynet.Net" and list(spec.keywords) == ["width"] and spec.keywords["width"].annotation is int
    assert models.create(f"{user_file}:Net", num_classes=3, width=2)(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_a_users_module_model_by_import_path(user_file, monkeypatch):
    monkeypatch.syspath_prepend(str(user_file.parent))
    spec = models.resolve("mynet:make_net")
    assert spec.name == "mynet.make_net" and spec.import_path == "mynet:make_net"
    assert spec.source_hash == models.resolve(f"{user_file}:make_net").source_hash


def test_two_versions_of_a_users_network_never_share_a_key(user_file):
    cfg = RunConfig(model=f"{user_file}:make_net", model_kwargs={})
    key = cfg.key()
    assert RunConfig(model=f"{user_file}:make_net", model_kwargs={"width": 8}).key() == key  # the default
    user_file.write_text(USER_NET + "\n# an edit\n")
    assert cfg.key() == key  # this process still builds the version it ran: its key (tests/test_user_model.py)
    registry.refresh(cfg.model)  # as bench.run does before a run: the edit is taken up
    assert cfg.key() != key
    assert RunConfig().key() == "e4610d93f5abdb4c"  # a built-in's key is as before: sweeps still resume


@pytest.mark.parametrize("spec,kwargs,message", [
    ("{dir}/missing.py:make_net", {}, "model file not found"),
    ("{file}:nope", {}, "has no function 'nope'"),
    ("{file}:NOT_CALLABLE", {}, "is not callable"),
    ("{file}:not_a_module", {}, "returned str, not a torch.nn.Module"),
    ("{file}:needs_depth", {}, "needs keyword 'depth' (an integer)"),
    ("{file}:make_net", {"width": "wide"}, "keyword 'width' takes an integer"),
    ("{file}:make_net", {"depth": 3}, "no keyword 'depth'"),
    ("{file}:wrong_classes", {}, "must give (2, 10)"),
    ("no_such_module_xyz:make_net", {}, "no module named 'no_such_module_xyz'"),
    ("{dir}/broken.py:make_net", {}, "importing model file .*broken.py failed: NameError"),
    ("{dir}/syntax.py:make_net", {}, "importing model file .*syntax.py failed: SyntaxError"),
])
def test_a_bad_user_model_is_one_clear_line(user_file, spec, kwargs, message):
    (user_file.parent / "broken.py").write_text("x = undefined_name\n")
    (user_file.parent / "syntax.py").write_text("def make_net(:\n")
    spec = spec.format(dir=user_file.parent, file=user_file)
    with pytest.raises(BenchError) as e:
        validate(RunConfig(model=spec, model_kwargs=kwargs, device="cpu"))
    assert "\n" not in str(e.value)
    assert re.search(message if ".*" in message else re.escape(message), str(e.value)), str(e.value)



@pytest.mark.parametrize("ann,good,bad,words", [
    ("Literal['relu', 'gelu']", ["relu"], ["tanh", 1], "one of 'relu', 'gelu'"),
    ("float | None", [None, 1, 0.5], ["x", True], "a number or None"),
    ("Optional[int]", [None, 3], [2.5], "an integer or None"),
    ("list[int]", [[1, 2], []], [[1.5], 3], "a list of integers"),
    ("tuple[int, int]", [[1, 2]], [[1, 2, 3], [1, "a"]], "a list of integers"),
    ("tuple[float, ...]", [[1, 2.5]], [["a"], [True]], "a list of numbers"),
    ("dict", [{"a": 1}], [[1]], "a table"),
])
def test_keyword_types_from_annotations(ann, good, bad, words):
    from typing import Literal, Optional  # noqa: F401 - the annotations below name them

    from models import kwtypes
    t = eval(ann)
    assert all(kwtypes.conforms(v, t) for v in good)
    assert not any(kwtypes.conforms(v, t) for v in bad)
    assert kwtypes.describe(t) == words
