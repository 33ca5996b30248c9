"""The report's code identities. Runs are grouped apart by `code_hash` (a hash of bench/ and
models/ as they ran), so a change to any of those files, even a help text, starts new groups. Only
the user can say that two codes train and time alike: `bench report --same-code A,B` pools them,
the pooled code reads "A+B" on every board, and the notes say so."""
import re

from .config import BenchError
from .report_fmt import missing

HEX = re.compile(r"[0-9a-f]{8,}")


def parse_same_code(values):
    """[[prefix, ...], ...] from --same-code values ("A,B[,C]", each 8+ hex digits)."""
    groups = []
    for v in values or []:
        parts = [p.strip().lower() for p in str(v).split(",")]
        if len(parts) < 2 or not all(HEX.fullmatch(p) for p in parts):
            raise BenchError(f"--same-code {v!r}: give two or more code hashes, comma-separated, as the boards "
                             "print them (8 or more hex digits, e.g. --same-code 55519937,b2c9bab0)")
        groups.append(parts)
    return groups


def pool_codes(runs, same_code):
    """(runs with each pooled code_hash replaced by its pool's label, [label, ...])."""
    groups = parse_same_code(same_code)
    if not groups or runs.empty or "code_hash" not in runs:
        return runs, []
    codes = sorted({str(h) for h in runs["code_hash"] if not missing(h)})
    label_of, labels = {}, []
    for parts in groups:
        full = []
        for p in parts:
            hits = [h for h in codes if h.startswith(p)]
            if len(hits) != 1:
                why = "no run has it" if not hits else f"it starts {len(hits)} codes; give more digits"
                raise BenchError(f"--same-code: code {p}: {why} (the codes in these results: "
                                 f"{', '.join(h[:8] for h in codes) or 'none recorded'})")
            if hits[0] in label_of or hits[0] in full:
                raise BenchError(f"--same-code: code {p} is named twice; name each pool's codes once, in one value")
            full.append(hits[0])
        label = "+".join(sorted(h[:8] for h in full))
        label_of.update({h: label for h in full})
        labels.append(label)
    runs = runs.copy()
    runs["code_hash"] = [label_of.get(str(h), h) if not missing(h) else h for h in runs["code_hash"]]
    return runs, labels


def code_splits(board):
    """Configurations on one hardware key whose runs came from more than one code_hash."""
    if board.empty:
        return []
    out = []
    for (cid, hw), g in board.groupby(["config_id", "hardware_key"]):
        if len(g) > 1:
            out.append({"config_id": cid, "hardware_key": hw, "groups": list(g["group_id"]),
                        "code_hashes": ["unrecorded" if missing(h) else str(h) for h in g["code_hash"]],
                        "row": g.iloc[0]})
    return out
