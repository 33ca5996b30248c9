"""Proof that the reliability tests can fail: each mutation removes one protection from a copy of
the project, and the tests that guard it must then fail. Not collected by pytest (slow: ~10 min).

    python tests/mutations.py            # all
    python tests/mutations.py flock      # the ones whose name contains "flock"
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (name, file, text, replacement, tests that must fail)
MUTATIONS = [
    ("Muon holds each filter's norm", "bench/fast.py", "new_p = p * (p.shape[0] ** 0.5 / p.norm())",
     "new_p = p.clone()", "muon_steps_along"),
    ("the lesson's BatchNorm init", "models/darknet.py", "        nn.init.uniform_(bn.weight)", "        pass",
     "lessons_init_is_its_pytorchs"),
    ("a keyword added later keeps old keys", "models/registry.py",
     "    if is_user_spec(name) or not _ADDED.get(name):", "    if True:", "old_keys_hold"),
    ("lazy modules get their shapes", "models/registry.py", "        materialize(model)", "        pass",
     "lazy_modules"),
    ("num_classes through **kwargs", "models/registry.py", 'honours["num_classes"] or var_kw',
     'honours["num_classes"]', "num_classes_through"),
    ("atomic write", "bench/results.py",
     '''    tmp = d / f".{path.name}.{os.getpid()}.tmp"
    pq.write_table(_table(rows, KINDS[kind]), tmp)''', '''    tmp = path
    pq.write_table(_table(rows, KINDS[kind]), tmp)''', "killed_midway"),
    ("a requeue retries only interrupted cells", "bench/sweep.py", 'set(statuses) == {"interrupted"}',
     '"interrupted" in statuses', "retry_interrupted"),
    ("a crashed cell's line names the exception", "bench/sweep.py", 'return (named or lines or ["-"])[-1][:160]',
     'return (lines or ["-"])[0][:160]', "crashed_cell_says_why or reason_is"),
    ("a run recorded from outside ends with why", "bench/isolate.py", '"\\n".join([*tail, why])',
     '"\\n".join([why, *tail])', "sigkill_of_a_run"),
    ("sweep: --stop-after checked before anything", "bench/sweep.py",
     '(("--time-limit", a.time_limit), ("--stop-after", a.stop_after))', '(("--time-limit", a.time_limit),)',
     "bad_seconds"),
    ("sweep: nothing to do names the failed cells", "bench/sweep.py",
     '+ (f" ({failed} failed; --retry-failed runs them again)" if failed else "")', '+ ""', "how_to_retry"),
    ("sweep file: a section that is not a table is refused", "bench/sweep_file.py",
     "if not (isinstance(v, dict) if table else", "if False and (isinstance(v, dict) if table else", "bad_sweep_files"),
    ("sweep file: one that says nothing to run is refused", "bench/sweep_file.py",
     'if not doc.keys() & {"base", "axes", "cells"}:', "if False:", "bad_sweep_files"),
    ("children die with the sweep", "bench/isolate.py", "preexec_fn=_die_with_parent", "preexec_fn=None",
     "sigkill_of_the_sweep_then_resume"),
    ("flock claim", "bench/claims.py", "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)", "pass",
     "two_sweeps or one_holder"),
    ("claim file: atomic create", "bench/claims.py", "os.O_WRONLY | os.O_CREAT | os.O_EXCL", "os.O_WRONLY | os.O_CREAT",
     "one_holder"),
    ("claim file: dead holder is stale", "bench/claims.py",
     'if _start_time(info.get("pid")) != info.get("start"):', "if False:", "dead_holder"),
    ("claim file: heartbeat age", "bench/claims.py", "    return age > float(", "    return False and age > float(",
     "heartbeat_stops"),
    ("a sweep's SIGTERM takes Ctrl-C's path", "bench/sweep.py", "prev = signal.signal(signal.SIGTERM, _on_sigterm)",
     "prev = signal.getsignal(signal.SIGTERM)", "cancelled_task or keeps_its_account"),
    ("an interrupted sweep writes its account", "bench/sweep.py",
     "        try:\n            account.write(results_dir, todo[0].cfg)", "        try:\n            pass",
     "keeps_its_account"),
    ("the cut-short cell's runs count in the account", "bench/sweep.py",
     "account.add(_recorded(results_dir, run_ids), 1)", "pass", "keeps_its_account"),
    ("SIGTERM handler", "bench/runner.py", "signal.signal(signal.SIGTERM, self._on_stop)",
     "signal.signal(signal.SIGTERM, signal.SIG_DFL)", "sigterm_mid_run"),
    ("SIGTERM held while recording", "bench/runner.py",
     "            self.held_stops = [] if self.held_stops is None else self.held_stops\n            if watchdog:",
     "            if watchdog:", "recorded_still_records"),
    ("a stop before the row exists is held", "bench/runner.py", "        self.held_stops.append(stop)",
     "        raise stop", "row_is_built"),
    ("a held stop ends the next run", "bench/runner.py", "                raise held[0]", "                pass",
     "row_is_built or recorded_still_records"),
    ("warm-up steps (compile off the clock)", "bench/runner.py", "            wl.warmup(cfg.warmup_steps)",
     "            pass", "compilation_stays"),
    ("timed compile counter", "bench/meters.py", "        self.total += new", "        self.total += 0",
     "compilation_stays"),
    ("oom classification", "bench/runner.py", 'return "oom", text', 'return "crashed", text', "oom_is_recorded"),
    ("divergence check", "bench/runner.py", "if n_bad and (cfg.precision", "if False and (cfg.precision",
     "nan_loss"),
    ("time-limit watchdog", "bench/runner.py", "        if not self.cfg.time_limit_s:\n            return None",
     "        return None", "hang_is_recorded"),
    ("sweep records killed runs", "bench/isolate.py", "            results.write(results_dir, \"runs\", run_id, [out[run_id]])",
     "            pass", "sigkill_of_a_run"),
    ("safe file names", "bench/results.py", 'name = re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).lstrip("._")',
     "name = str(name)", "names_cannot_leave"),
    ("HTML escaping", "bench/report_html.py", 'return html.escape("" if s is None else str(s), quote=True)',
     'return "" if s is None else str(s)', "escaped or renders"),
    ("report: nothing to report is an error", "bench/report.py", "    if runs.empty:\n        raise BenchError",
     "    if False:\n        raise BenchError", "empty_results_directory"),
    ("report: noise verdict", "bench/report_stats.py", 'out["verdict"] = "noise" if out["lo"] <= 1 <= out["hi"] else "differs"',
     'out["verdict"] = "differs"', "inside_the_spread_is_noise"),
    ("report: contention flag", "bench/report_effects.py", "CONTENDED_OTHER_CPU = 0.10", "CONTENDED_OTHER_CPU = 1.0",
     "contended_runs_are_marked"),
    ("report: hardware_id groups machines", "bench/report.py", "[h if isinstance(h, str) and h else f for",
     "[f for", "differ_only_in_core_count"),
    ("report: code_hash splits groups", "bench/report.py",
     'runs[CONFIG_COLUMNS + ["hardware_key", "code_hash"]]', 'runs[CONFIG_COLUMNS + ["hardware_key"]]',
     "different_code_are_split"),
    ("report: thresholds from the epoch files", "bench/summary.py",
     "rows = [[rid] + list(time_to_thresholds(ep, thresholds, quality).values())",
     "rows = [[rid] + [None] * len(thresholds)", "thresholds_board_equals"),
    ("weights_only", "bench/infer.py", "weights_only=True", "weights_only=False", "refuse_code"),
    ("cache checksum", "bench/data.py", 'if _file_checksum(npz) != meta.get("sha256"):', "if False:",
     "corrupt_cache"),
    ("temporary cleanup", "bench/sweep.py", "for removed in results.clean_temporaries(results_dir):",
     "for removed in []:", "stale_temporaries"),
    ("readers skip bad files", "bench/results.py",
     "            except Exception as e:\n                warn(f\"warning: skipped {p}: not a readable",
     "            except ZeroDivisionError as e:\n                warn(f\"warning: skipped {p}: not a readable",
     "readers_survive"),
    ("one-line errors", "bench/cli.py", "    except BenchError as e:", "    except ZeroDivisionError as e:",
     "no_traceback"),
    ("class check", "bench/data.py", "        if missing:\n", "        if False:\n", "missing_class"),
    ("verify: time to target <= wall", "bench/verify.py", "if ttt is not None and wall is not None and ttt > wall + EPS",
     "if False", "inconsistency_is_named"),
    ("every batch of a chunk", "bench/loader.py", "for b in range(len(idx) // lb):",
     "for b in range(min(1, len(idx) // lb)):", "several_batches_at_once"),
    ("channels_last after cutout", "bench/loader.py",
     "return x.contiguous(memory_format=self.memory_format)  # masked_fill", "return x  # masked_fill",
     "several_batches_at_once"),
    ("a broken probe is an error", "bench/maxbatch.py",
     '    raise BenchError(f"the probe at batch {batch} failed', '    return False, None, (f"the probe at batch {batch} failed',
     "other_reason"),
    ("a user model's source hash in the key", "bench/config.py", "        d.update(models.identity(self.model))",
     "        pass", "never_share_a_key"),
    ("a user model's output shape", "bench/config.py", "    if not models.is_user_spec(cfg.model):\n        return",
     "    return", "one_clear_line"),
    # cli: issue 18
    ("writability checked before a run", "bench/cli.py", "    check_writable(a.results, save=a.save)",
     "    pass", "results_that_is_a_file or read_only_results"),
    ("writability probed, not assumed", "bench/paths.py", "        _probe(where, flag, d)", "        pass",
     "results_under_proc or read_only_results"),
    ("torch's warnings silenced on a refused checkpoint", "bench/infer.py", '            warnings.simplefilter("ignore")',
     "            pass", "refuses_what_is_not"),
    # fast: issue #17's protections (tests/test_fast.py)
    ("fast: tta-views check", "bench/fast.py", "if cfg.tta_views is not None and cfg.tta_views not in TTA_VIEWS:",
     "if False:", "bad_fast_settings"),
    ("old config keys kept (new fields at their defaults)", "bench/config.py", "            if d.get(k) == v:\n                d.pop(k)",
     "            pass", "keep_old_config_keys"),
    ("fast: flips alternate", "bench/loader.py", "flip = (self.alt_base ^ (epoch % 2 == 0)) & self.flip",
     "flip = self.alt_base & self.flip", "alternating_flip"),
    ("fast: whitening bias centres", "bench/fast.py", "conv.bias.copy_((-w @ mu).float())", "pass",
     "whitens_real_patches"),
    # fp16 without a host sync (tests/test_precision.py)
    ("fp16: fused SGD takes GradScaler's overflow flag on the device", "bench/precision.py",
     "    opt = torch.optim.SGD(params, fused=fused or None, **kw)", "    opt = torch.optim.SGD(params, **kw)",
     "never_reads_the_device or never_reads_the_host"),
    ("fp16: fused SGD's momentum starts at zero", "bench/precision.py",
     'opt.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)', "pass",
     "very_first_step"),
    ("fp16: Muon takes the loss scale itself", "bench/fast.py",
     "    _step_supports_amp_scaling = True\n\n    def __init__(self, params, lr, momentum",
     "    _step_supports_amp_scaling = False\n\n    def __init__(self, params, lr, momentum", "never_reads_the_device"),
    ("fp16: Muon skips an overflowed step", "bench/fast.py", "new_buf, new_p = torch.where(skip, buf, new_buf), torch.where(skip, p, new_p)", "pass",
     "overflowed_step_moves_nothing"),
    ("fp16: an overflowed RMSprop step keeps its average", "bench/precision.py", "s.copy_(torch.where(skip, o, s))",
     "pass", "overflowed_step_moves_nothing"),
    ("fp16: DCGAN's Adam is fused", "bench/workloads/gan.py", "fused=self.cfg.fused_on(self.device) or None)",
     "fused=None)", "never_reads_the_device"),
    # GANs (issue #15)
    ("judge cache checksum", "bench/judge.py", 'if _file_sha256(pt) != meta.get("sha256"):', "if False:",
     "changed_file_is_not_trusted"),
    ("run files readers see (no leading _)", "bench/results.py", '.lstrip("._")', '.lstrip(".")', "underscore"),
    ("bench.run checks --results first", "bench/api.py", "    check_writable(results, save=save)", "    pass",
     "refused_before_training"),
    ("the settings' ranges", "bench/config.py", "        if v is not None and not holds(v):", "        if False:",
     "bad_run_input"),
    ("a GAN model under classify", "bench/config.py", 'hasattr(net, "generator") and hasattr(net, "critic")',
     "False", "bad_run_input"),
    ("a second Ctrl-C ends the wait for a stopping child", "bench/isolate.py",
     "        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting\n            proc.kill()",
     "        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting\n            _stop(proc)", "before_its_first_row"),
    ("the judge kept with the code is used", "bench/judge.py", "for where in (COMMITTED, root):",
     "for where in (root,):", "kept_with_the_code"),
    ("WGAN weight clipping", "bench/workloads/gan.py", "torch._foreach_clamp_max_(self.critic_params, CLIP)", "pass",
     "trains_an_epoch"),
    ("a distance target", "bench/config.py", "    if workload.get(cfg.workload).higher_is_better:",
     "    if True:", "wgan_writes_rows"),
    ("command modules never import each other", "bench/maxbatch.py", "from .cli_config import config_from_args",
     "from .cli import config_from_args", "no_import_cycles"),
    ("verify knows the registry's columns", "bench/verify.py", "            unknown = sorted(set(df.columns) - set(columns.names(kind)))",
     "            unknown = []", "each_inconsistency_is_named"),
    ("seeds reset between runs", "bench/workloads/classify.py", "        self.model.load_state_dict(self._fresh_model(seed).state_dict())",
     "        pass", "separate_processes"),
    ("an interrupted epoch's steps are counted", "bench/runner.py",
     '                rec["train_time"] += time.perf_counter() - rec["t_epoch0"]', "                pass", "ctrl_c"),
    ("Ctrl-C exits 130", "bench/cli.py", "        return 130\n    return 1", "        return 1\n    return 1", "ctrl_c"),
    ("no abbreviated flags", "bench/cli.py", 'kw.setdefault("allow_abbrev", False)', 'kw.setdefault("allow_abbrev", True)',
     "abbreviations"),
    ("the sweep's lines are cropped", "bench/ui.py", 'self.child = Text("", no_wrap=True, overflow="ellipsis", style="dim")',
     'self.child = Text("", style="dim")', "fixed_layout"),
    ("seeds after a crash keep their run ids", "bench/cli.py", "[ids[s] for s in rest] if ids else None", "None",
     "crashed_seed_leaves_one_row"),
    ("infer refuses an edited model file", "bench/infer.py",
     'if ckpt.get("model_source_hash") and models.resolve(name).source_hash', 'if False and models.resolve(name).source_hash',
     "inferred_from_any_directory"),
    ("a GAN refuses settings it does not use", "bench/config.py", "        if getattr(cfg, name) != value:",
     "        if False:", "gan_does_not_use"),
    ("verify: no negative clock or size", "bench/verify.py", "if _num(low) is not None and low < 0:", "if False:",
     "each_inconsistency_is_named"),
    ("a killed cache fill leaves no temporary", "bench/data.py", "    _remove_orphans(cache)\n", "    pass\n",
     "killed_midway_is_recovered"),
    ("a model refuses keywords out of range", "models/resnet9.py", "    if not width > 0:", "    if False:",
     "bad_run_input"),
    ("an empty shard says so", "bench/sweep.py", "    if not cells:  # more shards", "    if False:  # more shards",
     "shard_with_no_cells"),
    ("a child's summary is said once", "bench/cli.py", "if run_summary(row, path) not in relayed:", "if True:",
     "world_size_two"),
    ("verify: a required value left empty", "bench/verify.py", "            if empty:  # a required value",
     "            if False:  # a required value", "each_inconsistency_is_named"),
    ("maxbatch: a size needs its unit", "bench/maxbatch.py", 'UNITS = {"b": 1,', 'UNITS = {"": 1, "b": 1,', "test_sizes"),
    ("a GAN refuses the one-cycle settings", "bench/workloads/gan.py", '("div", "--div"), ', "",
     "gan_does_not_use"),
    ("a GAN compiles in the run's mode", "bench/workload.py",
     'mode=None if cfg.compile_mode == "default" else cfg.compile_mode)', ")", "compiles_in_the_run"),
    ("torchvision's clock skips the prefetch", "benchmarks/pipeline.py", "skip = 1 + 2 * workers", "skip = 1",
     "torchvision_clock"),
    ("a benchmark JSON records its settings", "benchmarks/common.py", '"settings": dict(vars(args)), ', "",
     "every_setting"),
    ("a seed that sets up again says so", "bench/runner.py",
     "self.setup_index, row[\"seed_index\"] = index, 0", "self.setup_index = 0", "sets_up_again"),
    ("a row from outside keeps its own wall", "bench/isolate.py", 'wall_time_s=float(epochs["wall_s"].max()),',
     "wall_time_s=1e9,", "recorded_from_outside_has_no_wall"),
    ("the board's setup is the seeds that set up", "bench/report.py",
     'paid if c in ("setup_time_s", "warmup_time_s") and len(paid) else ok', "ok", "what_setting_up"),
    ("setup includes the reset after warm-up", "bench/runner.py",
     "time.perf_counter() - (t1 if row[\"seed_index\"] else t_start)",
     "(time.perf_counter() - t1) if row[\"seed_index\"] else row[\"setup_time_s\"]",
     "reset_after_the_warm_up"),
    ("every flag's help says its default", "bench/cli.py",
     "(default: a live bar when stderr is a terminal)", "", "every_option_of_every_command"),
    ("the suite packs its rows when stopped", "benchmarks/gpu_suite.sh", "trap 'stopped TERM 143' TERM", "",
     "stopped_mid_step_packs"),
    ("the suite reruns a cell it cut short", "benchmarks/gpu_suite.sh",
     'bench sweep "$LESSON" --results "$R" --retry-interrupted', 'bench sweep "$LESSON" --results "$R"',
     "stopped_mid_step_packs"),
    ("a closed pipe is no traceback", "bench/cli.py", "    except BrokenPipeError:", "    except ZeroDivisionError:",
     "reader_that_stops_early"),
]


def run(name, path, old, new, tests):
    with tempfile.TemporaryDirectory() as d:
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
        for f in files:
            (Path(d) / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, Path(d) / f)
        target = Path(d) / path
        text = target.read_text()
        assert old in text, f"{name}: the protected code moved; update this mutation"
        target.write_text(text.replace(old, new))
        sel = " or ".join(tests.split(" or "))
        env = dict(os.environ, BENCH_TEST_DATA=os.environ.get(
            "BENCH_TEST_DATA", str(ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz")))
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-k", sel, "-p", "no:cacheprovider"],
                           cwd=d, capture_output=True, text=True, timeout=1800, env=env)
        last = (p.stdout.strip().splitlines() or ["?"])[-1]
        return p.returncode != 0 and "failed" in last, last


def main():
    want = sys.argv[1] if len(sys.argv) > 1 else ""
    bad = 0
    for name, path, old, new, tests in MUTATIONS:
        if want not in name:
            continue
        caught, last = run(name, path, old, new, tests)
        bad += not caught
        print(f"{'caught ' if caught else 'MISSED '} {name:32s} [{tests}] {last}", flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
