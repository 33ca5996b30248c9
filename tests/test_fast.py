"""The `fast` recipe's ideas (bench/fast.py, models/fastnet.py), each checked on its own; real
images where the idea depends on the data."""
import dataclasses
import json
import tomllib

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models
from bench import fast
from bench.flops import flops_per_image
from bench.config import RECIPES, BenchError, RunConfig, from_recipe, validate
from bench.loader import DeviceLoader

from .conftest import ROOT, bench


def small_images(small_data):
    from bench import data
    return data.load(str(small_data))


def test_whitening_layer_whitens_real_patches(small_data):
    ds = small_images(small_data)
    conv = nn.Conv2d(3, 24, 2)
    fast.whiten_init(conv, ds.train_x, ds.mean, ds.std, eps=1e-8)
    assert not conv.weight.requires_grad and conv.bias.requires_grad
    with torch.no_grad():  # held-out images: the test split, not the ones the covariance came from
        out = conv(fast.normalise(ds.test_x, ds.mean, ds.std))[:, :12]
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12).double()
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.double), atol=0.25), cov.diagonal()
    assert flat.mean(0).abs().max() < 0.2                      # the bias centres it
    assert torch.equal(conv.weight[12:], -conv.weight[:12])   # both signs, for the GELU after it


def _whitened_images(monkeypatch):
    """The images whiten_init normalises, as it sees them (the ones its covariance comes from)."""
    seen, real = [], fast.normalise
    monkeypatch.setattr(fast, "normalise", lambda x, mean, std: seen.append(x) or real(x, mean, std))
    return seen


def test_whitening_draws_its_images_from_every_class(small_data, monkeypatch):
    """A class-folder copy decodes class by class: the first 5,000 train images (what whitening took)
    are all airplanes, and the covariance was one class's. Here the first 60 are one class."""
    ds = small_images(small_data)
    assert set(ds.train_y[:60].tolist()) == {0}
    label = {bytes(x.numpy()): int(y) for x, y in zip(ds.train_x, ds.train_y)}
    seen = _whitened_images(monkeypatch)
    fast.whiten_init(nn.Conv2d(3, 24, 2), ds.train_x, ds.mean, ds.std, n=60)
    (x,) = seen
    assert len(x) == 60 and len({label[bytes(i.numpy())] for i in x}) >= 8


def test_whitening_sees_the_runs_train_images_only(small_data, monkeypatch):
    from bench.workloads.classify import Classify
    ds = small_images(small_data)
    test = {bytes(x.numpy()) for x in ds.test_x}
    seen = _whitened_images(monkeypatch)
    cfg = from_recipe("fast", model_kwargs={"widths": [8, 8, 8]}, batch_size=100, limit_train=300,
                      compile=False, precision="fp32", device="cpu")
    wl = Classify(cfg, torch.device("cpu"))
    wl.setup(ds)
    wl.reset(1)
    assert len(seen) == 2 and all(torch.equal(x, wl.train_x) for x in seen)   # the 300 it trains on
    assert not test & {bytes(i.numpy()) for i in seen[0]}


def test_without_whitening_patches_are_far_from_white(small_data):
    ds = small_images(small_data)
    x = fast.normalise(ds.test_x, ds.mean, ds.std)
    patches = F.unfold(x, 2).transpose(1, 2).reshape(-1, 12).double()
    cov = torch.cov(patches.T)
    assert (cov - torch.eye(12, dtype=torch.double)).abs().max() > 0.5  # neighbouring pixels correlate


def test_dirac_makes_a_conv_the_identity_on_its_first_channels():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, padding=1, bias=False)
    fast.dirac_init(nn.Sequential(conv))
    x = torch.randn(2, 8, 10, 10)
    y = conv(x)
    assert torch.allclose(y[:, :8], x, atol=1e-6)
    assert not torch.allclose(y[:, 8:], torch.zeros_like(y[:, 8:]))  # the others keep their random init


def test_prepare_switches_each_idea_on_its_own(small_data):
    ds = small_images(small_data)
    for flags in ({}, {"whiten": True}, {"dirac": True}, {"bn_weight_frozen": True}):
        torch.manual_seed(0)
        m = models.create("fastnet", widths=[8, 16, 16])
        before = {k: v.clone() for k, v in m.state_dict().items()}
        fast.prepare(m, RunConfig(model="fastnet", model_kwargs={}, **flags), ds.train_x, ds.mean, ds.std)
        changed = {k for k, v in m.state_dict().items() if not torch.equal(v, before[k])}
        frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
        if not flags:
            assert not changed and not frozen
        if flags.get("whiten"):
            assert changed == {"0.weight", "0.bias"} and frozen == {"0.weight"}
        if flags.get("dirac"):
            assert changed and all(k.endswith("weight") and not k.startswith("0.") for k in changed)
        if flags.get("bn_weight_frozen"):
            assert not changed and frozen and all(".2." in n or ".5." in n for n in frozen)


def test_bn_biases_get_the_scaled_lr_and_their_own_decay():
    m = models.create("fastnet", widths=[8, 16, 16])
    cfg = RunConfig(model="fastnet", model_kwargs={}, bn_bias_lr_scale=64.0, weight_decay=1e-3)
    groups = fast.param_groups(m, cfg)
    bn_biases = {id(mod.bias) for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)}
    assert {id(p) for p in groups[1]["params"]} == bn_biases
    assert groups[1]["lr_scale"] == 64.0 and groups[1]["weight_decay"] == pytest.approx(1e-3 / 64)
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))
    one = fast.param_groups(m, RunConfig(model="fastnet", model_kwargs={}))
    assert len(one) == 1 and len(one[0]["params"]) == len(list(m.parameters()))


def test_orthogonalise_keeps_the_singular_vectors_and_pulls_the_values_near_one():
    torch.manual_seed(0)
    # filters flattened: (out, in x 3 x 3), never square. (A square random matrix has singular values
    # near 0 that three steps cannot lift; the update just moves less along them.)
    for shape in ((16, 72), (72, 16), (64, 216)):
        g = torch.randn(shape, dtype=torch.double) * 7
        u, s, vh = torch.linalg.svd(g, full_matrices=False)
        x = fast.orthogonalise(g)
        assert x.shape == g.shape
        core = u.T @ x @ vh.T          # diagonal if x shares g's singular vectors
        off = core - torch.diag(core.diagonal())
        assert off.abs().max() < 1e-8, shape
        assert core.diagonal().min() > 0.6 and core.diagonal().max() < 1.25, core.diagonal()
        assert torch.allclose(fast.orthogonalise(g / 100), x, atol=1e-6)   # the gradient's scale is dropped


def test_muon_steps_along_the_orthogonalised_nesterov_momentum_at_a_fixed_norm():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(8, 4, 3, 3) * 3)
    opt = fast.Muon([w], lr=0.1, momentum=0.6)
    buf = torch.zeros_like(w)
    for _ in range(3):
        g = torch.randn_like(w)
        before = w.detach().clone()
        w.grad = g.clone()
        opt.step()
        buf = 0.6 * buf + g
        held = before * (8 ** 0.5 / before.norm())
        assert torch.allclose(w, held - 0.1 * fast.orthogonalise((g + 0.6 * buf).flatten(1)).view_as(w), atol=1e-5)


def test_muon_takes_the_trainable_filters_and_sgd_the_rest(small_data):
    ds = small_images(small_data)
    cfg = from_recipe("fast_muon", model_kwargs={"widths": [8, 16, 16]})
    m = models.create("fastnet", widths=[8, 16, 16])
    fast.prepare(m, cfg, ds.train_x, ds.mean, ds.std)
    sgd, muon = fast.optimizers(m, cfg, cfg.lr)
    filters = {id(p) for p in m.parameters() if p.dim() == 4 and p.requires_grad}
    assert len(filters) == 6 and not m[0].weight.requires_grad   # the six 3x3 convs; whitening frozen
    assert {id(p) for g in muon.param_groups for p in g["params"]} == filters
    in_sgd = [id(p) for g in sgd.param_groups for p in g["params"]]
    assert not filters & set(in_sgd) and len(in_sgd) + len(filters) == len(list(m.parameters()))
    assert muon.param_groups[0]["lr_scale"] == pytest.approx(0.24 / 1.66)
    assert muon.param_groups[0]["momentum"] == 0.6 and muon.param_groups[0]["nesterov"]
    only_sgd = fast.optimizers(m, from_recipe("fast_muon", muon_lr=0.0), 1.0)
    assert len(only_sgd) == 1 and isinstance(only_sgd[0], torch.optim.SGD)


def test_a_training_step_steps_both_optimisers(small_data):
    from bench import workload
    cfg = from_recipe("fast_muon", model_kwargs={"widths": [8, 16, 16]}, batch_size=100, device="cpu",
                      precision="fp32", compile=False, warmup_steps=0)
    wl = workload.get("classify")(cfg, torch.device("cpu"))
    wl.setup(small_images(small_data))
    before = [p.detach().clone() for p in wl.model.parameters()]
    wl.step(next(iter(wl.batches(1))), 0)
    sgd, muon = wl.opts
    assert len(muon.state) == 6 and all("momentum_buffer" in s for s in muon.state.values())
    assert wl.model[-2].weight in sgd.state                       # the head
    moved = [not torch.equal(b, p) for b, p in zip(before, wl.model.parameters()) if p.requires_grad]
    assert all(moved)
    assert muon.param_groups[0]["lr"] == pytest.approx(0.24) and muon.param_groups[0]["momentum"] == 0.6


def test_lookahead_matches_a_hand_computation():
    p = nn.Parameter(torch.tensor([0.0]))
    net = nn.Module()
    net.p = p
    la = fast.Lookahead(net, every=2, decay=0.5, total=4)
    avg = 0.0
    for step, value in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            p.fill_(value)           # what an optimizer step would have produced
        la.update(step)
        if step % 2 == 0:
            d = 0.5 ** 2 * (step / 4) ** 3
            avg = d * avg + (1 - d) * value
            assert p.item() == pytest.approx(avg)   # the net is reset to the average
    # step 2: d = 0.25/8, avg = 2 * (1 - d); step 4: d = 0.25
    assert p.item() == pytest.approx(0.25 * 2 * (1 - 0.25 / 8) + 0.75 * 4.0)


def test_lookahead_applies_the_average_at_the_last_step():
    p = nn.Parameter(torch.tensor([0.0]))
    net = nn.Module()
    net.p = p
    la = fast.Lookahead(net, every=5, decay=0.9, total=3)   # no regular update before the end
    for step in (1, 2, 3):
        with torch.no_grad():
            p.fill_(float(step))
        la.update(step)
    assert p.item() == 0.0  # the average never moved: decay ramps from 1, no update fell on a multiple of 5


def test_alternating_flip_flips_each_image_on_alternate_epochs():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)  # synthetic: only indices matter
    ld = DeviceLoader(x, torch.arange(64), (0.0,) * 3, (1.0,) * 3, 16, "cpu", seed=5, flip_mode="alternate")
    flips = torch.stack([ld.draws(e)[3] for e in range(1, 7)])
    assert (flips[1:] != flips[:-1]).all()            # every image changes every epoch
    assert 10 < int(flips[0].sum()) < 54              # the first epoch's bits are random
    again = DeviceLoader(x, torch.arange(64), (0.0,) * 3, (1.0,) * 3, 16, "cpu", seed=5, flip_mode="alternate")
    assert torch.equal(again.draws(3)[3], flips[2])   # the seed alone decides
    other = DeviceLoader(x, torch.arange(64), (0.0,) * 3, (1.0,) * 3, 16, "cpu", seed=6, flip_mode="alternate")
    assert not torch.equal(other.draws(1)[3], flips[0])
    rand = DeviceLoader(x, torch.arange(64), (0.0,) * 3, (1.0,) * 3, 16, "cpu", seed=5)
    assert torch.equal(rand.draws(3)[0], ld.draws(3)[0])  # the order and crops are the random loader's


def test_translate_crops_within_its_own_padding():
    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    ld = DeviceLoader(x, torch.arange(32), (0.0,) * 3, (1.0,) * 3, 16, "cpu", seed=0, pad=2)
    _, dx, dy, _, _ = ld.draws(1)
    assert set(dx.tolist()) <= set(range(5)) and len(set(dx.tolist())) > 2
    padded = F.pad(x.float(), (2,) * 4, mode="reflect")
    for xb, yb in ld.epoch(1):
        i = int(yb[0])
        want = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        assert torch.equal(xb[0], want.flip(2) if ld.draws(1)[3][i] else want)


def test_tta_views():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(fast.tta_logits(net, x, 1), net(x))
    assert torch.allclose(fast.tta_logits(net, x, 2), net(x) + net(x.flip(3)))
    calls = []
    net.register_forward_hook(lambda m, i, o: calls.append(i[0]))
    six = fast.tta_logits(net, x, 6)
    assert len(calls) == 6
    pad = F.pad(x, (1,) * 4, mode="reflect")
    assert torch.equal(calls[2], pad[:, :, :8, :8]) and torch.equal(calls[4], pad[:, :, 2:, 2:])
    assert torch.allclose(six, 0.5 * (net(x) + net(x.flip(3))) + 0.25 * sum(
        net(v) + net(v.flip(3)) for v in (pad[:, :, :8, :8], pad[:, :, 2:, 2:])), atol=1e-6)


def test_tta_views_hold_when_each_call_reuses_the_last_calls_output_memory():
    """Under CUDA graphs (--compile-mode reduce-overhead) a compiled net writes every call's output
    into the same static buffer, so a view's logits must be read before the next view overwrites
    them. A CPU stand-in with one output buffer: multi-view TTA must equal the plain net's."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    buf = torch.empty(2, 4)

    def graphed(t):
        return buf.copy_(net(t))

    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        for v in (2, 6):
            assert torch.allclose(fast.tta_logits(graphed, x, v), fast.tta_logits(net, x, v), atol=1e-6), v


def test_tta_switches_and_tta_views_counts():
    assert fast.views(RunConfig()) == 1 and fast.views(RunConfig(tta=True)) == 2
    assert fast.views(RunConfig(tta=True, tta_views=6)) == 6 and fast.views(RunConfig(tta_views=6)) == 1
    assert fast.views(from_recipe("fast")) == 6 and fast.views(from_recipe("fast", tta=False)) == 1
    c = RunConfig(tta=True, tta_views=6, tta_last_only=True, epochs=3)
    assert [fast.eval_views(c, e) for e in (1, 2, 3, None)] == [1, 1, 6, 6]


def test_triangle_schedule():
    s = fast.triangle(100, 2.0, div=5, pct=25, final_div=10, mom=0.85)
    lrs = [lr for lr, _ in s]
    assert lrs[0] == pytest.approx(0.4) and max(lrs) == pytest.approx(2.0) and lrs.index(2.0) == 25
    assert lrs[-1] == pytest.approx(0.2) and {m for _, m in s} == {0.85}


@pytest.mark.parametrize("bad, words", [({"tta_views": 3}, "tta-views"), ({"schedule": "cosine"}, "schedule"),
                                        ({"whiten": True, "model": "resnet9", "model_kwargs": {}}, "whiten"),
                                        ({"lookahead_decay": 1.0}, "lookahead-decay"),
                                        ({"muon_lr": -0.1}, "muon-lr"), ({"muon_momentum": 1.0}, "muon-momentum"),
                                        ({"muon_lr": float("nan")}, "muon-lr"), ({"muon_lr": float("inf")}, "muon-lr"),
                                        ({"bn_bias_lr_scale": float("inf")}, "bn-bias-lr-scale"),
                                        ({"final_div": float("nan")}, "final-div"),
                                        # it would stop on a 1-view score labelled 6-view
                                        ({"tta_last_only": True}, "tta-last-only .* stop-at-target")])
def test_bad_fast_settings_are_refused(bad, words):
    with pytest.raises(BenchError, match=words):
        validate(from_recipe("fast", **bad), cuda_available=False)


def test_tta_on_the_last_epoch_only_runs_where_nothing_stops_on_an_earlier_score():
    for ok in ({"tta_last_only": True, "stop_at_target": False}, {"tta_last_only": True, "tta": False}):
        validate(from_recipe("fast", **ok), cuda_available=False)


def test_flops_per_image_is_the_mean_over_the_epochs_run(small_data):
    """Once the whitening bias freezes, backward stops at the first 3x3 conv: the later epochs cost
    less, and the row's FLOPs (and MFU from them) must not price them at the first epochs' rate."""
    from bench.workloads.classify import Classify

    cfg = from_recipe("fast", model_kwargs={"widths": [8, 8, 8]}, batch_size=100, limit_train=300, epochs=4,
                      whiten_bias_epochs=1, compile=False, precision="fp32", device="cpu")
    wl = Classify(cfg, torch.device("cpu"))
    info = wl.setup(small_images(small_data))
    trains, frozen = wl._flops
    assert frozen < trains and info["flops_per_image"] == trains
    assert wl.run_fields(1)["flops_per_image"] == trains                    # stopped inside the bias epochs
    assert wl.run_fields(4)["flops_per_image"] == pytest.approx((trains + 3 * frozen) / 4)
    off = Classify(dataclasses.replace(cfg, whiten=False), torch.device("cpu"))
    off.setup(small_images(small_data))
    assert off.run_fields(4)["flops_per_image"] == off._flops[0] == off._flops[1]


def test_a_run_shorter_than_the_lookahead_period_is_refused_before_it_trains():
    """Its average would never move and the last step writes it back: the run would train for nothing
    and report the initial weights' accuracy."""
    from types import SimpleNamespace

    from bench.workloads.classify import Classify

    data = SimpleNamespace(train_x=torch.zeros(4096, 1))  # only the count matters to the check
    cfg = from_recipe("fast", epochs=1, lookahead_every=5)   # 4 steps of 1,024
    with pytest.raises(BenchError, match="lookahead-every 5 exceeds the run's 4 steps"):
        Classify.check_data(cfg, data)
    Classify.check_data(from_recipe("fast", epochs=2, lookahead_every=5), data)  # 8 steps: one update
    Classify.check_data(from_recipe("fast", epochs=1, lookahead_every=0), data)  # off


def test_new_settings_at_their_defaults_keep_old_config_keys():
    # pinned from before the settings existed (main at 347cf74): resumed sweeps must still match
    assert from_recipe("dawn").key() == "b346edf6ab365531"
    assert from_recipe("cpu").key() == "91d71d32114c1c0b"
    assert from_recipe("cpu", translate=2).key() != "91d71d32114c1c0b"


def test_fastnet_is_airbench_sized():
    m = models.create("fastnet", widths=[64, 256, 256])
    m[0].weight.requires_grad_(False)
    flops = flops_per_image(m)
    assert 0.65e9 < flops < 0.75e9   # airbench's net counts 0.708 GFLOP per training image the same way
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


ABLATIONS = {  # preset -> (recipe, the settings its cells switch off, one each: issue #17's ideas)
    "fast-ablation.toml": ("fast", {"whiten", "dirac", "bn_weight_frozen", "bn_bias_lr_scale", "lookahead_every",
                                    "alt_flip", "translate", "tta_views", "label_smoothing", "nesterov"}),
    "fast-muon-ablation.toml": ("fast_muon", {"muon_lr", "whiten", "dirac", "bn_weight_frozen", "bn_bias_lr_scale",
                                              "alt_flip", "translate", "tta_views", "label_smoothing", "nesterov"}),
}


@pytest.mark.parametrize("preset", sorted(ABLATIONS))
def test_ablation_preset_switches_each_idea_off_once(preset):
    recipe, ideas = ABLATIONS[preset]
    doc = tomllib.loads((ROOT / "configs" / preset).read_text())
    assert doc["base"]["recipe"] == recipe
    from bench import sweep
    cells = sweep.expand(*sweep.load(ROOT / "configs" / preset), check_gpu=True)
    on = from_recipe(recipe, **{k: v for k, v in doc["base"].items() if k != "recipe"})
    offs, configs = [], {json.dumps({**c.cfg.to_dict(), "seed": 0}, sort_keys=True): c for c in cells}.values()
    for c in configs:   # every setting compared, not only the ideas': a cell changes one thing
        diff = [k for k in on.to_dict() if k != "seed" and getattr(c.cfg, k) != getattr(on, k)]
        assert len(diff) <= 1, diff
        offs += diff
    assert len(offs) == len(configs) - 1 and set(offs) == ideas   # one cell is the recipe; each other turns one idea off
    assert len(cells) == len(configs) * 3


def test_fast_under_ddp_trains_on_after_its_whitening_bias_freezes(small_data, tmp_path):
    """DDP reduces the gradients of the parameters that trained when it was built. The whitening bias
    stops training after whiten_bias_epochs (and for a step of the warm-up): unless DDP looks for
    parameters without a gradient, the step after fails ("Expected to have finished reduction")."""
    cfg = from_recipe("fast", model_kwargs={"widths": [8, 8, 8]}, batch_size=100, epochs=2, whiten_bias_epochs=1,
                      warmup_steps=1, compile=False, precision="fp32", device="cpu", target=0.99,
                      stop_at_target=False, tta=False, world_size=2)
    p = bench("run", "--config-json", json.dumps(cfg.to_dict()), "--data", str(small_data),
              "--results", str(tmp_path), "--no-progress-bar")
    r = pd.read_parquet(tmp_path / "runs").iloc[0]
    assert (r.status, r.world_size, r.epochs_completed) == ("ok", 2, 2), (r.error, p.stderr[-3000:])


def test_fast_with_every_idea_off_still_trains(small_data, tmp_path):
    off = dict(whiten=False, dirac=False, bn_weight_frozen=False, bn_bias_lr_scale=1.0, lookahead_every=0,
               alt_flip=False, translate=4, tta=False, schedule="one_cycle", compile=False, warmup_steps=0,
               stop_at_target=False)
    for name, extra in (("off", off), ("on", dict(compile=False, warmup_steps=0, stop_at_target=False))):
        cfg = from_recipe("fast", model_kwargs={"widths": [16, 32, 32]}, batch_size=100, epochs=2, lr=0.5,
                          device="cpu", precision="fp32", target=0.99, seed=0, **extra)
        p = bench("run", "--config-json", json.dumps(cfg.to_dict()), "--data", str(small_data),
                  "--results", str(tmp_path / name), "--no-progress-bar")
        assert p.returncode == 0, p.stderr[-3000:]
    off_run = pd.read_parquet(tmp_path / "off" / "runs").iloc[0]
    on_run = pd.read_parquet(tmp_path / "on" / "runs").iloc[0]
    for name, r in (("off", off_run), ("on", on_run)):
        assert r.status == "ok" and r.epochs_completed == 2
        losses = pd.read_parquet(tmp_path / name / "epochs").sort_values("epoch").train_loss.tolist()
        assert losses[1] < losses[0], losses   # it learns
    assert off_run.tta_views == 1 and on_run.tta_views == 6 and bool(on_run.whiten) and not off_run.whiten
    assert off_run.config_key != on_run.config_key


@pytest.mark.parametrize("recipe, images", [("fast", 480 * 1024), ("fast_muon", 250 * 1948)])
def test_fast_recipe_trains_within_airbench_flops(tmp_path, recipe, images):
    """The recipe's budget (issue #17): no more training FLOPs than airbench's 9.9 epochs, counted
    on both nets the same way (airbench's built by its own package)."""
    pytest.importorskip("airbench")
    import subprocess
    import sys
    out = tmp_path / "flops.json"
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fast_flops.py"), "--recipe", recipe,
                        "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    f = json.loads(out.read_text())["figures"]
    assert f["airbench94"]["images"] == 476 * 1024 and f[recipe]["images"] == images
    assert f[recipe]["total_flops"] <= f["airbench94"]["total_flops"]
    if recipe == "fast_muon":   # Muon's orthogonalisation is reported beside the total, not hidden
        assert 0 < f[recipe]["optimizer_flops"] < 0.01 * f[recipe]["total_flops"]
    assert 0.6e9 < f["airbench94"]["flops_per_image_bias_frozen"] < 0.8e9


def _train_seed(wl, seed):
    wl.reset(seed)
    step = 0
    for epoch in range(1, wl.cfg.epochs + 1):
        for batch in wl.batches(epoch):
            wl.step(batch, step)
            step += 1
    return {k: v.clone() for k, v in wl.model.state_dict().items()}


def _workload(ds, seed):
    """A process's workload, set up with its first seed's settings."""
    from bench.workloads.classify import Classify
    cfg = from_recipe("fast", model_kwargs={"widths": [8, 8, 8]}, batch_size=100, limit_train=300, epochs=2,
                      lookahead_every=2, whiten_bias_epochs=1, compile=False, precision="fp32", device="cpu", seed=seed)
    wl = Classify(cfg, torch.device("cpu"))
    wl.setup(ds)
    return wl


def test_a_seed_after_another_in_one_process_trains_as_it_alone(small_data):
    """`--seeds`: the lookahead average, the alternating flips' bits, the whitening bias's freeze and
    the optimisers' momenta of one seed must not carry into the next (bitwise on the CPU)."""
    ds = small_images(small_data)
    after = _workload(ds, 0)
    first = _train_seed(after, 0)
    second = _train_seed(after, 1)
    own = _train_seed(_workload(ds, 1), 1)
    assert not all(torch.equal(first[k], second[k]) for k in own)
    assert all(torch.equal(second[k], own[k]) for k in own), [k for k in own if not torch.equal(second[k], own[k])]


def _oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory (the test's)")


def test_a_seed_after_one_stopped_in_evaluation_trains_as_it_alone(small_data, monkeypatch):
    """An OOM or the time limit's SIGTERM in evaluation ends a seed, and the next one trains in the same
    process (runner.CONTINUE_AFTER): it must train, not evaluate, its BatchNorm (bitwise on the CPU)."""
    ds = small_images(small_data)
    after = _workload(ds, 0)
    _train_seed(after, 0)
    with monkeypatch.context() as m:
        m.setattr(fast, "tta_logits", _oom)
        with pytest.raises(torch.OutOfMemoryError):
            after.evaluate()
    assert after.model.training
    after.model.eval()  # a stop inside model.eval() itself, before evaluate's try: the reset must undo it
    second = _train_seed(after, 1)
    own = _train_seed(_workload(ds, 1), 1)
    assert all(torch.equal(second[k], own[k]) for k in own), [k for k in own if not torch.equal(second[k], own[k])]


def test_a_seed_after_one_stopped_after_its_backward_trains_as_it_alone(small_data):
    """A seed stopped between a step's backward and its optimizer step (an OOM there, the time limit's
    SIGTERM) leaves its gradients behind: the next seed's first step must not add them to its own."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    ds = small_images(small_data)
    after = _workload(ds, 0)
    after.reset(0)
    hook = register_optimizer_step_pre_hook(_oom)  # every optimizer's, after the backward
    try:
        with pytest.raises(torch.OutOfMemoryError):
            after.step(next(iter(after.batches(1))), 0)
    finally:
        hook.remove()
    assert any(p.grad is not None for p in after.model.parameters())
    second = _train_seed(after, 1)
    own = _train_seed(_workload(ds, 1), 1)
    assert all(torch.equal(second[k], own[k]) for k in own), [k for k in own if not torch.equal(second[k], own[k])]
