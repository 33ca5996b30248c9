"""The GAN workloads (bench/workloads/gan.py), their models (models/dcgan.py) and their quality metric
(bench/judge.py), on real images: the 600-image subset and a judge trained in seconds on it."""
import json
import math

import pytest
import torch

import models
from bench import data, judge
from bench.workloads import gan
from bench.config import from_recipe

TINY_JUDGE = {"model_kwargs": {"width": 0.125}, "epochs": 2, "batch_size": 100, "limit_train": None, "tta": False}
TINY_GAN = {"nf": 8, "nz": 16, "extra": 1}


# --- the Frechet distance ---------------------------------------------------------------------

def random_cov(n, seed):
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T / n + 0.1 * torch.eye(n, dtype=torch.float64)


def test_frechet_matches_closed_forms():
    m1, m2 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)
    v1, v2 = torch.tensor([4.0, 1.0, 9.0], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.25], dtype=torch.float64)
    # diagonal (commuting) covariances: |m1 - m2|^2 + sum (sqrt v1 - sqrt v2)^2
    want = float((m1 - m2).square().sum() + (v1.sqrt() - v2.sqrt()).square().sum())
    assert judge.frechet((m1, torch.diag(v1)), (m2, torch.diag(v2))) == pytest.approx(want, rel=1e-12)
    # general covariances: tr((S1^1/2 S2 S1^1/2)^1/2) = sum of sqrt(eigenvalues of S1 S2)
    s1, s2 = random_cov(6, 1), random_cov(6, 2)
    m = torch.zeros(6, dtype=torch.float64)
    cross = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()
    want = float(s1.trace() + s2.trace() - 2 * cross)
    assert judge.frechet((m, s1), (m, s2)) == pytest.approx(want, rel=1e-9)
    assert judge.frechet((m, s2), (m, s1)) == pytest.approx(want, rel=1e-9)
    assert judge.frechet((m, s1), (m, s1)) == pytest.approx(0, abs=1e-9)
    assert math.isnan(judge.frechet((m, s1 * math.nan), (m, s2)))  # a diverged generator's: no LinAlgError
    # rotating both distributions together changes nothing
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    assert judge.frechet((m, q @ s1 @ q.T), (m, q @ s2 @ q.T)) == pytest.approx(want, rel=1e-9)


# --- the models -------------------------------------------------------------------------------

def test_generator_and_critic_shapes_and_layers():
    m = models.create("dcgan", **TINY_GAN)
    z = m.noise(5)
    x = m.generator(z)
    assert x.shape == (5, 3, 32, 32) and x.abs().max() <= 1
    assert m.critic(x).shape == (5,)
    convs = [type(c).__name__ for c in m.critic.modules() if isinstance(c, torch.nn.Conv2d)]
    # 32 -> 16 (first), extra at 16, 16 -> 8 -> 4 (pyramid), 4 -> 1: the lesson's 64x64 has one more
    assert len(convs) == 1 + 1 + 2 + 1
    deconvs = [c for c in m.generator.modules() if isinstance(c, torch.nn.ConvTranspose2d)]
    assert [d.out_channels for d in deconvs] == [32, 16, 8, 8, 3]
    assert not any(isinstance(c, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)) for c in m.modules())
    with pytest.raises(ValueError, match="no keyword 'width'"):
        models.create("dcgan", width=2)


def test_inplace_and_out_of_place_gans_give_equal_gradients():
    z = torch.randn(6, 16, 1, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    real = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    results = []
    for inplace in (True, False):
        torch.manual_seed(0)
        m = models.create("dcgan", inplace=inplace, **TINY_GAN).double()
        fake = m.generator(z)
        # the critic's loss on real and generated images, and the generator's through the critic
        (m.critic(real).mean() - m.critic(fake).mean()).backward()
        results.append((fake.detach(), {k: p.grad.clone() for k, p in m.named_parameters()}))
    (f1, g1), (f2, g2) = results
    assert torch.equal(f1, f2)
    assert g1.keys() == g2.keys() and any(k.startswith("generator") for k in g1)
    for k in g1:
        assert torch.equal(g1[k], g2[k]), k


# --- the judge and the workloads, on real images --------------------------------------------

@pytest.fixture(scope="module")
def tiny(small_data, monkeypatch_module):
    monkeypatch_module.setenv("BENCH_JUDGE", json.dumps(TINY_JUDGE))
    ds = data.load(str(small_data))
    j = judge.load_or_train(str(small_data), ds, **gan.judge_overrides())
    return ds, j


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_real_images_are_far_closer_than_an_untrained_generator(tiny):
    ds, j = tiny
    assert j.label() == f"FD in resnet9-{j.checksum[:8]} features"
    train = judge.gaussian(j.features(ds.train_x))
    real = judge.frechet(judge.gaussian(j.features(ds.test_x)), train)
    torch.manual_seed(0)
    g = models.create("dcgan", **TINY_GAN).generator.eval()
    with torch.no_grad():
        fake = judge.to_pixels(g(torch.randn(len(ds.test_x), 16, 1, 1)))
    untrained = judge.frechet(judge.gaussian(j.features(fake)), train)
    assert 0 < real and untrained > 5 * real


def test_the_judge_is_cached_and_a_changed_file_is_not_trusted(tiny, small_data, tmp_path, monkeypatch):
    ds, j = tiny
    again = judge.load_or_train(str(small_data), ds, **gan.judge_overrides())
    assert again.checksum == j.checksum and again.test_acc == j.test_acc
    for p in data.cache_dir().glob("judge-*"):  # a copy: the other tests keep the good judge
        (tmp_path / p.name).write_bytes(p.read_bytes())
    for pt in tmp_path.glob("judge-*.pt"):  # every copy: the session's cache may hold other recipes' judges
        blob = bytearray(pt.read_bytes())
        blob[-100] ^= 0xFF
        pt.write_bytes(bytes(blob))

    def retrain(*a):
        raise RuntimeError("retrained")
    monkeypatch.setattr(judge, "_train", retrain)
    warnings = []
    with pytest.raises(RuntimeError, match="retrained"):
        judge.load_or_train(str(small_data), ds, cache=tmp_path, warn=warnings.append, **gan.judge_overrides())
    assert any("unusable (checksum mismatch)" in w for w in warnings)


def test_the_shared_copy_gets_the_judge_kept_with_the_code(full_data, tmp_path, monkeypatch):
    """bench/judges/, not a retrain: the same recipe retrained on another CPU gives other weights."""
    ds = data.load(str(full_data))

    def retrain(*a):
        raise RuntimeError("retrained")
    monkeypatch.setattr(judge, "_train", retrain)
    j = judge.load_or_train(str(full_data), ds, cache=tmp_path / "empty")
    (meta_path,) = judge.COMMITTED.glob("judge-*.json")
    meta = json.loads(meta_path.read_text())
    assert j.checksum == meta["weights_sha256"] and j.test_acc == meta["test_acc"] > 0.5
    # its bytes are checked like a cached file's: a changed one is not used
    bad = tmp_path / "judges"
    bad.mkdir()
    for p in judge.COMMITTED.glob("judge-*"):
        (bad / p.name).write_bytes(p.read_bytes())
    pt = bad / meta_path.with_suffix(".pt").name
    blob = bytearray(pt.read_bytes())
    blob[-100] ^= 0xFF
    pt.write_bytes(bytes(blob))
    monkeypatch.setattr(judge, "COMMITTED", bad)
    warnings = []
    with pytest.raises(RuntimeError, match="retrained"):
        judge.load_or_train(str(full_data), ds, cache=tmp_path / "empty", warn=warnings.append)
    assert any("unusable (checksum mismatch)" in w for w in warnings)


def test_a_judge_trained_otherwise_in_any_setting_is_another_judge():
    """The cache key must change with every setting that changes the judge's weights (else a
    changed recipe silently gets the old judge, and its rows name a recipe that did not train it),
    and with none that cannot (where it trains, how it is evaluated)."""
    base = judge.cache_key(judge.judge_config(), "data")
    for change in ({"translate": 0}, {"alt_flip": True}, {"schedule": "triangle"}, {"lookahead_every": 5},
                   {"label_smoothing": 0.0}, {"epochs": 4}, {"stop_at_target": True}):
        assert judge.cache_key(judge.judge_config(**change), "data") != base, change
    for same in ({"device": "cuda"}, {"tta": True}, {"compile": True}, {"eval_batch_size": 100},
                 {"time_limit_s": 60.0}, {"warmup_steps": 5}, {"inplace": False}):
        assert judge.cache_key(judge.judge_config(**same), "data") == base, same
    assert judge.cache_key(judge.judge_config(), "other data") != base


def test_the_judges_features_are_full_fp32_whatever_the_caller_set(tiny):
    """cuDNN's TF32 (on by default for convolutions) would give a GPU other features than a CPU
    for one judge: off while the judge runs, the caller's setting back after."""
    _, j = tiny
    seen, flags = [], (torch.backends.cudnn, torch.backends.cuda.matmul)
    saved = [f.allow_tf32 for f in flags]
    hook = j.net.register_forward_pre_hook(lambda m, i: seen.append(tuple(f.allow_tf32 for f in flags)))
    try:
        for f in flags:
            f.allow_tf32 = True
        j.features(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
        after = tuple(f.allow_tf32 for f in flags)
    finally:
        hook.remove()
        for f, v in zip(flags, saved):
            f.allow_tf32 = v
    assert seen == [(False, False)] and after == (True, True)


@pytest.mark.parametrize("name", ["dcgan", "wgan"])
def test_a_gan_workload_trains_an_epoch(tiny, name, tmp_path):
    ds, _ = tiny
    cfg = from_recipe(None, **{**gan.DEFAULTS[name], "model_kwargs": TINY_GAN, "batch_size": 60,
                               "device": "cpu", "precision": "bf16"})
    w = {"dcgan": gan.DCGANWorkload, "wgan": gan.WGANWorkload}[name](cfg, "cpu")
    fields = w.setup(ds)
    plans = [w.plan(e) for e in range(1, cfg.epochs + 1)]  # the WGAN's: the lesson's bursts (test_gan_runs.py)
    assert fields["critic_steps_per_gen_step"] == sum(map(sum, plans)) / sum(map(len, plans))
    assert fields["fd_samples"] == len(ds.test_x) and fields["judge"]
    before = w.evaluate()["fd"]
    params = {k: v.clone() for k, v in w.model.state_dict().items()}
    losses = torch.stack([w.step(b, k) for k, b in enumerate(w.batches(1))])
    assert losses.shape == (w.steps_per_epoch, len(w.loss_names)) and torch.isfinite(losses).all()
    # the WGAN's first generator update waits for a burst of 100 critic updates, cut at the epoch's 10 batches
    assert w.steps_per_epoch == {"dcgan": 10, "wgan": 1}[name]
    assert any(not torch.equal(params[k], v) for k, v in w.model.state_dict().items() if "generator" in k)
    if name == "wgan":  # clipped after every critic update
        assert max(p.abs().max() for p in w.model.critic.parameters()) <= gan.CLIP
        assert torch.allclose(losses[:, 2], -losses[:, 0])
    after = w.evaluate()["fd"]
    assert math.isfinite(before) and math.isfinite(after) and after != before
    png = w.save_artifacts(tmp_path, "run-1")
    assert png.endswith("samples/run-1.png") and open(png, "rb").read(4) == b"\x89PNG"
    # a seed stopped mid generator step (critic frozen, gradients made) or mid evaluation (eval mode)
    w.model.critic.requires_grad_(False)
    for q in w.model.generator.parameters():
        q.grad = torch.ones_like(q)
    w.model.eval()
    # reset: the initial weights again, and nothing of the stopped step carried into the next seed
    w.reset(cfg.seed)
    assert all(torch.equal(params[k], v) for k, v in w.model.state_dict().items())
    assert w.model.training and all(q.requires_grad and q.grad is None for q in w.model.parameters())


@pytest.mark.parametrize("name", ["dcgan", "wgan"])
def test_a_gan_step_with_loss_scaling_never_reads_the_host(tiny, name):
    """Both networks' updates, the WGAN's clipping and the loader, as fp16 runs them on a GPU (fused
    steps, a GradScaler per network): no tensor is read on the host, so the timed loop never syncs."""
    import itertools

    from .test_precision import _no_host_reads
    ds, _ = tiny
    cfg = from_recipe(None, **{**gan.DEFAULTS[name], "model_kwargs": TINY_GAN, "batch_size": 60,
                               "device": "cpu", "precision": "bf16", "fused": True})
    w = {"dcgan": gan.DCGANWorkload, "wgan": gan.WGANWorkload}[name](cfg, "cpu")
    w.setup(ds)
    w.scaler_g, w.scaler_d = torch.amp.GradScaler("cpu"), torch.amp.GradScaler("cpu")
    before = [p.detach().clone() for p in w.model.parameters()]
    with _no_host_reads():
        for k, b in enumerate(itertools.islice(w.batches(1), 2)):
            w.step(b, k)
    assert any(not torch.equal(a, p) for a, p in zip(before, w.model.parameters()))


# --- end to end: the CLI, the rows, the report ------------------------------------------------

def test_bench_run_wgan_writes_rows_samples_and_boards(tiny, small_data, tmp_path):
    import duckdb
    import pandas as pd

    from bench import report_gan

    from .conftest import bench

    res = tmp_path / "results"
    env = {"BENCH_JUDGE": json.dumps(TINY_JUDGE)}
    for ip in ("--inplace", "--no-inplace"):
        bench("run", "--workload", "wgan", "--model", "dcgan", "--model-kwargs", "nf=8", "nz=16", "--batch-size", "40",
              "--epochs", "1", "--target", "1000", "--device", "cpu", "--precision", "bf16", ip,
              "--data", small_data, "--results", res, "--no-progress-bar", env=env, check=0)
    runs, epochs = pd.read_parquet(res / "runs"), pd.read_parquet(res / "epochs")
    assert set(runs.workload) == {"wgan"} and set(runs.status) == {"ok"} and len(epochs) == 2
    assert runs.run_id.str.startswith("wgan-").all(), "named by the workload, not the dcgan pair it trains"
    # one epoch of 15 batches of 40, all before the first generator update (a burst of 100, cut short)
    assert runs.judge.notna().all() and (runs.critic_steps_per_gen_step == 15).all()
    assert runs.fd_label.iloc[0].startswith("FD in resnet9-")
    assert epochs[["fd", "wasserstein_estimate", "critic_loss", "gen_loss"]].notna().all().all()
    n = duckdb.sql(f"select count(*) from read_parquet('{res}/epochs/*.parquet') where fd > 0").fetchall()[0][0]
    assert n == 2
    for run_id in runs.run_id:
        assert (res / "samples" / f"{run_id}.png").read_bytes()[:4] == b"\x89PNG"
    boards = dict(report_gan.gan_boards(runs, epochs))
    speed = next(df for t, df in boards.items() if t.startswith("GAN speed"))
    assert len(speed) == 2 and (speed.gen_steps_per_s > 0).all()
    assert any(t.startswith("GAN in-place effect") for t in boards)
    assert any("FD in resnet9-" in t for t in boards)
    html = report_gan.sample_grid_html([res], runs)
    assert html.count('src="data:image/png;base64,') == 2
    bench("verify", res, check=0)  # the compliance checker takes a distance for the quality


@pytest.mark.parametrize("name", ["dcgan", "wgan"])
def test_a_compiled_gan_trains_like_eager(tiny, small_data, tmp_path, name):
    """torch.compile of both networks (inductor on this CPU) is compiled in the untimed warm-up and
    changes the arithmetic by float reordering only: the same losses per epoch within tolerance,
    and no compilation inside the timed steps, across an evaluation (the generator in eval mode)."""
    import pandas as pd

    from .conftest import bench

    env = {"BENCH_JUDGE": json.dumps(TINY_JUDGE)}
    common = ["run", "--workload", name, "--model", "dcgan", "--model-kwargs", "nf=8", "nz=16", "extra=0",
              "--batch-size", "20", "--epochs", "2", "--target", "1000", "--device", "cpu", "--precision", "fp32",
              "--data", small_data, "--no-progress-bar"]
    bench(*common, "--no-compile", "--warmup-steps", "1", "--results", tmp_path / "eager", env=env, check=0)
    bench(*common, "--compile", "--warmup-steps", "1", "--results", tmp_path / "compiled", env=env, check=0)
    eager = pd.read_parquet(tmp_path / "eager" / "epochs").sort_values("epoch")
    comp = pd.read_parquet(tmp_path / "compiled" / "epochs").sort_values("epoch")
    assert list(eager.epoch) == list(comp.epoch) == [1, 2]
    for col in ("critic_loss", "gen_loss"):
        assert comp[col].tolist() == pytest.approx(eager[col].tolist(), rel=2e-2, abs=1e-4), col
    assert comp.fd.tolist() == pytest.approx(eager.fd.tolist(), rel=2e-2)
    row = pd.read_parquet(tmp_path / "compiled" / "runs").iloc[0]
    assert row.compile and row.status == "ok" and row.timed_compiles == 0
    assert row.warmup_compiles >= 2   # at least the generator and the critic, before the clock


def test_a_gan_with_a_classifier_model_is_refused(small_data, tmp_path):
    from .conftest import bench

    p = bench("run", "--workload", "wgan", "--model", "resnet9", "--epochs", "1", "--device", "cpu",
              "--data", small_data, "--results", tmp_path / "r", check=2)
    assert "dcgan" in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "runs").exists()


def test_the_sample_grid_renders_in_chromium(tiny, tmp_path):
    """The page's GAN section on its own, embedded and drawn by a browser (the grid holds real images
    here: what matters is that the PNG survives the trip into the page)."""
    import shutil

    import matplotlib.image as mpimg
    import pandas as pd

    from bench import report_gan

    from .test_report import chromium
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    ds, _ = tiny
    res = tmp_path / "results"
    gan.save_grid(ds.train_x[:64], res, "run-a")
    runs = pd.DataFrame([{"run_id": "run-a", "workload": "wgan", "status": "ok", "model_kwargs": '{"nf": 8}',
                          "precision": "bf16", "inplace": True, "batch_size": 40, "epochs": 1, "target": 1000.0,
                          "device_name": "CPU <b>x</b>", "judge": "abc", "final_acc": 123.4,
                          "fd_label": "FD in resnet9-abc features", "epochs_completed": 1,
                          "source_file": str(res / "runs" / "run-a.parquet")}])
    section = report_gan.sample_grid_html([res], runs)
    assert "CPU &lt;b&gt;x&lt;/b&gt;" in section and "FD in resnet9-abc features 123.4" in section
    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><html><body style='margin:0;background:#fff'>{section}</body></html>")
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=600,600", "--hide-scrollbars", page.as_uri(), tmp=tmp_path / "u")
    img = mpimg.imread(shot)[..., :3]
    coloured = ((img.max(-1) - img.min(-1)) > 0.1).sum()  # the samples; the captions are black on white
    assert coloured > 2000, coloured


def test_gan_boards_tell_configurations_apart_and_mark_contention():
    """On the committed CPU rows: no two board rows read alike, a subset is named, and runs measured
    while other processes held the CPU are counted (their speeds describe the crowd)."""
    from bench import report_gan, results
    from bench.report_effects import contended_mask

    from .conftest import ROOT

    runs, epochs = results.read(ROOT / "results" / "cpu", "runs"), results.read(ROOT / "results" / "cpu", "epochs")
    gan = report_gan.gan_runs(runs)
    boards = dict(report_gan.gan_boards(runs, epochs))
    speed = next(df for t, df in boards.items() if t.startswith("GAN speed"))
    per_epoch = next(df for t, df in boards.items() if t.startswith("GAN FD per epoch"))
    assert speed.configuration.is_unique and per_epoch.configuration.is_unique
    assert len(speed) == report_gan._config_key(gan).nunique()
    assert speed.configuration.str.contains("10,000 img").any()
    assert speed.contended.sum() == int(contended_mask(gan).sum()) > 0


def test_distances_from_two_judges_are_never_ranked_or_tabled_together():
    """The committed CPU rows hold GAN runs judged by two judges (the tests' tiny one and the recipe's):
    an FD in one judge's features says nothing of one in another's, so each judge gets its own
    time-to-target and per-epoch boards, named by it."""
    from bench import report_gan, results

    from .conftest import ROOT

    runs, epochs = results.read(ROOT / "results" / "cpu", "runs"), results.read(ROOT / "results" / "cpu", "epochs")
    judges = report_gan.gan_runs(runs).judge.dropna().unique()
    assert len(judges) >= 2
    boards = report_gan.gan_boards(runs, epochs)
    ttt = [(t, df) for t, df in boards if t.startswith("GAN time to the FD target")]
    per_epoch = [t for t, _ in boards if t.startswith("GAN FD per epoch")]
    assert len(ttt) == len(per_epoch) == len(judges)
    for title, df in ttt:
        assert df.judge.nunique() == 1 and df.judge.iloc[0][:8] in title, title


def test_a_gan_compiles_in_the_run_s_compile_mode(tiny, monkeypatch):
    """--compile-mode reached the classifier only: a GAN compiled in torch's default mode while its
    row recorded the mode asked for."""
    ds, _ = tiny
    modes = []
    monkeypatch.setattr(torch, "compile", lambda m, mode=None, **kw: modes.append(mode) or m)
    cfg = from_recipe(None, **{**gan.DEFAULTS["dcgan"], "model_kwargs": TINY_GAN, "batch_size": 60,
                               "device": "cpu", "compile": True, "compile_mode": "max-autotune-no-cudagraphs"})
    gan.DCGANWorkload(cfg, "cpu").setup(ds)
    assert modes == ["max-autotune-no-cudagraphs"] * 2
