"""Bad input: one clear line on stderr, exit 2, no traceback, nothing written."""
import subprocess

import pytest

from bench.cli import main

from .conftest import ROOT, TINY, bench

CASES = [
    (["--model", "vgg"], "unknown model 'vgg'"),
    (["--model", "darknet", "--model-kwargs", "depth=3"], "no keyword 'depth'"),
    (["--model-kwargs", "nonsense"], "KEY=VALUE"),
    (["--model", "resnet9", "--model-kwargs", "width=wide"], "keyword 'width' takes a number"),
    (["--model", "darknet", "--model-kwargs", "blocks=1,x"], "keyword 'blocks' takes a list of integers"),
    (["--model", "wrn", "--model-kwargs", "depth=22.5"], "keyword 'depth' takes an integer"),
    (["--batch-size", "0"], "batch-size must be a positive integer"),
    (["--batch-size", "-8"], "batch-size must be a positive integer"),
    (["--world-size", "0"], "world-size must be a positive integer"),
    (["--world-size", "-1"], "world-size must be a positive integer"),
    (["--target", "1.5"], "target must be an accuracy in (0, 1]"),
    (["--target", "0"], "target must be an accuracy in (0, 1]"),
    (["--precision", "fp64"], "unknown precision 'fp64'"),
    (["--precision", "fp16", "--device", "cpu"], "fp16 needs a CUDA GPU"),
    (["--device", "cuda"], "no CUDA GPU is visible"),
    (["--device", "tpu"], "invalid choice: 'tpu'"),
    (["--batch-size", "lots"], "invalid int value: 'lots'"),
    (["--data", "/nonexistent/cifar.tar.xz", "--device", "cpu"], "data not found: /nonexistent/cifar.tar.xz"),
    (["--recipe", "fast"], "invalid choice: 'fast'"),
    (["--epochs", "0"], "epochs must be a positive integer"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[c[1][:30] for c in CASES])
def test_bad_run_input(args, message, tmp_path, capsys):
    results = tmp_path / "results"
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["run", "--results", str(results), *args]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not results.exists()


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    for args, message in [(["--model", "vgg"], "unknown model"), (["--target", "1.5"], "target must be"),
                          (["--data", str(tmp_path / "missing"), "--device", "cpu"], "data not found")]:
        p = bench("run", "--results", tmp_path / "r", *args)
        assert p.returncode == 2
        assert "Traceback" not in p.stderr and message in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = bench("infer", "--checkpoint", tmp_path / "none.pt", "--results", tmp_path / "r")
    assert p.returncode == 2 and "checkpoint not found" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "r").exists()


def test_limit_train_below_one_batch(tmp_path, capsys, small_data):
    rc = main(["run", *TINY, "--limit-train", "10", "--data", str(small_data), "--results", str(tmp_path / "r")])
    assert rc == 2 and "smaller than one batch" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_help_explains_every_command():
    for cmd in ("run", "sweep", "maxbatch", "report", "verify", "infer", "env"):
        p = bench(cmd, "--help")
        assert p.returncode == 0 and "usage: bench" in p.stdout


def test_env_prints_the_fingerprint():
    import json
    p = bench("env", check=0)
    fp = json.loads(p.stdout)
    for k in ("device_name", "cpu_model", "torch_version", "hostname", "git_commit", "hardware_id"):
        assert k in fp
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    if head:  # a git checkout (CI's is one)
        assert fp["git_commit"] == head and fp["git_dirty"] in (True, False)
    # a copy whose git metadata is not its own (the H200 runs read the session's first commit) is told
    fp = json.loads(bench("env", env={"BENCH_GIT_COMMIT": "7f473fd"}, check=0).stdout)
    assert fp["git_commit"] == "7f473fd" and fp["git_dirty"] is None


def test_broken_archive_is_one_line_and_nothing_written(real_members, tmp_path):
    from .conftest import write_archive
    bad = write_archive(tmp_path / "bad.tar", real_members, skip={("test", "horse")})
    p = bench("run", *TINY, "--data", bad, "--results", tmp_path / "r")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [f"bench run: error: {bad}: test/ is missing classes: horse"]
    assert not (tmp_path / "r").exists()
