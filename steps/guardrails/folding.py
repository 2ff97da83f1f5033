"""Text folding for guardrail matching: NFKC, Unicode look-alikes, invisible characters, case.

A policy pattern such as ``ignore (all|any) previous instructions`` must also
catch ``IGNORE ALL previous instructions``, ``ｉｇｎｏｒｅ`` (fullwidth), ``іgnоre``
(Cyrillic і and о) and ``ig\\u200bnore`` (a zero-width space). So matching runs on
a *folded* copy of the text:

1. format characters (Unicode category ``Cf``: zero-width space/joiners, bidi
   controls, soft hyphen) are dropped;
2. each character is NFKC-normalised (fullwidth, ligatures, mathematical letters);
3. look-alikes are mapped to the ASCII letter or digit they imitate, using the
   Unicode confusables table shipped by the ``confusable-homoglyphs`` package
   (its ``confusables.json``, generated from Unicode's ``confusables.txt``);
4. the result is case-folded (``str.casefold``: full folding, ``ß`` → ``ss``).

Folding changes lengths, so it also returns, for each folded character, the
index of the original character it came from: redaction cuts the *original*
text at the spans found in the folded one. ASCII text (the common case) folds
with ``str.lower`` and an identity map, which keeps the engine fast.
"""

from __future__ import annotations

import json
import unicodedata
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def lookalike_table() -> dict[int, str]:
    """Return ``{codepoint: ascii}`` for every non-ASCII character confusable with an ASCII letter or digit.

    Letters win over digits when a character imitates both (Cyrillic ``О`` is ``o``, not ``0``).
    """
    import confusable_homoglyphs  # the Unicode confusables data, maintained upstream

    data = json.loads((Path(confusable_homoglyphs.__file__).parent / "confusables.json").read_text("utf-8"))
    candidates: dict[str, set[str]] = {}
    for char, glyphs in data.items():
        for g in glyphs:
            other = g["c"]
            for a, b in ((char, other), (other, char)):
                if len(a) == 1 and not a.isascii() and len(b) == 1 and b.isascii() and b.isalnum():
                    candidates.setdefault(a, set()).add(b.lower())
    table: dict[int, str] = {}
    for char, ascii_options in candidates.items():
        letters = sorted(c for c in ascii_options if c.isalpha())
        table[ord(char)] = (letters or sorted(ascii_options))[0]
    return table


def _fold_char(ch: str, table: dict[int, str]) -> str:
    if unicodedata.category(ch) == "Cf":
        return ""
    s = unicodedata.normalize("NFKC", ch)
    return s.translate(table).casefold()


def fold(text: str) -> tuple[str, list[int] | None]:
    """Return (folded text, index map); the map is None when it is the identity (ASCII text).

    ``map[i]`` is the index in ``text`` of the character that produced folded character ``i``.
    """
    if text.isascii():
        return text.lower(), None
    table = lookalike_table()
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch.isascii():
            out.append(ch.lower())
            index.append(i)
            continue
        piece = _fold_char(ch, table)
        out.append(piece)
        index.extend([i] * len(piece))
    return "".join(out), index


def original_span(start: int, end: int, index: list[int] | None, text_len: int) -> tuple[int, int]:
    """Return the span of the original text that folded span ``[start, end)`` came from."""
    if index is None:
        return start, end
    if start >= len(index):
        return text_len, text_len
    return index[start], (index[end - 1] + 1) if end > start else index[start]
