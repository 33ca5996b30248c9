"""The report as ONE self-contained HTML page: the boards of report_boards as tables (sticky
headers, sortable by a small inline script, long names shortened with the full text on hover) and
SVG plots embedded as data URIs. No network, no external file. Every string that comes from
result files goes through html.escape."""
import html

from .report_boards import boards, tasks
from .report_plots import plot_curves, plot_effects, plot_throughput_memory

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:20px auto;max-width:1880px;color:#222;padding:0 14px}
h2{margin:28px 0 6px}table{border-collapse:collapse;margin:6px 0 18px;font-size:12.5px}
th,td{border:1px solid #d4d4d4;padding:2px 5px;text-align:right;white-space:nowrap}
th{background:#eef0f3;position:sticky;top:0;z-index:1;cursor:pointer;user-select:none;white-space:normal;
vertical-align:bottom}td.f{white-space:normal;min-width:6em}
th.l,td.l{text-align:left}td.w{white-space:normal;overflow-wrap:anywhere;min-width:11em;max-width:22em}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
tbody tr:nth-child(even){background:#fafafa}td[title]{text-decoration:underline dotted #aaa}
img{max-width:100%;border:1px solid #e4e4e4;margin:6px 0;display:block}.note{color:#555;max-width:1100px}
li{max-width:1100px}"""

# Sort a table by a clicked header: numbers by value (the first number in the cell; '≤' marks an upper
# bound, still a number), else text. The column is the header's cellIndex: the forEach index counts every
# header on the page, so it only matched the first table.
SCRIPT = """document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',
function(){var t=th.closest('table'),b=t.tBodies[0],i=th.cellIndex,asc=th.getAttribute('aria-sort')!=='ascending';
t.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort')});
th.setAttribute('aria-sort',asc?'ascending':'descending');
function key(r){var s=r.cells[i].textContent.replace(/[,$%≤]/g,''),m=s.match(/^[-+]?\\d*\\.?\\d+/);
return m?[0,parseFloat(m[0])]:[s==='–'?2:1,s]}
Array.from(b.rows).sort(function(x,y){var a=key(x),c=key(y);if(a[0]!==c[0])return a[0]-c[0];
return (a[1]<c[1]?-1:a[1]>c[1]?1:0)*(asc?1:-1)}).forEach(function(r){b.appendChild(r)})})});"""


def e(s):
    return html.escape("" if s is None else str(s), quote=True)


def _cell(c, cls):
    title = getattr(c, "full", None)
    t = f' title="{e(title)}"' if title and title != str(c) else ""
    return f'<td class="{cls}"{t}>{e(c)}</td>'


def table(board):
    def cls(h):  # names and notes may wrap; numbers never do
        wrap = {"configuration": " w", "context": " w", "B vs A": " w", "flags": " f", "verdict": " f"}.get(h, "")
        return ("l" + wrap) if h in board.left else wrap.strip()
    head = "".join(f'<th class="{cls(h)}" scope="col">{e(h)}</th>' for h in board.headers)
    body = "".join("<tr>" + "".join(_cell(c, cls(h)) for c, h in zip(r, board.headers)) + "</tr>" for r in board.rows)
    return f"<table class='sortable' id='t-{e(board.key)}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _plot(name, rep):
    if name == "curves" and len(rep.epochs) and tasks(rep.board):
        main = tasks(rep.board)[0].sort_values("median_time_to_target_s")  # the main leaderboard's
        return "accuracy against training time", plot_curves(rep.runs, rep.epochs, main)
    if name == "curves-all" and len(rep.epochs) and len(rep.board) > 1:
        return "accuracy against training time, every configuration", plot_curves(rep.runs, rep.epochs, rep.board)
    if name == "effects" and len(rep.effects):
        return "axis effects", plot_effects(rep.effects)
    if name == "throughput" and len(rep.board):
        return "throughput against peak memory", plot_throughput_memory(rep.board)
    return None, None


def page(rep):
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width,initial-scale=1'>"
             f"<title>CIFAR-10 time-to-accuracy leaderboard</title><style>{CSS}</style></head><body>",
             "<h1>CIFAR-10 time-to-accuracy leaderboard</h1>",
             f"<p class='note'>From: {e(', '.join(map(str, rep.sources)))}. Hover a shortened name for the full one; "
             "click a column header to sort. How to read the figures: at the end of the page.</p>"]
    for b in boards(rep):
        parts.append(f"<h2 id='{e(b.key)}'>{e(b.title)}</h2>")
        if b.note:
            parts.append(f"<p class='note'>{e(b.note)}</p>")
        if b.rows:
            parts.append(table(b))
        if b.plot:
            alt, src = _plot(b.plot, rep)
            if src:
                parts.append(f"<img alt='{e(alt)}' src='{src}'>")
        if b.items:
            parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>")
        if not b.rows and not b.items:
            parts.append(f"<p>{e(b.empty)}</p>")
    if rep.gan_runs is not None and not rep.gan_runs.empty:
        from .report_gan import sample_grid_html
        parts.append(sample_grid_html(rep.sources, rep.gan_runs))  # escapes its own strings
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)
