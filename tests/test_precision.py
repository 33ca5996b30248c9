"""fp16's loss scaling stays on the device. Every optimizer the workloads build with fused steps takes
GradScaler's scale and overflow flag as tensors, so GradScaler never reads the flag on the host
(`.item()`: on a GPU, a sync in every timed step); an overflowed step moves nothing; a scaled step is
the unscaled one. The CPU's GradScaler runs the same code path as CUDA's."""
import copy
import dataclasses
import types
import warnings
from unittest import mock

import pandas as pd
import pytest
import torch

from bench import fast, meters, precision
from bench.config import RunConfig
from bench.workloads.gan import DCGANWorkload, WGANWorkload

from .conftest import TINY, bench

KINDS = ["sgd", "sgd+muon", "adam", "rmsprop"]


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8),
                               torch.nn.LeakyReLU(0.1), torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 2))


def _x():
    return torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def _optimizers(kind, net, fused=True):
    """The workloads' own optimizers (the classifier's SGD, with Muon for fast_muon; DCGAN's Adam;
    WGAN's RMSprop), built as on a GPU: fused."""
    cfg = RunConfig(fused=fused, lr=1e-3)
    if kind == "sgd":
        return fast.optimizers(net, cfg, 0.1, fused=cfg.fused_on("cpu"))
    if kind == "sgd+muon":
        return fast.optimizers(net, dataclasses.replace(cfg, muon_lr=0.2), 0.1, fused=cfg.fused_on("cpu"))
    gan = {"adam": DCGANWorkload, "rmsprop": WGANWorkload}[kind]
    return [gan._optimizer(types.SimpleNamespace(cfg=cfg, device=torch.device("cpu")), net)]


def _scaled_step(net, opts, scaler, x, poison=False):
    for o in opts:
        o.zero_grad(set_to_none=True)
    scaler.scale(net(x).square().mean()).backward()
    if poison:  # an overflowed gradient element, as fp16 gives, for each optimizer (GradScaler skips
        for o in opts:  # per optimizer, on that optimizer's own gradients)
            o.param_groups[0]["params"][0].grad.view(-1)[0] = float("inf")
    for o in opts:
        scaler.step(o)
    scaler.update()


def _no_host_reads():
    def host_read(*a, **k):
        raise AssertionError("a tensor was read on the host: on a GPU, a sync in the timed loop")
    return mock.patch.multiple(torch.Tensor, item=host_read, tolist=host_read, __bool__=host_read,
                               __float__=host_read)


@pytest.mark.parametrize("kind", KINDS)
def test_an_fp16_step_never_reads_the_device_on_the_host(kind):
    net = _net()
    opts, scaler = _optimizers(kind, net), torch.amp.GradScaler("cpu")
    for poison in (False, True, False):
        for o in opts:
            o.zero_grad(set_to_none=True)
        scaler.scale(net(_x()).square().mean()).backward()
        if poison:
            for o in opts:
                o.param_groups[0]["params"][0].grad.view(-1)[0] = float("inf")
        with _no_host_reads():
            for o in opts:
                scaler.step(o)
            scaler.update()


@pytest.mark.parametrize("recipe, kwargs", [("lesson", {"blocks": [1, 1], "nf": 8}),
                                             ("fast_muon", {"widths": [8, 16, 16]})])
def test_a_classifier_step_with_loss_scaling_never_reads_the_host(small_data, recipe, kwargs):
    """The workload's whole timed step (the loader's batch, lr and momentum set, forward, scaled
    backward, optimizers, lookahead) as fp16 runs it on a GPU: fused steps and an enabled GradScaler."""
    import itertools

    from bench import workload
    from bench.config import from_recipe

    from .test_fast import small_images
    cfg = from_recipe(recipe, model_kwargs=kwargs, batch_size=100, device="cpu", precision="fp32",
                      compile=False, warmup_steps=0, fused=True)
    wl = workload.get("classify")(cfg, torch.device("cpu"))
    wl.setup(small_images(small_data))
    wl.scaler = torch.amp.GradScaler("cpu")  # fp16's loss scaling (the CPU runs fp16 only in tests)
    before = [p.detach().clone() for p in wl.model.parameters()]
    with _no_host_reads():  # the loader's batches too: they are drawn inside the timed loop
        for i, batch in enumerate(itertools.islice(wl.batches(1), 3)):
            wl.step(batch, i)
    assert any(not torch.equal(b, p) for b, p in zip(before, wl.model.parameters()))


def test_unfused_sgd_would_read_the_host_every_step():
    """The check above can fail: PyTorch's unfused SGD makes GradScaler call .item()."""
    net = _net()
    opts, scaler = _optimizers("sgd", net, fused=False), torch.amp.GradScaler("cpu")
    scaler.scale(net(_x()).square().mean()).backward()
    with pytest.raises(AssertionError, match="on the host"), _no_host_reads():
        scaler.step(opts[0])


def _state(net, opts):
    tensors = [p.detach().clone() for p in net.parameters()]
    for o in opts:
        tensors += [v.clone() for s in o.state.values() for v in s.values() if torch.is_tensor(v) and v.dim()]
    return tensors


@pytest.mark.parametrize("kind", KINDS)
def test_an_overflowed_step_moves_nothing(kind):
    net = _net()
    opts, scaler = _optimizers(kind, net), torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    _scaled_step(net, opts, scaler, _x())  # the optimizer state exists
    before = _state(net, opts)
    _scaled_step(net, opts, scaler, _x(), poison=True)
    after = _state(net, opts)
    assert len(before) == len(after) > len(list(net.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert scaler.get_scale() == 2.0 ** 15  # and the scale backed off
    _scaled_step(net, opts, scaler, _x())
    assert not all(torch.equal(a, b) for a, b in zip(before, _state(net, opts)))  # the next step moves


@pytest.mark.parametrize("kind", KINDS)
def test_an_overflow_on_the_very_first_step_leaves_no_trace(kind):
    """fp16's first scale often overflows. PyTorch's fused SGD creates its momentum buffers with
    empty_like on its first step and skips writing them then: the next step would start from
    uninitialised memory. The harness starts them at zero (bench/precision.py's sgd)."""
    a, b = _net(), _net()
    oa, ob = _optimizers(kind, a), _optimizers(kind, b)
    sa, sb = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16), torch.amp.GradScaler("cpu", init_scale=2.0 ** 15)
    _scaled_step(a, oa, sa, _x(), poison=True)  # skipped: the scale halves to b's
    for _ in range(2):
        _scaled_step(a, oa, sa, _x())
        _scaled_step(b, ob, sb, _x())
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_a_scaled_step_is_the_unscaled_step(kind):
    a, b = _net(), _net()
    oa, ob = _optimizers(kind, a), _optimizers(kind, b)
    scaler, off = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16), torch.amp.GradScaler("cpu", enabled=False)
    for _ in range(3):
        _scaled_step(a, oa, scaler, _x())
        _scaled_step(b, ob, off, _x())
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert not torch.equal(next(a.parameters()), next(_net().parameters()))


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_fused_steps_are_the_same_optimizer(kind):
    a, b = _net(), _net()
    oa, ob = _optimizers(kind, a, fused=True), _optimizers(kind, b, fused=False)
    off = torch.amp.GradScaler("cpu", enabled=False)
    for _ in range(3):
        _scaled_step(a, oa, off, _x())
        _scaled_step(b, ob, off, _x())
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_the_harness_rmsprop_is_torchs_to_the_bit():
    """The WGAN's optimizer was torch.optim.RMSprop: same weights, so earlier rows still compare."""
    a, b = _net(), _net()
    oa, ob = torch.optim.RMSprop(a.parameters(), lr=1e-3), precision.RMSprop(b.parameters(), lr=1e-3)
    for _ in range(3):
        for net, o in ((a, oa), (b, ob)):
            o.zero_grad()
            net(_x()).square().mean().backward()
            o.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_the_row_says_whether_the_steps_were_fused(small_data, tmp_path):
    """Null means on CUDA only: a CPU run's row says off; --fused on the CPU runs and says on."""
    for flag, want in (([], False), (["--fused"], True)):
        out = tmp_path / str(want)
        bench("run", *TINY, "--epochs", "1", *flag, "--data", small_data, "--results", out, "--no-progress-bar",
              check=0)
        r = pd.read_parquet(out / "runs").iloc[0]
        assert r.status == "ok" and r.fused == want


def test_the_runner_counts_the_syncs_the_debug_mode_reports():
    """meters.HostSyncs around an epoch's steps (the mode itself is CUDA's: a stand-in records it here)."""
    modes = []
    audit = meters.HostSyncs("cpu", set_mode=modes.append).start()
    with pytest.warns(UserWarning, match="another warning"):  # other warnings pass through
        with audit.steps():
            for _ in range(3):
                warnings.warn("called a synchronizing CUDA operation")
            warnings.warn("another warning")
    assert audit.stop() == {"timed_syncs": 3} and modes == ["warn", 0]
    with pytest.raises(KeyboardInterrupt), audit.steps():  # the mode is switched off however steps end
        raise KeyboardInterrupt
    assert modes[-1] == 0
    assert meters.HostSyncs("cpu").stop() == {"timed_syncs": None}  # off CUDA: not counted
