"""The code's shape: no import cycle among the harness's modules (lazy, in-function imports
included: a command module never imports another), and no module much over 300 lines."""
import ast
from pathlib import Path

from .conftest import ROOT

MAX_LINES = 340  # "about 300": one place that grows past this should be split, not stretched


def modules():
    out = {}
    for p in sorted((ROOT / "bench").rglob("*.py")):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports(name, path, known):
    """Modules of `known` that `name` imports anywhere in its file (top level or inside functions)."""
    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg[:len(pkg) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for a in node.names:
                found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in known else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in known and m != name}


def test_no_import_cycles():
    mods = modules()
    graph = {m: imports(m, p, mods) for m, p in mods.items()}
    assert graph["bench.cli"] >= {"bench.sweep", "bench.report_cli", "bench.maxbatch"}, "the walk finds imports"
    state, cycles = {}, []

    def visit(m, path):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_modules_stay_small():
    big = {str(p.relative_to(ROOT)): n for p in list((ROOT / "bench").rglob("*.py")) + list((ROOT / "models").rglob("*.py"))
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_every_mutation_still_finds_its_code_and_its_tests():
    """tests/mutations.py is slow and run by hand: a protected line that moved, or a test renamed, would
    only show there, as a crash late in a long run. Each mutation's text must be in its file and each of
    its test selectors must name a test."""
    from . import mutations
    names = {n.name for p in (ROOT / "tests").glob("test_*.py") for n in ast.walk(ast.parse(p.read_text()))
             if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    moved = [name for name, path, old, _, _ in mutations.MUTATIONS if old not in (ROOT / path).read_text()]
    # a selector is pytest's -k: "a or b", where "a and x" may narrow to a parameter's id
    unnamed = [(name, sel) for name, _, _, _, tests in mutations.MUTATIONS for sel in tests.split(" or ")
               if not any(sel.split(" and ")[0] in n for n in names)]
    assert not moved, f"mutations whose protected code moved: {moved}"
    assert not unnamed, f"mutations whose tests no test name holds: {unnamed}"
