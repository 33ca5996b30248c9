"""The report as Markdown (leaderboard.md): every board of report_boards, in order."""
from .report_boards import boards


def md_escape(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", " "))


def md_table(headers, rows):
    lines = ["| " + " | ".join(md_escape(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render(rep):
    n = len(rep.sources)
    parts = ["# CIFAR-10 time-to-accuracy leaderboard", "",
             f"From {n} results director{'y' if n == 1 else 'ies'}: "
             + ", ".join(f"`{md_escape(s)}`" for s in rep.sources) + ".", ""]
    for b in boards(rep):
        parts += [f"## {md_escape(b.title)}", ""]
        if b.note:
            parts += [md_escape(b.note), ""]
        if b.rows:
            parts += [md_table(b.headers, b.rows), ""]
        if b.items:
            parts += [f"- {md_escape(i)}" for i in b.items] + [""]
        if not b.rows and not b.items:
            parts += [md_escape(b.empty), ""]
    return "\n".join(parts)
