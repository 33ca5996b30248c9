"""`bench report`: build the report (report.py), render it (terminal, or files under --out), write the files.

The files are one set: a leaderboard.md from this run beside an index.html from the last one would
disagree. So every file is rendered first, then written beside its target under a temporary name,
and only when all of them are on disk do they replace the old ones (renames in one directory, which
need no space and do not fail halfway for a full disk).
"""
import os
from pathlib import Path

from .config import BenchError
from .report import DEFAULT_THRESHOLDS, build, parse_thresholds
from .ui import say


def render_files(rep, entry=None, author=None):
    """{file name: text} for --out: the leaderboard, the page, the GAN board and a DAWNBench entry."""
    from . import report_entry, report_gan, report_html, report_md
    files = {"leaderboard.md": report_md.render(rep), "index.html": report_html.page(rep),
             "leaderboard.csv": rep.board.to_csv(index=False),
             "leaderboard.json": rep.board.to_json(orient="records", indent=1, default_handler=str)}
    gan = report_gan.summarise(rep.gan_runs)  # the GANs' board: its own columns (FD, generator steps/s)
    if not gan.empty:
        files.update({"gan.csv": gan.to_csv(index=False), "gan.json": gan.to_json(orient="records", indent=1)})
    if entry:
        files.update(report_entry.dawnbench_entry(rep.runs, rep.epochs, rep.board, entry, author))
    return files


def write_files(out, files):
    """Write all of `files` into `out` or none of them (the old set stays whole on any error)."""
    out = Path(out)
    tmps = {name: out / f".{name}.{os.getpid()}.tmp" for name in files}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            tmps[name].write_text(text)
    except OSError as e:
        for t in tmps.values():
            t.unlink(missing_ok=True)
        raise BenchError(f"cannot write the report to {out}: {e.strerror or e}; give --out a writable directory "
                         "with free space (the files there are unchanged)") from None
    for name, t in tmps.items():
        os.replace(t, out / name)


def main(a):
    from . import report_boards, report_term
    thresholds = parse_thresholds(a.thresholds) if getattr(a, "thresholds", None) else DEFAULT_THRESHOLDS
    rep = build(a.results, a.prices, thresholds, getattr(a, "same_code", None))
    if a.entry and (rep.board.empty or a.entry not in set(rep.board["group_id"])):
        raise BenchError(f"no group {a.entry!r} in these results; the group column of the leaderboard lists them")
    if not a.out:
        report_term.render(report_boards.boards(rep), wide=getattr(a, "wide", False))
        return 0
    files = render_files(rep, a.entry, a.author)
    write_files(a.out, files)
    say(f"wrote {', '.join(files)} to {a.out}")
    return 0
