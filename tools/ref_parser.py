"""A reference parser of PaliGemma detect/segment output, mirroring the
semantics of grounding/parse.go (ParseDetections), for the parser goldens.

Lexing: `<locNNNN>` (4 digits) and `<segNNN>` (3 digits) are tokens, `;`
separates objects, everything else is label text. Grouping: a separator,
or a location token arriving after a full box, after codes or after label
text, closes the current object. A closed object is kept when it has exactly
4 location tokens, 0 or 16 segmentation tokens, a non-empty label (special
tokens <eos> <pad> <bos> <end_of_turn> removed, whitespace collapsed), bins
in 0..1023, codes in 0..127 and y0 <= y1, x0 <= x1; otherwise it is reported
as skipped with the first reason that applies (same wording as Go). Bins
decode as v / 1023.
"""

from __future__ import annotations

SPECIALS = ("<eos>", "<pad>", "<bos>", "<end_of_turn>")


def _lex_token(s: str, i: int):
    for prefix, digits, kind in (("<loc", 4, "loc"), ("<seg", 3, "seg")):
        n = len(prefix) + digits + 1
        if len(s) - i < n or not s.startswith(prefix, i) or s[i + n - 1] != ">":
            continue
        body = s[i + len(prefix):i + n - 1]
        if not all("0" <= c <= "9" for c in body):
            return None
        return kind, int(body), s[i:i + n]
    return None


def lex(s: str) -> list[tuple[str, int, str]]:
    items, text, i = [], [], 0

    def flush():
        if text:
            items.append(("text", 0, "".join(text)))
            text.clear()

    while i < len(s):
        tok = _lex_token(s, i)
        if tok:
            flush()
            items.append(tok)
            i += len(tok[2])
        elif s[i] == ";":
            flush()
            items.append(("sep", 0, ";"))
            i += 1
        else:
            text.append(s[i])
            i += 1
    flush()
    return items


def clean_label(s: str) -> str:
    for tok in SPECIALS:
        s = s.replace(tok, "")
    return " ".join(s.split())


def problem(locs: list[int], codes: list[int], label: str) -> str:
    if len(locs) != 4:
        return f"found {len(locs)} of 4 location tokens"
    if len(codes) not in (0, 16):
        return f"found {len(codes)} of 16 segmentation tokens"
    if label == "":
        return "missing label"
    for v in locs:
        if v >= 1024:
            return f"location bin {v} is out of range 0..1023"
    for c in codes:
        if c >= 128:
            return f"segmentation code {c} is out of range 0..127"
    if locs[2] < locs[0] or locs[3] < locs[1]:
        return f"inverted box (y0={locs[0]} x0={locs[1]} y1={locs[2]} x1={locs[3]})"
    return ""


def parse(text: str) -> tuple[list[dict], list[dict]]:
    """(found, skipped) for one output string."""
    found: list[dict] = []
    skipped: list[dict] = []
    state = {"locs": [], "codes": [], "label": [], "source": []}

    def finish():
        fragment = "".join(state["source"]).strip()
        label = clean_label("".join(state["label"]))
        locs, codes = state["locs"], state["codes"]
        state.update(locs=[], codes=[], label=[], source=[])
        if fragment == "":
            return
        reason = problem(locs, codes, label)
        if reason:
            skipped.append({"fragment": fragment, "reason": reason})
            return
        y0, x0, y1, x1 = locs
        found.append({
            "label": label,
            "locs": locs,
            "codes": codes or None,
            "box_norm": {"x0": x0 / 1023, "y0": y0 / 1023, "x1": x1 / 1023, "y1": y1 / 1023},
        })

    for kind, value, src in lex(text):
        if kind == "sep":
            finish()
            continue
        if kind == "loc":
            if len(state["locs"]) == 4 or state["codes"] or "".join(state["label"]).strip() != "":
                finish()
            state["locs"].append(value)
        elif kind == "seg":
            state["codes"].append(value)
        else:
            state["label"].append(src)
        state["source"].append(src)
    finish()
    return found, skipped
