"""The report, checked against pandas on the same parquet files, and rendered in a real browser."""
import json
import shutil
import statistics
import subprocess

import pandas as pd
import pytest

from bench import report

from .conftest import bench


@pytest.fixture(scope="module")
def reported(finished_sweep, tmp_path_factory):
    _, results, _, _ = finished_sweep
    out = tmp_path_factory.mktemp("report")
    board = report.build([results]).board
    gid = board.group_id.iloc[0]
    p = bench("report", results, "--out", out, "--entry", gid, check=0)
    return results, out, gid, p


def test_every_output_is_written(reported):
    _, out, gid, _ = reported
    for name in ("leaderboard.md", "index.html", "leaderboard.csv", "leaderboard.json",
                 f"dawnbench_{gid}.json", f"dawnbench_{gid}.tsv"):
        assert (out / name).stat().st_size > 0, name
    assert len(json.loads((out / "leaderboard.json").read_text())) == 2


def test_table_numbers_match_pandas_on_the_parquet(reported):
    results, out, _, _ = reported
    runs = pd.read_parquet(results / "runs")
    board = pd.read_csv(out / "leaderboard.csv")
    assert board.runs.sum() == len(runs) == 4
    for _, b in board.iterrows():
        mine = runs[runs.inplace == b.inplace]
        ok = mine[mine.status == "ok"]
        reached = ok[ok.reached_target]
        assert b.runs == len(ok) and b.failed_runs == len(mine) - len(ok)
        assert b.success_rate == pytest.approx(len(reached) / len(ok))
        assert b.mean_final_acc == pytest.approx(ok.final_acc.mean())
        if len(reached):
            assert b.median_time_to_target_s == pytest.approx(reached.time_to_target_s.median())
        else:
            assert pd.isna(b.median_time_to_target_s)
        assert b.mean_train_images_per_s == pytest.approx(ok.train_images_per_s.mean())
        assert b.peak_host_rss_bytes == pytest.approx(ok.peak_host_rss_bytes.median())
        n = len(ok)
        t = {1: 12.706, 2: 4.303}[n - 1]
        assert b.ci95_final_acc == pytest.approx(t * ok.final_acc.std(ddof=1) / n ** 0.5)
        assert b.ranked == (b.success_rate > 0.5)


def test_axis_effects_pair_the_inplace_axis(reported):
    results, out, _, _ = reported
    md = (out / "leaderboard.md").read_text()
    assert "inplace True vs False" in md and "same accuracy" in md
    runs = pd.read_parquet(results / "runs")
    speed = runs.groupby("inplace").train_images_per_s.mean()
    ratio = speed[True] / speed[False]
    word = "faster" if ratio >= 1 else "slower"
    shown = ratio if ratio >= 1 else 1 / ratio
    assert f"inplace True vs False: {shown:.2f}x {word}" in md


def test_dawnbench_entry(reported):
    results, out, gid, _ = reported
    entry = json.loads((out / f"dawnbench_{gid}.json").read_text())
    for k in ("version", "author", "framework", "codeURL", "model", "hardware", "costPerHour", "timestamp", "misc"):
        assert k in entry
    tsv = (out / f"dawnbench_{gid}.tsv").read_text().splitlines()
    assert tsv[0] == "epoch\thours\ttop1Accuracy"
    rep = entry["misc"]["representativeRun"]
    ep = pd.read_parquet(results / "epochs")
    ep = ep[ep.run_id == rep].sort_values("epoch")
    assert len(tsv) == 1 + len(ep)
    e, h, acc = tsv[-1].split("\t")
    assert float(acc) == pytest.approx(ep.test_acc.iloc[-1] * 100, abs=0.006)
    assert float(h) == pytest.approx(ep.elapsed_s.iloc[-1] / 3600, abs=1e-8)


def test_olympic_mean_and_t_values():
    assert report.olympic_mean([5, 1, 3, 2, 4]) == pytest.approx(3.0)
    assert report.olympic_mean([10, 1, 2, 3, 4, 100]) == pytest.approx(statistics.fmean([2, 3, 4, 10]))
    assert pd.isna(report.olympic_mean([1, 2, 3, 4]))
    assert report.t95(1) == 12.706 and report.t95(27) == 2.060 and report.t95(1000) == 1.96


def test_prices_and_cost():
    prices = report.load_prices()
    assert report.price_for("NVIDIA H100 80GB HBM3", prices) == prices["H100"]
    assert report.price_for("CPU: Intel Xeon", prices) is None


def test_bad_price_file(tmp_path, reported):
    results = reported[0]
    (tmp_path / "p.json").write_text('{"H100": "cheap"}')
    p = bench("report", results, "--prices", tmp_path / "p.json")
    assert p.returncode == 2 and "must map device names" in p.stderr


def test_terminal_table_without_out(reported):
    results = reported[0]
    p = bench("report", results, check=0)
    assert "resnet9(width=0.125)" in p.stdout and "reached" in p.stdout


@pytest.fixture(scope="module")
def with_markup(finished_sweep, tmp_path_factory):
    """The real results plus one copied run whose model name is markup (HTML and rich)."""
    _, results, _, _ = finished_sweep
    d = tmp_path_factory.mktemp("markup")
    shutil.copytree(results, d / "results")
    src = next((d / "results" / "runs").glob("*.parquet"))
    row = pd.read_parquet(src)
    row["run_id"] = "markup-run"
    row["model"] = "<b>bold</b><script>document.title='owned'</script>[red]x[/red]"
    row.to_parquet(d / "results" / "runs" / "markup-run.parquet", index=False)
    out = d / "out"
    bench("report", d / "results", "--out", out, check=0)
    return d / "results", out


def test_result_strings_are_escaped(with_markup):
    results, out = with_markup
    page = (out / "index.html").read_text()
    assert "&lt;b&gt;bold&lt;/b&gt;&lt;script&gt;" in page and "<script>" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in (out / "leaderboard.md").read_text()
    term = bench("report", results, check=0).stdout
    assert "[red]x[/red]" in term.replace("\n", "").replace(" ", "") or "[red]x" in term


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args, tmp):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_page_renders_with_plots_and_markup_as_text(with_markup, tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    _, out = with_markup
    url = (out / "index.html").resolve().as_uri()
    shot = tmp_path / "page.png"
    chromium(f"--screenshot={shot}", "--window-size=1400,2600", "--hide-scrollbars", url, tmp=tmp_path / "u1")
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[0] == 2600 and img.shape[1] == 1400
    # the plots' coloured lines, markers and bars: text and tables are grey on white
    coloured = ((img.max(-1) - img.min(-1)) > 0.3).sum()
    assert coloured > 5000, coloured
    assert len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200
    dom = chromium("--dump-dom", url, tmp=tmp_path / "u2").stdout
    assert "&lt;b&gt;bold&lt;/b&gt;&lt;script&gt;document.title='owned'&lt;/script&gt;" in dom
    assert "<b>bold</b>" not in dom and "<title>CIFAR-10 time-to-accuracy leaderboard</title>" in dom


def test_cost_and_inference_boards(finished_sweep, small_data, tmp_path):
    _, results, _, _ = finished_sweep
    d = tmp_path / "results"
    shutil.copytree(results, d)
    from .conftest import TINY
    bench("run", *TINY, "--target", "0.01", "--data", small_data, "--results", d, "--save", tmp_path / "m.pt",
          check=0)
    bench("infer", "--checkpoint", tmp_path / "m.pt", "--data", small_data, "--results", d, "--limit", "20",
          check=0)
    (tmp_path / "prices.json").write_text('{"Xeon": 0.5}')
    bench("report", d, "--out", tmp_path / "out", "--prices", tmp_path / "prices.json", check=0)
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "## By cost" in md and "## Inference latency" in md
    board = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    priced = board[board.ranked]
    assert (priced.cost_to_target_usd == priced.median_time_to_target_s / 3600 * 0.5).all()
    inf = pd.read_parquet(d / "inference").iloc[0]
    latency_rows = [line for line in md.splitlines() if inf.run_id in line and "| 1 |" in line]
    assert latency_rows, "the checkpoint reached its 1% target, so it ranks first on latency"
    assert f"{inf.latency_p50_ms:.2f}" in latency_rows[0]


def test_compilation_on_the_clock_is_called_out(finished_sweep, tmp_path):
    """A run whose timed steps compiled graphs is named under its own heading, in both outputs."""
    _, results, _, _ = finished_sweep
    shutil.copytree(results, tmp_path / "results")
    bench("report", tmp_path / "results", "--out", tmp_path / "before", check=0)
    assert "Compilation on the clock" not in (tmp_path / "before" / "leaderboard.md").read_text()
    src = next((tmp_path / "results" / "runs").glob("*.parquet"))
    row = pd.read_parquet(src)
    row["timed_compiles"] = 3
    row.to_parquet(src, index=False)
    bench("report", tmp_path / "results", "--out", tmp_path / "after", check=0)
    md = (tmp_path / "after" / "leaderboard.md").read_text()
    assert "## Compilation on the clock" in md and "up to 3 graph(s)" in md
    assert "Compilation on the clock" in (tmp_path / "after" / "index.html").read_text()


def test_model_labels_keep_short_keywords_and_cut_long_ones():
    from bench.report import model_label
    assert model_label({"model": "darknet", "model_kwargs": '{"blocks": [1, 2], "width": 0.5}'}) == \
        "darknet(blocks=[1,2],width=0.5)"
    label = model_label({"model": "airbench94", "model_kwargs": '{"port": "' + "a note " * 10 + '"}'})
    assert label.startswith("airbench94(port=anote") and label.endswith("…)") and len(label) < 45


def test_an_accuracy_difference_from_single_runs_says_it_has_no_interval():
    e = {"speedup_b_over_a": 1.2, "acc_diff_b_minus_a": 0.029, "acc_ci95": 0.0, "mem_ratio_b_over_a": 1.7,
         "axis": "precision", "a": "fp16", "b": "fp32", "runs_a": 1, "runs_b": 1}
    assert report._summary(e).endswith("+2.9 pp accuracy (one side has a single run: may be noise), 1.70x the peak memory")
    e.update(runs_a=2, acc_ci95=0.088, acc_diff_b_minus_a=0.01)
    assert "same accuracy (±8.8 pp; one side has a single run)," in report._summary(e)
    e.update(runs_a=3, runs_b=3, acc_ci95=0.004, acc_diff_b_minus_a=0.029)
    assert "+2.9 pp accuracy, 1.70x" in report._summary(e)
