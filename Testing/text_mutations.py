"""Mutations of a valid text file (ASCII STL, OBJ, MTL) for the fuzz tests: what damage,
hand edits and truncation do to such files, drawn by hypothesis."""

from __future__ import annotations

import re

from hypothesis import strategies as st

#: Edits every text fuzz test makes; ``byte`` and ``character`` may be added.
KINDS = ("delete", "insert", "token", "cut", "duplicate")


@st.composite
def mutated_text(draw, seed: bytes, tokens, spaces, kinds=KINDS, characters=()):
    """``seed`` with one to four edits: a run deleted, a token or space inserted, a word
    replaced by a token, the end cut off, a line duplicated, a byte set to any value
    (``byte``), or one of ``characters`` inserted (``character``)."""
    text = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(list(kinds)))
        at = draw(st.integers(0, len(text)))
        if kind == "delete":
            del text[at:at + draw(st.integers(1, 30))]
        elif kind == "insert":
            text[at:at] = draw(st.sampled_from(list(tokens) + list(spaces)))
        elif kind == "token":
            found = list(re.finditer(rb"\S+", bytes(text)))
            if found:
                token = found[draw(st.integers(0, len(found) - 1))]
                text[token.start():token.end()] = draw(st.sampled_from(list(tokens)))
        elif kind == "cut":
            del text[at:]
        elif kind == "duplicate":
            line_start = text.rfind(b"\n", 0, at) + 1
            line_end = text.find(b"\n", at)
            line_end = len(text) if line_end < 0 else line_end + 1
            text[line_start:line_start] = text[line_start:line_end]
        elif kind == "byte" and text:
            text[min(at, len(text) - 1)] = draw(st.integers(0, 255))
        elif kind == "character":
            text[at:at] = draw(st.sampled_from(list(characters)))
    return bytes(text)
