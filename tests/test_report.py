"""The report, checked against pandas on the same parquet files, and rendered in a real browser."""
import json
import shutil
import statistics
import subprocess

import pandas as pd
import pytest

from bench import report, report_boards

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
    import re
    page = (out / "index.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*(?!["']?(data:|#))""", page), "the page must load nothing from outside"
    assert page.count("src='data:image/svg+xml;base64,") >= 2


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


def test_setup_is_what_setting_up_the_configuration_cost(reported):
    """A configuration's seeds share one process: the first pays data, build and warm-up, the second
    only a reset. The board's setup is the first's, not a median of the two kinds."""
    results, out, _, _ = reported
    runs = pd.read_parquet(results / "runs")
    for _, b in pd.read_csv(out / "leaderboard.csv").iterrows():
        mine = runs[(runs.inplace == b.inplace) & (runs.status == "ok")]
        paid, warm = mine[mine.seed_index == 0], mine[mine.seed_index > 0]
        assert len(paid) == len(warm) == 1 and paid.data_time_s.iloc[0] > 0 == warm.data_time_s.iloc[0]
        assert b.setup_time_s == pytest.approx(paid.setup_time_s.iloc[0])
        assert b.warmup_time_s == pytest.approx(paid.warmup_time_s.iloc[0])


def test_a_row_from_before_seed_index_paid_its_own_setup(finished_sweep, tmp_path):
    """Before seeds shared a process each run set up its own: a row without `seed_index` counts as paid."""
    _, results, _, _ = finished_sweep
    first = pd.read_parquet(sorted((results / "runs").glob("*.parquet"))[0]).iloc[0]

    def old_schema(row):
        del row["seed_index"]
        row["setup_time_s"] = 1000.0
    d = _copy_with(results, tmp_path, old_schema, which=lambda i: i == 0)
    runs = pd.read_parquet(results / "runs")
    others = runs[(runs.inplace == first.inplace) & (runs.status == "ok") & (runs.run_id != first.run_id)]
    paid = [1000.0, *others[others.seed_index == 0].setup_time_s]
    board = report.build([d]).board
    assert board[board.inplace == first.inplace].setup_time_s.iloc[0] == pytest.approx(pd.Series(paid).median())


def test_axis_effects_pair_the_inplace_axis(reported):
    """One speed number, labelled by what it measures, and B named."""
    results, out, _, _ = reported
    md = (out / "leaderboard.md").read_text()
    assert "inplace: B = True vs A = False" in md
    runs = pd.read_parquet(results / "runs")
    ok = runs[runs.status == "ok"]
    hit = ok[ok.reached_target]
    if hit.groupby("inplace").size().reindex([True, False]).fillna(0).min() > 0:
        t = hit.groupby("inplace").time_to_target_s.median()
        ratio, metric = t[False] / t[True], "time to target"
    else:
        t = ok.groupby("inplace").train_images_per_s.median()
        ratio, metric = t[True] / t[False], "throughput"
    word = "faster" if ratio >= 1 else "slower"
    shown = ratio if ratio >= 1 else 1 / ratio
    assert f"inplace: B = True vs A = False: B {shown:.2f}x {word} by {metric}" in md


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
    assert report.price_for("NVIDIA H200", prices) == prices["H200"] != prices["H100"]


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
    assert "&lt;b&gt;bold&lt;/b&gt;&lt;script&gt;" in page and "<script>document.title" not in page
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
    chromium(f"--screenshot={shot}", "--window-size=1400,4000", "--hide-scrollbars", url, tmp=tmp_path / "u1")
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[0] == 4000 and img.shape[1] == 1400
    # the plots' coloured lines, markers and bars: text and tables are grey on white
    coloured = ((img.max(-1) - img.min(-1)) > 0.3).sum()
    assert coloured > 1500, coloured  # thin vector lines: fewer pixels than the old PNGs, still thousands
    assert len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200
    dom = chromium("--dump-dom", url, tmp=tmp_path / "u2").stdout
    assert "&lt;b&gt;bold&lt;/b&gt;&lt;script&gt;document.title='owned'&lt;/script&gt;" in dom
    assert "<b>bold</b>" not in dom and "<title>CIFAR-10 time-to-accuracy leaderboard</title>" in dom


PROBE = """<script>
var t = document.querySelector('table'), heads = Array.from(t.tHead.rows[0].cells);
var i = heads.findIndex(function (h) { return h.textContent === 'time s'; });
heads[i].click(); heads[i].click();  // twice: descending
var col = Array.from(t.tBodies[0].rows).map(function (r) { return parseFloat(r.cells[i].textContent); });
document.body.setAttribute('data-probe', JSON.stringify({first: t.id, width: document.documentElement.scrollWidth,
  inner: window.innerWidth, col: col, title: document.title}));
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("width", [1280, 1920])
def test_page_main_table_first_fits_and_sorts(with_markup, tmp_path, width):
    """In a real browser: the ranked table is the page's first, the page is no wider than the
    window, and clicking a header sorts the rows."""
    import html as htmlmod
    import re
    _, out = with_markup
    probe = tmp_path / "probe.html"
    probe.write_text((out / "index.html").read_text().replace("</body>", PROBE))
    dom = chromium("--dump-dom", f"--window-size={width},900", "--hide-scrollbars", probe.resolve().as_uri(),
                   tmp=tmp_path / "u").stdout
    got = json.loads(htmlmod.unescape(re.search(r'data-probe="([^"]*)"', dom).group(1)))
    assert got["first"] == "t-leader-0" and got["inner"] == width
    assert got["width"] <= width, got
    assert len(got["col"]) >= 2 and got["col"] == sorted(got["col"], reverse=True)
    assert got["title"] == "CIFAR-10 time-to-accuracy leaderboard"  # the injected markup never ran


def test_cost_and_inference_boards(finished_sweep, small_data, tmp_path):
    _, results, _, _ = finished_sweep
    d = tmp_path / "results"
    shutil.copytree(results, d)
    from .conftest import TINY
    bench("run", *TINY, "--target", "0.01", "--data", small_data, "--results", d, "--save", tmp_path / "m.pt",
          check=0)
    bench("infer", "--checkpoint", tmp_path / "m.pt", "--data", small_data, "--results", d, "--limit", "20",
          check=0)
    device = pd.read_parquet(d / "runs").device_name.iloc[0]  # whatever CPU this machine has
    (tmp_path / "prices.json").write_text(json.dumps({device: 0.5}))
    bench("report", d, "--out", tmp_path / "out", "--prices", tmp_path / "prices.json", check=0)
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "## By cost" in md, md
    assert "## Inference latency" in md
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
    row["timed_syncs"] = 5  # and host syncs inside the timed steps: a flag on its group
    row.to_parquet(src, index=False)
    bench("report", tmp_path / "results", "--out", tmp_path / "after", check=0)
    md = (tmp_path / "after" / "leaderboard.md").read_text()
    assert "## Compilation on the clock" in md and "up to 3 graph(s)" in md
    assert "host syncs on clock" in md and "host syncs on clock" not in (tmp_path / "before" / "leaderboard.md").read_text()
    assert "Compilation on the clock" in (tmp_path / "after" / "index.html").read_text()


def test_model_labels_keep_short_keywords_and_cut_long_ones():
    from bench.report_fmt import model_label
    assert model_label({"model": "darknet", "model_kwargs": '{"blocks": [1, 2], "width": 0.5}'}) == \
        "darknet(blocks=[1,2],width=0.5)"
    label = model_label({"model": "airbench94", "model_kwargs": '{"port": "' + "a note " * 10 + '"}'})
    assert label.startswith("airbench94(port=anote") and label.endswith("…)") and len(label) < 45


def test_an_accuracy_difference_from_single_runs_says_it_has_no_interval():
    from bench.report_effects import summary_line
    e = {"speed_b_over_a": 1.2, "speed_lo": float("nan"), "speed_hi": float("nan"), "verdict": "untested",
         "speed_metric": "throughput", "acc_diff_b_minus_a": 0.029, "acc_ci95": 0.0, "mem_ratio_b_over_a": 1.7,
         "axis": "precision", "a": "fp16", "b": "fp32", "runs_a": 1, "runs_b": 1, "contended_runs": 0}
    assert summary_line(e) == ("precision: B = fp32 vs A = fp16: B 1.20x faster by throughput: untested, a single "
                               "run on a side; +2.9 pp accuracy (one side has a single run: may be noise), "
                               "1.70x the peak memory")
    e.update(runs_a=2, acc_ci95=0.088, acc_diff_b_minus_a=0.01)
    assert "same accuracy (±8.8 pp; one side has a single run)," in summary_line(e)
    e.update(runs_a=3, runs_b=3, acc_ci95=0.004, acc_diff_b_minus_a=0.029, verdict="noise", speed_lo=0.9, speed_hi=1.5)
    assert "B 1.20x faster by throughput, 95% CI 0.90-1.50x: within noise; +2.9 pp accuracy, 1.70x" in summary_line(e)
    e.update(contended_runs=2)
    assert summary_line(e).endswith("[2 contended run(s): not a finding]")


# --- #18: errors write nothing -----------------------------------------------------------------

def test_an_unknown_entry_group_writes_nothing(reported, tmp_path):
    results = reported[0]
    out = tmp_path / "out"
    p = bench("report", results, "--out", out, "--entry", "nosuchgroup")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "nosuchgroup" in p.stderr
    assert not out.exists() or not any(out.iterdir())


def test_an_empty_results_directory_is_an_error_that_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    p = bench("report", tmp_path / "empty", "--out", out)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "no run results" in p.stderr
    assert "Traceback" not in p.stderr and not out.exists()
    assert bench("report", tmp_path / "empty").returncode == 2


def test_bad_thresholds_are_one_line(reported):
    p = bench("report", reported[0], "--thresholds", "0.9,abc")
    assert p.returncode == 2 and "--thresholds" in p.stderr and len(p.stderr.strip().splitlines()) == 1


# --- #12: time to several accuracies ------------------------------------------------------------

def test_summarize_finds_the_first_epoch_at_or_over_the_target():
    from bench.summary import summarize
    rows = [{"epoch": 3, "elapsed_s": 30.0, "wall_s": 36.0, "test_acc": 0.91},
            {"epoch": 1, "elapsed_s": 10.0, "wall_s": 12.0, "test_acc": 0.50},
            {"epoch": 2, "elapsed_s": 20.0, "wall_s": 24.0, "test_acc": 0.90}]
    s = summarize(rows, 0.90)
    assert {k: s[k] for k in ("reached_target", "epoch_reached", "time_to_target_s", "wall_time_to_target_s",
                              "final", "best")} == {"reached_target": True, "epoch_reached": 2, "time_to_target_s": 20.0,
                                                    "wall_time_to_target_s": 24.0, "final": 0.91, "best": 0.91}
    assert summarize(pd.DataFrame(rows), 0.905)["epoch_reached"] == 3
    miss = summarize(rows, 0.95)
    assert miss["reached_target"] is False and miss["time_to_target_s"] is None and miss["best"] == 0.91
    loss = [dict(r, loss=1 - r["test_acc"]) for r in rows]
    low = summarize(loss, 0.095, quality="loss", higher_is_better=False)
    assert low["epoch_reached"] == 3 and low["best"] == pytest.approx(0.09)
    assert summarize([], 0.9)["reached_target"] is False


def test_thresholds_board_equals_a_recomputation_from_the_epoch_files(finished_sweep, tmp_path):
    _, results, _, _ = finished_sweep
    ep = pd.read_parquet(results / "epochs")
    lo, hi = ep.test_acc.min(), ep.test_acc.max()
    ts = sorted({round(lo + (hi - lo) * f, 3) for f in (0.0, 0.5, 1.0)} | {0.999})
    bench("report", results, "--out", tmp_path, "--thresholds", ",".join(map(str, ts)), check=0)
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    runs = pd.read_parquet(results / "runs")
    for _, b in board.iterrows():
        mine = runs[(runs.inplace == b.inplace) & (runs.status == "ok")]
        for t in ts:
            times = []
            for rid in mine.run_id:
                e = ep[ep.run_id == rid].sort_values("epoch")
                over = e[e.test_acc >= t]
                if len(over):
                    times.append(over.elapsed_s.iloc[0])
            col = f"time_to_{round(t * 100, 4):g}_s"
            if times:
                assert b[col] == pytest.approx(statistics.median(times)), col
            else:
                assert pd.isna(b[col]), col
    assert board["time_to_99.9_s"].isna().all()  # no run of 2 tiny epochs gets there
    assert "Time to several accuracies" in (tmp_path / "index.html").read_text()


# --- #18 item 3: statistics that say when a difference is noise ----------------------------------

def test_a_difference_inside_the_spread_is_noise_and_a_clear_one_is_not():
    from bench.report_stats import compare, median_ci95
    noisy = compare([56.0, 193.0], [60.0, 150.0])
    assert noisy["verdict"] == "noise" and noisy["lo"] < 1 < noisy["hi"]
    clear = compare([10.0, 10.2, 10.1, 9.9], [20.0, 20.4, 19.8, 20.1])
    assert clear["verdict"] == "differs" and clear["ratio"] == pytest.approx(2.0, rel=0.02) and clear["lo"] > 1
    assert compare([10.0], [20.0, 21.0])["verdict"] == "untested"
    lo, hi = median_ci95([5.0, 6.0, 7.0, 8.0, 9.0])
    assert 5.0 <= lo <= 7.0 <= hi <= 9.0


def test_ranked_times_carry_spread_interval_and_n(reported):
    _, out, _, _ = reported
    board = pd.read_csv(out / "leaderboard.csv")
    r = board[board.ranked].iloc[0]
    assert r.min_time_to_target_s <= r.median_time_to_target_s <= r.max_time_to_target_s
    md = (out / "leaderboard.md").read_text()
    assert f"{r.min_time_to_target_s:.2f}–{r.max_time_to_target_s:.2f}" in md and f"{int(r.reached)}/{int(r.runs)}" in md


# --- #13: hardware, code and contention ------------------------------------------------------------

def _copy_with(results, tmp_path, change, which=lambda i: i % 2 == 0):
    d = tmp_path / "results"
    shutil.copytree(results, d)
    for i, f in enumerate(sorted((d / "runs").glob("*.parquet"))):
        if which(i):
            row = pd.read_parquet(f)
            change(row)
            row.to_parquet(f, index=False)
    return d


def test_two_machines_that_differ_only_in_core_count_are_two_hardware_groups(finished_sweep, tmp_path):
    import hashlib
    _, results, _, _ = finished_sweep

    def sixteen_cores(row):  # the fingerprint's own hash over the same fields, with another core count
        row["cpu_count"] = row["torch_threads"] = 16  # all of them used: no thread count in the key
        fp = row.iloc[0]
        hw = "|".join(str(fp[k]) for k in ("device_name", "gpu_count", "cpu_model", "cpu_count", "host_mem_bytes"))
        row["hardware_id"] = hashlib.sha256(hw.encode()).hexdigest()[:12]
    d = _copy_with(results, tmp_path, sixteen_cores, which=lambda i: i < 2)
    before = report.build([results])
    after = report.build([d])
    assert after.board.hardware_key.nunique() == 2 == before.board.hardware_key.nunique() + 1
    assert len(after.board) > len(before.board) and len(after.hw) >= 2
    bench("report", d, "--out", tmp_path / "out", check=0)
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    hw_section = md.split("## Hardware")[1].split("\n## ")[0]
    for key in after.board.hardware_key.unique():
        assert key in hw_section


def test_runs_from_different_code_are_split_and_said_so(finished_sweep, tmp_path):
    _, results, _, _ = finished_sweep

    def new_code(row):
        row["code_hash"] = "c0de0000c0de"
    d = _copy_with(results, tmp_path, new_code)
    rep = report.build([d])
    assert len(rep.board) > len(report.build([results]).board) and rep.splits
    assert "c0de0000c0de" in rep.splits[0]["code_hashes"] and len(set(rep.splits[0]["code_hashes"])) == 2
    bench("report", d, "--out", tmp_path / "out", check=0)
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "ran from different code" in md and "c0de0000c0de" in md
    assert "ran from different code" in bench("report", d, check=0).stdout  # the terminal says so too


def test_same_code_pools_two_codes_into_the_groups_one_code_makes(finished_sweep, tmp_path):
    """--same-code A,B: the user says two commits train alike; their runs group as one code "A+B"."""
    _, results, _, _ = finished_sweep

    def new_code(row):
        row["code_hash"] = "c0de0000c0de"
    d = _copy_with(results, tmp_path, new_code)
    one = report.build([results]).board
    old = one["code_hash"].iloc[0][:8]
    rep = report.build([d], same_code=[f"{old},c0de0000"])
    label = "+".join(sorted([old, "c0de0000"]))
    assert not rep.splits and rep.pooled == [label] and set(rep.board["code_hash"]) == {label}
    assert sorted(rep.board["runs"]) == sorted(one["runs"]) and len(rep.board) == len(one)
    bench("report", d, "--same-code", f"{old},c0de0000", "--out", tmp_path / "out", check=0)
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert f"code {label} pooled as one by `--same-code`" in md and "ran from different code" not in md
    assert "pooled as one" in bench("report", d, "--same-code", f"{old},c0de0000", check=0).stdout


@pytest.mark.parametrize("value, says", [("c0de0000", "two or more code hashes"), ("c0de,ffff0000", "8 or more hex"),
                                         ("deadbeef,c0de0000", "code deadbeef: no run has it"),
                                         ("c0de0000,c0de0000c0de", "named twice")])
def test_same_code_bad_input_says_what_was_wrong(finished_sweep, tmp_path, value, says):
    _, results, _, _ = finished_sweep

    def new_code(row):
        row["code_hash"] = "c0de0000c0de"
    d = _copy_with(results, tmp_path, new_code)
    with pytest.raises(report.BenchError, match=says):
        report.build([d], same_code=[value])


def test_same_code_bad_input_is_one_line_from_the_cli(finished_sweep):
    p = bench("report", finished_sweep[1], "--same-code", "deadbeef,feedf00d", check=2)
    assert p.stderr.count("\n") == 1 and "no run has it" in p.stderr and "Traceback" not in p.stderr


def test_contended_runs_are_marked_and_effects_from_them_are_no_finding(finished_sweep, tmp_path):
    _, results, _, _ = finished_sweep

    def quiet(row):  # this shared machine is often busy: start from runs marked quiet
        row["other_cpu_frac"], row["cpu_steal_frac"] = 0.01, 0.0
    clean = report.build([_copy_with(results, tmp_path / "clean", quiet, which=lambda i: True)])
    assert clean.board.contended_runs.sum() == 0 and not clean.effects.summary.str.contains("contended").any()

    def busy(row):
        quiet(row)
        if row.run_id.iloc[0] == first:
            row["other_cpu_frac"] = 0.4
    first = pd.read_parquet(sorted((results / "runs").glob("*.parquet"))[0]).run_id.iloc[0]
    d = _copy_with(results, tmp_path, busy, which=lambda i: True)
    rep = report.build([d])
    assert rep.board.contended_runs.sum() == 1
    assert rep.effects.contended_runs.sum() == 1 and rep.effects.summary.str.contains("not a finding").all()
    bench("report", d, "--out", tmp_path / "out", check=0)
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "1 contended" in md and "other_cpu_frac" in md  # the flag, and the rule that set it


def test_mfu_is_shown_beside_throughput_and_a_dash_when_absent(finished_sweep, tmp_path):
    _, results, _, _ = finished_sweep

    def with_mfu(row):
        row["mfu"] = 0.25
    d = _copy_with(results, tmp_path, with_mfu, which=lambda i: True)
    board = report.build([d]).board
    assert board.mfu.tolist() == [0.25] * len(board)
    from bench.report_boards import boards
    lead = boards(report.build([d]))[0]
    i = lead.headers.index("MFU")
    assert lead.headers[i - 1] == "img/s" and all(r[i] == "25.0%" for r in lead.rows)
    plain = boards(report.build([results]))[0]
    assert all(r[i] == "–" for r in plain.rows)


def test_sweeps_device_time_section(finished_sweep, tmp_path, monkeypatch):
    """Reads RESULTS/sweeps/*.parquet when bench.results knows that kind (the lead adds it)."""
    from bench import results as res
    _, results, _, _ = finished_sweep
    d = tmp_path / "results"
    shutil.copytree(results, d)
    (d / "sweeps").mkdir(exist_ok=True)  # the sweep itself may have written its row already
    row = {"sweep_run_id": "sw1", "sweep": "tiny", "started_at": pd.Timestamp("2026-11-26T10:00:00Z"),
           "wall_s": 100.0, "runs": 4, "ok_runs": 4, "train_time_s": 60.0, "eval_time_s": 10.0,
           "setup_time_s": 5.0, "efficiency": 0.6}
    pd.DataFrame([row]).to_parquet(d / "sweeps" / "sw1.parquet", index=False)
    if "sweeps" not in res.KINDS:
        monkeypatch.setitem(res.KINDS, "sweeps", [(k, None, "") for k in row])
    rep = report.build([d])
    assert rep.sweeps.set_index("sweep_run_id").other_time_s["sw1"] == pytest.approx(25.0)
    from bench.report_md import render
    md = render(rep)
    assert "## Device time" in md and "| tiny |" in md and "60%" in md and "25.0" in md


# --- #18 item 5: the terminal at 100 columns ------------------------------------------------------

def test_the_committed_cpu_results_are_legible_at_100_columns():
    from pathlib import Path

    from bench.report_fmt import fmt_num, fmt_range
    cpu = Path(__file__).resolve().parent.parent / "results" / "cpu"
    p = bench("report", cpu, env={"COLUMNS": "100"}, check=0)
    lines = p.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    board = report.build([cpu]).board
    ranked = board[board.ranked]
    assert len(ranked) >= 2
    # each ranked row's line, by its configuration cell: a name the terminal wrapped is joined again
    names, first_lines = [], []
    for line in p.stdout.split("Time to several accuracies")[0].splitlines():
        cells = line.split("│")
        if len(cells) > 3 and cells[1].strip():
            names.append(cells[2].strip())
            first_lines.append(line)
        elif len(cells) > 3 and names:
            names[-1] += " " + cells[2].strip()
    for _, r in ranked.iterrows():
        row = [line for name, line in zip(names, first_lines) if name.strip() == r.configuration]
        assert len(row) == 1, (r.configuration, names)
        for cell in (fmt_num(r.median_time_to_target_s, "s2"), f"{int(r.reached)}/{int(r.runs)}",
                     fmt_range(r.min_time_to_target_s, r.max_time_to_target_s), fmt_num(r.mean_final_acc, "acc")):
            assert cell in row[0], (cell, row[0])
        assert "…" not in row[0]
    wide = bench("report", cpu, "--wide", env={"COLUMNS": "250"}, check=0).stdout
    assert "MFU" in wide and "MFU" not in p.stdout


def test_a_target_keeps_its_decimals():
    from bench.report_fmt import fmt_num
    assert fmt_num(0.906, "target") == "90.6%"    # as "pct" it read 91%: not the bar the runs aimed at
    assert fmt_num(0.94, "target") == "94%"
    assert fmt_num(0.8525, "target") == "85.25%"
    assert fmt_num(0.0653, "pct") == "7%"          # MFU and the like stay whole percents


def test_a_board_title_keeps_the_targets_decimals():
    from pathlib import Path
    titles = [b.title for b in report_boards.leaderboards(report.build([Path(__file__).resolve().parent.parent
                                                                       / "results" / "cpu"]))]
    assert any("target 90.66%" in t for t in titles), titles   # fast_muon's CPU runs: 0.9066, not "90.7%"


def test_the_fast_recipes_cpu_target_reads_as_set():
    from pathlib import Path

    from bench import report_md
    # fast's CPU runs are the ones from before the whitening fix, kept apart in superseded/
    md = report_md.render(report.build([Path(__file__).resolve().parent.parent / "results" / "cpu" / "superseded"]))
    fast = [line for line in md.splitlines() if line.startswith("| fastnet") and "| 90.6% |" in line]
    assert fast, "the fast recipe's CPU runs (target 0.906) should show a 90.6% target"


def test_int_settings_read_back_as_float_show_as_declared():
    """A column with nulls from older rows reads back as float: the effects board must still say
    `tta_views: B = 6`, not 6.0, and leave float and bool settings alone."""
    from bench.report_effects import _as_declared
    views = _as_declared("tta_views", pd.Series([float("nan"), 6.0, 2.0], dtype=object)).tolist()
    assert views[1:] == [6, 2] and all(type(v) is int for v in views[1:]) and views[0] != views[0]
    assert [type(v) for v in _as_declared("lr", pd.Series([1.0, 0.4])).tolist()] == [float, float]
    assert _as_declared("inplace", pd.Series([True, False], dtype=object)).tolist() == [True, False]


def test_a_diverged_run_counts_against_its_configuration_and_a_crash_does_not(finished_sweep, tmp_path):
    """Divergence and out-of-memory are the configuration's outcome; a crash or Ctrl-C says nothing of it."""
    _, results, _, _ = finished_sweep
    files = sorted((results / "runs").glob("*.parquet"))
    rows = [pd.read_parquet(f).iloc[0] for f in files]
    ends = {rows[0].run_id: "diverged", next(r.run_id for r in rows if r.inplace != rows[0].inplace): "crashed"}

    def fail(row):
        if row.run_id.iloc[0] in ends:
            row["status"], row["reached_target"], row["time_to_target_s"] = ends[row.run_id.iloc[0]], False, None
    d = _copy_with(results, tmp_path, fail, which=lambda i: True)
    board = report.build([d]).board
    for status in ("diverged", "crashed"):
        b = board[board.inplace == next(r.inplace for r in rows if ends.get(r.run_id) == status)].iloc[0]
        mates = [r for r in rows if r.inplace == b.inplace and r.run_id not in ends]
        reached = sum(bool(r.reached_target) for r in mates)
        attempted = len(mates) + (status == "diverged")
        assert (b.runs, b.failed_runs, b.attempted_runs) == (len(mates), 1, attempted)
        assert b.success_rate == pytest.approx(reached / attempted)
        assert b.ranked == (reached / attempted > 0.5)
        shown = report_boards._runs(b)
        assert shown == f"{reached}/{attempted}" + (" +1✗" if status == "crashed" else "")


def test_a_subset_is_its_own_task_and_its_title_says_so(finished_sweep, tmp_path):
    _, results, _, _ = finished_sweep
    n = int(pd.read_parquet(sorted((results / "runs").glob("*.parquet"))[0]).train_images.iloc[0])

    def half(row):
        row["train_images"] = n // 2
    rep = report.build([_copy_with(results, tmp_path, half)])  # every other run on half the images
    boards = report_boards.leaderboards(rep)
    titles = [b.title for b in boards]
    assert any(f"({n:,} train images)" in t for t in titles) and any(f"({n // 2:,} train images)" in t for t in titles)
    assert rep.board.groupby("task").train_images.nunique().max() == 1  # ranks never mix the two


def test_a_row_on_another_clock_is_flagged(finished_sweep, tmp_path):
    _, results, _, _ = finished_sweep

    def outside(row):
        row["clock"] = "an outside code's own timer around its whole training call"
    rep = report.build([_copy_with(results, tmp_path, outside, which=lambda i: i == 0)])
    flagged = rep.board[rep.board.apply(report_boards.other_clock, axis=1).notna()]
    assert len(flagged) == 1 and "other clock" in report_boards._flags(flagged.iloc[0])
    assert "outside code's own timer" in report_boards._config(flagged.iloc[0]).full
    assert all("other clock" not in report_boards._flags(r) for _, r in rep.board.drop(flagged.index).iterrows())


def test_a_row_without_a_code_hash_reads_unrecorded_not_nan():
    r = {"model": "resnet9", "model_kwargs": "{}", "precision": "bf16", "batch_size": 256, "inplace": True,
         "world_size": 1, "epochs": 2, "compile": False, "clock": None}
    for absent in (float("nan"), None):
        full = report_boards._config(dict(r, code_hash=absent)).full
        assert "code unrecorded" in full and "nan" not in full and "None" not in full


# the commands in reports/README.md
# --same-code: fast's seed 0 (8362e74), seeds 1-2 (b4dbf87) and seed 3 (0c9ab7e); between them only help texts,
# report code and report options changed
COMMITTED_REPORTS = {"cpu": ["results/cpu", "--same-code", "b2c9bab0,55519937,ec41f9ed"],
                     "h200": ["results/h200", "--thresholds", "0.80,0.85,0.90,0.93,0.94"]}


@pytest.mark.parametrize("name", sorted(COMMITTED_REPORTS))
def test_the_committed_reports_are_what_bench_report_makes(name, tmp_path):
    from .conftest import ROOT
    bench("report", *COMMITTED_REPORTS[name], "--out", tmp_path, check=0)  # from the project root
    gan = ("gan.csv", "gan.json") if name == "cpu" else ()  # the CPU results hold GAN runs, the H200's none yet
    assert (tmp_path / "gan.csv").exists() == bool(gan)
    for f in ("leaderboard.md", "leaderboard.csv", "leaderboard.json", *gan):
        assert (tmp_path / f).read_text() == (ROOT / "reports" / name / f).read_text(), \
            f"reports/{name}/{f} is stale: regenerate it as reports/README.md says"


def test_every_machine_is_listed_with_its_software():
    """A figure without its fingerprint is not a result: the page names every machine and its software."""
    from bench import results

    from .conftest import ROOT

    dirs = [ROOT / "results" / "cpu", ROOT / "results" / "h200"]
    runs = results.read(dirs, "runs")
    (board,) = [b for b in report_boards.boards(report.build(dirs)) if b.key == "machines"]
    table = report_boards.frame(board).set_index("hardware id")
    assert set(table.index) == set(runs.hardware_id.dropna()) and table.runs.astype(int).sum() == len(runs)
    for hw, g in runs.groupby("hardware_id"):
        assert table.at[hw, "torch"] == ", ".join(sorted(set(g.torch_version)))
    assert table.at["ca4e7a47648b", "cuDNN"] == "91900" and table.at["ca4e7a47648b", "driver"] == "580.159.04"


def test_a_run_given_twice_is_counted_once():
    """Two results directories that hold the same run (a copy, a directory named twice) must not double
    its weight: the run count, the success rate and the interval are the one run's."""
    from .conftest import ROOT
    one = report.build([ROOT / "results" / "h200"])
    twice = report.build([ROOT / "results" / "h200", ROOT / "results" / "h200"])
    cols = ["group_id", "runs", "reached", "attempted_runs", "ci95_lo_time_to_target_s", "time_to_80_s"]
    cols = [c for c in cols if c in one.board]
    pd.testing.assert_frame_equal(twice.board[cols], one.board[cols])
    assert any("more than one" in w for w in twice.warnings)


def test_groups_that_differ_in_a_setting_the_short_name_leaves_out_read_apart():
    """An ablation's arms (fastnet with whiten off, with dirac off...) share model, precision and batch:
    each row must still say which arm it is, in the Markdown too, where there is no hover."""
    from .conftest import ROOT
    rep = report.build([ROOT / "results" / "cpu" / "superseded"])  # the 2-epoch ablations' arms
    for b in report_boards.boards(rep):
        if {"configuration", "device", "target"} <= set(b.headers):
            t = report_boards.frame(b)[["configuration", "device", "target"]]
            assert not t.duplicated().any(), (b.title, t[t.duplicated(keep=False)])
    names = dict(zip(rep.board.group_id, rep.board.configuration))
    # the recipe's 2-epoch cell shares its name with the full-length recipe (another target) too
    assert names["f92ccb145b"] == "fastnet fp32 bs1948 · muon_lr 0"
    assert names["85255c7347"] == "fastnet fp32 bs1948 · epochs 2 · target 90% · code e200bfb1"
    # ...and a one-thread side-by-side run is another machine (report.group_runs), named so
    assert {names["c5902f2680"], names["0fe8d35eb3"]} == {"fastnet fp32 bs1024 · code 907148e7",
                                                          "fastnet fp32 bs1024 · code ec63961f · hardware f10d5c22/1thr"}


def test_one_configuration_on_two_machines_of_one_model_or_at_two_targets_reads_apart():
    """Two EPYC hosts both read 'EPYC CPU 2c', and an ablation's 2-epoch recipe cell is the full recipe's
    namesake at another target: the committed CPU results hold both. Every group's name is its own, and
    the settings that tell namesakes apart are named (the host's hardware key where nothing else does)."""
    from .conftest import ROOT
    rep = report.build([ROOT / "results" / "cpu"])
    assert rep.board.configuration.is_unique, rep.board.configuration[rep.board.configuration.duplicated()]
    fast = rep.board[(rep.board.model == "fastnet") & (rep.board.target == 0.9066)]
    assert fast.hardware_key.nunique() == 2 and all("code " in n for n in fast.configuration)
    recipe = rep.board[(rep.board.model == "fastnet") & (rep.board.epochs == 2)].configuration
    assert any(n.startswith("fastnet fp32 bs1948 · epochs 2 · target 90%") for n in recipe), list(recipe)


def test_namesakes_nothing_recorded_tells_apart_end_with_their_group():
    """Rows from before code_hash existed: a null is no difference, so two groups can agree on every
    setting they recorded. Their names must still differ, and say which group each is."""
    from bench.report_fmt import distinct_names
    row = dict(dataset="cifar10", model="resnet9", model_kwargs="{}", precision="fp32", inplace=True,
               batch_size=256, target=0.94, hardware_key="aaaa", epochs=10)
    board = pd.DataFrame([{**row, "code_hash": None, "group_id": "g1"}, {**row, "code_hash": "c2", "group_id": "g2"},
                          {**row, "epochs": 20, "code_hash": "c3", "group_id": "g3"}])
    names = list(distinct_names(board, ["epochs", "code_hash"]))
    assert names[0].endswith("· group g1") and names[1].endswith("· group g2") and len(set(names)) == 3
    assert names[2].endswith("· epochs 20"), names


def test_a_threshold_first_met_at_a_runs_first_evaluation_reads_as_an_upper_bound():
    """airbench measures accuracy once, at the end: its time to 80% is its whole run, not when it passed
    80%. A cell built on such a time says it is an upper bound (≤); one bounded by an earlier evaluation
    below the threshold does not."""
    from .conftest import ROOT
    rep = report.build([ROOT / "results" / "h200"], thresholds=(0.80, 0.90))
    (b,) = [b for b in report_boards.boards(rep) if b.key == "thresholds"]
    t = report_boards.frame(b).set_index("group")
    assert t.at["d0aa47528a", "80%"].startswith("≤2.33") and t.at["d0aa47528a", "90%"].startswith("≤2.33")
    assert t.at["54ace9dc36", "80%"] == "4.02 (5/5)"  # resnet9 evaluates every epoch
    row = rep.board.set_index("group_id")
    assert row.at["d0aa47528a", "time_to_80_first_eval"] and not row.at["54ace9dc36", "time_to_80_first_eval"]
    assert "≤" in b.note


def test_an_entry_from_a_run_on_another_clock_says_which_clock():
    """A DAWNBench entry is published on its own, away from the page's 'other clock' flag: airbench's
    entry must carry airbench's clock, not this harness's."""
    from bench import report_entry

    from .conftest import ROOT
    rep = report.build([ROOT / "results" / "h200"])
    air = json.loads(report_entry.dawnbench_entry(rep.runs, rep.epochs, rep.board, "d0aa47528a", "a")
                     ["dawnbench_d0aa47528a.json"])
    assert air["misc"]["clock"].startswith("airbench train94") and "measured once, at the end" in air["misc"]["clock"]
    own = json.loads(report_entry.dawnbench_entry(rep.runs, rep.epochs, rep.board, "54ace9dc36", "a")
                     ["dawnbench_54ace9dc36.json"])
    assert own["misc"]["clock"] == "training time, evaluation excluded"


def test_an_entry_publishes_no_time_under_the_boards_median_and_says_what_it_is():
    """DAWNBench reads an entry's time from its TSV, the representative run's epochs: with an even run
    count that run is the slower middle one, never a time under the leaderboard's median. Read on its
    own, the entry names its configuration, group and machine key (a one-thread CPU run says so)."""
    from bench import report_entry

    from .conftest import ROOT
    for results in ("h200", "cpu"):
        rep = report.build([ROOT / "results" / results])
        runs = rep.runs.set_index("run_id")
        even = rep.board[(rep.board.reached >= 2) & (rep.board.reached % 2 == 0)]
        thr = rep.board[rep.board.hardware_key.str.endswith("thr") & rep.board.runs.gt(0)]
        assert len(even) + len(thr) > 0
        for _, b in pd.concat([even, thr]).iterrows():
            misc = json.loads(report_entry.dawnbench_entry(rep.runs, rep.epochs, rep.board, b.group_id, "a")
                              [f"dawnbench_{b.group_id}.json"])["misc"]
            assert (misc["groupId"], misc["configuration"], misc["hardwareKey"]) == \
                (b.group_id, b.configuration, b.hardware_key)
            if b.reached >= 2:
                assert runs.loc[misc["representativeRun"], "time_to_target_s"] >= misc["medianTimeToTargetSeconds"]
            if b.hardware_key.endswith("/1thr"):
                assert misc["torchThreads"] == 1 and misc["cpuCores"] == 2


def test_a_plot_that_leaves_configurations_out_says_so():
    """The page draws at most 10 curves; a reader of the 'every configuration' plot must not take the
    missing ones for configurations without epochs."""
    import base64

    from bench import report_plots

    from .conftest import ROOT
    rep = report.build([ROOT / "results" / "cpu", ROOT / "results" / "cpu" / "superseded"])  # over 10 configurations
    assert len(rep.board) > 10
    svg = base64.b64decode(report_plots.plot_curves(rep.runs, rep.epochs, rep.board).split(",", 1)[1]).decode()
    assert f"first 10 of {len(rep.board)} configurations" in svg
    few = base64.b64decode(report_plots.plot_curves(rep.runs, rep.epochs, rep.board.head(3)).split(",", 1)[1]).decode()
    assert "first" not in few


def test_a_timed_out_run_is_a_cross_and_the_legend_names_timeouts(tmp_path):
    """A timeout lands in +N✗ with crashes and interrupts; the legend under the table must say so."""
    from .conftest import ROOT
    d = tmp_path / "h200"
    shutil.copytree(ROOT / "results" / "h200", d)
    f = sorted((d / "runs").glob("resnet9*.parquet"))[0]
    row = pd.read_parquet(f)
    row["status"], row["reached_target"], row["time_to_target_s"] = "timeout", False, None
    row.to_parquet(f, index=False)
    rep = report.build([d])
    b = rep.board[rep.board.model == "resnet9"].iloc[0]
    assert report_boards._runs(b) == "4/4 +1✗"
    for board in report_boards.boards(rep):
        if board.key in ("leader-0", "unranked"):
            assert "timed out" in board.note
    assert "timed out" in report_boards.RANK_RULE


def test_an_effect_with_no_finished_run_on_a_side_does_not_claim_one_run(tmp_path):
    """One arm of a pair ran out of memory: the pair has nothing to compare, and says that, not '1 run'."""
    from .conftest import ROOT
    d = tmp_path / "h200"
    shutil.copytree(ROOT / "results" / "h200", d)
    rep0 = report.build([d])
    gone = rep0.runs[rep0.runs.group_id == "5f9e7ed064"].run_id.iloc[0]
    f = d / "runs" / f"{gone}.parquet"
    row = pd.read_parquet(f)
    row["status"] = "oom"
    row.to_parquet(f, index=False)
    rep = report.build([d])
    (b,) = [b for b in report_boards.boards(rep) if b.key == "effects"]
    t = report_boards.frame(b)
    hit = t[t["runs A+B"].isin(["1+0", "0+1"])]
    assert len(hit) == 2 and (hit["verdict"] == "no finished run on a side").all()
    assert all("no finished run on a side" in s for s in rep.effects[rep.effects.verdict == "empty"]["summary"])


PROBE_BOUND = """<script>
var t = document.getElementById('t-thresholds'), heads = Array.from(t.tHead.rows[0].cells), out = [];
var h = heads.find(function (h) { return h.textContent === '80%'; });
[0, 1].forEach(function () { h.click(); out.push(Array.from(t.tBodies[0].rows).map(function (r) {
  return r.cells[r.cells.length - 1].textContent; })); });  // ascending, then descending
document.body.setAttribute('data-probe', JSON.stringify(out));
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_table_below_the_first_sorts_and_an_upper_bound_sorts_by_its_number(tmp_path):
    """Every table sorts by its own clicked column (not the first table's only), and '≤2.33 (20/20)'
    sorts as 2.33: before 4.02 ascending, after it descending, never as text after every number."""
    import html as htmlmod
    import re

    from .conftest import ROOT
    probe = tmp_path / "probe.html"
    probe.write_text((ROOT / "reports" / "h200" / "index.html").read_text().replace("</body>", PROBE_BOUND))
    dom = chromium("--dump-dom", probe.resolve().as_uri(), tmp=tmp_path / "u").stdout
    up, down = json.loads(htmlmod.unescape(re.search(r'data-probe="([^"]*)"', dom).group(1)))
    assert up[:2] == ["d0aa47528a", "54ace9dc36"] and down[:2] == ["54ace9dc36", "d0aa47528a"], (up, down)


def test_the_effects_plot_draws_no_interval_where_there_is_none(monkeypatch):
    """A pair with a single run on a side has no interval; a zero-width whisker would read as a very
    tight one. Only pairs with an interval get whiskers."""
    from bench import report_plots

    from .conftest import ROOT
    rep = report.build([ROOT / "results" / "cpu"])
    monkeypatch.setattr(report_plots, "_svg", lambda fig: fig)
    ax = report_plots.plot_effects(rep.effects).axes[0]
    with_interval = int(rep.effects.speed_lo.notna().sum())
    assert 0 < with_interval < len(rep.effects)
    segments = sum(len(c.get_segments()) for c in ax.collections)
    caps = sum(len(line.get_xdata()) for line in ax.lines if line.get_marker() == "|")
    assert segments == with_interval and caps == 2 * with_interval
