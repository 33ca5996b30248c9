"""The report in the terminal: the boards that have a `narrow` column set, in 100-120 columns
(all columns with --wide), and the notes on the figures (contention, code, compilation). Cells are
rich Text, so no result string is read as markup."""
import os

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .report_boards import RANK_RULE, STATS_RULE, visible


def width(wide):
    """$COLUMNS, else the terminal's width; a pipe gets 110 (250 with --wide) so output is stable."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    return None if Console().is_terminal else (250 if wide else 110)


def render(boards, wide=False, file=None):
    out = Console(file=file, highlight=False, soft_wrap=False, width=width(wide))
    out.print(Text(RANK_RULE + " " + STATS_RULE))
    for b in boards:
        if b.narrow is None and not wide:
            continue
        if b.rows:
            cols = visible(b, wide)
            t = Table(title=Text(b.title), title_justify="left", pad_edge=False, padding=(0, 1))
            for i in cols:
                h = b.headers[i]
                # numbers never wrap or get cut; the names take what is left and wrap at spaces
                t.add_column(Text(h), no_wrap=h not in b.left, overflow="fold",
                             justify="left" if h in b.left else "right")
            for r in b.rows:
                t.add_row(*[Text(str(r[i])) for i in cols])
            out.print(t)
        elif b.empty and b.narrow is not None:
            out.print(Text(f"{b.title}: {b.empty}"))
        if b.key in ("effects", "compile", "notes") and b.items:  # the caveats: a terminal reader needs them too
            if not b.rows:
                out.print(Text(b.title + ":"))
            for item in b.items:
                out.print(Text("  " + item))
