"""`bench report --out` writes its files as one set: all of the new ones, or the old ones untouched."""
import errno
from pathlib import Path

import pytest

from bench import report_cli
from bench.config import BenchError


def test_a_report_replaces_every_file_and_leaves_no_temporary(tmp_path):
    (tmp_path / "index.html").write_text("old page")
    report_cli.write_files(tmp_path, {"leaderboard.md": "new board", "index.html": "new page"})
    assert (tmp_path / "leaderboard.md").read_text() == "new board"
    assert (tmp_path / "index.html").read_text() == "new page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "leaderboard.md"]


def test_a_disk_that_fills_partway_leaves_the_old_report_whole(tmp_path, monkeypatch):
    """The third file fails to write (ENOSPC): the first two must not have replaced theirs, or the page
    and the board on disk would come from two different runs."""
    old = {"leaderboard.md": "old board", "index.html": "old page", "leaderboard.csv": "old csv"}
    for name, text in old.items():
        (tmp_path / name).write_text(text)
    write_text = Path.write_text

    def full_disk(self, text, *a, **k):
        if "leaderboard.csv" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, text, *a, **k)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(BenchError, match="No space left on device.*unchanged"):
        report_cli.write_files(tmp_path, {name: "new" for name in old})
    monkeypatch.undo()
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == old, "old files whole, no temporaries left"
