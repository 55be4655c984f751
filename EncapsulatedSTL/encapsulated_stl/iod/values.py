"""What a DICOM attribute can hold: the value representations (PS3.5 6.2) of the text,
numbers and UIDs this project writes, checked before anything is written.

A value the user gave that does not fit is refused (:func:`check_value`), never cut or
changed; a value the project composes (a default description made of a series
description and a threshold) is cut to fit with a visible marker (:func:`fitted`).
Lengths are counted in bytes of the encoding written (UTF-8, ISO_IR 192, for any
non-ASCII text): for ASCII that is the character count, and a validator that counts
bytes finds nothing too long either.
"""

from __future__ import annotations

import datetime
import re

import pydicom.datadict

from ..errors import EncapsulatedSTLError

#: Maximum length in bytes by value representation.
MAX_LENGTH = {"AE": 16, "CS": 16, "DA": 8, "LO": 64, "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "UI": 64}

#: Range of IS (Integer String): a signed 32-bit integer.
IS_RANGE = (-(2**31), 2**31 - 1)
#: Numbers that count from 1 (highdicom refuses 0 and below, and viewers show 0 as none).
_COUNTING = ("SeriesNumber", "InstanceNumber")

#: The second arcs that exist under the ITU-T (0) and ISO (1) roots; under joint (2)
#: any.  A UID under another arc is refused by validators (dciodvfy: "non-existent ISO arc").
_ROOT_ARCS = {"0": {"0", "1", "2", "3", "4", "5", "9"}, "1": {"0", "1", "2", "3"}}

#: What a composed value ends with when it was cut to fit.
CUT_MARKER = "..."

#: Control characters a value of the VR may hold: none but ESC in single-line text;
#: line breaks, tabs and form feeds too in multi-line text (ST, LT).
_FORBIDDEN = {
    "single": re.compile(r"[\x00-\x1a\x1c-\x1f\x7f]"),
    "multi": re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]"),
}
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_CODE_STRING = re.compile(r"[A-Z0-9 _]*")


def label(keyword: str) -> str:
    """An attribute's name and tag, e.g. ``Content Description (0070,0081)``."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    return f"{pydicom.datadict.dictionary_description(tag)} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _vr(keyword: str) -> str:
    return pydicom.datadict.dictionary_VR(pydicom.datadict.tag_for_keyword(keyword))


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def value_problem(value, keyword: str) -> str | None:
    """Why ``value`` cannot be written into attribute ``keyword`` as it is, or None."""
    vr = _vr(keyword)
    if vr == "IS":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{value!r} is not a whole number"
        if not IS_RANGE[0] <= value <= IS_RANGE[1]:
            return f"{value} is outside {IS_RANGE[0]}..{IS_RANGE[1]}, the range of IS"
        if keyword in _COUNTING and value < 1:
            return f"{value} is not a number from 1 to {IS_RANGE[1]}"
        return None
    text = str(value)
    if vr == "UI":
        if not _UID.fullmatch(text) or _size(text) > MAX_LENGTH["UI"]:
            return (f"{_shown(text)} is not a UID: digits in groups joined by dots, no leading zeros, "
                    f"at most {MAX_LENGTH['UI']} characters")
        arcs = text.split(".")
        if arcs[0] not in ("0", "1", "2") or len(arcs) < 2 or (
                arcs[0] in _ROOT_ARCS and arcs[1] not in _ROOT_ARCS[arcs[0]]):
            return f"{_shown(text)} is not a UID: its root {'.'.join(arcs[:2])} is no registered arc"
        return None
    if vr == "DA":
        try:
            datetime.datetime.strptime(text, "%Y%m%d")
        except ValueError:
            return f"{_shown(text)} is not a date YYYYMMDD"
        return None if len(text) == 8 else f"{_shown(text)} is not a date YYYYMMDD"
    if vr == "CS" and not _CODE_STRING.fullmatch(text):
        return f"{_shown(text)} is not a code string (capitals, digits, spaces and _ only)"
    multi_line = vr in ("ST", "LT")
    bad = _FORBIDDEN["multi" if multi_line else "single"].search(text)
    if bad:
        return f"{_shown(text)} holds the control character \\x{ord(bad.group()):02x}"
    if not multi_line and "\\" in text:
        return f"{_shown(text)} holds a backslash, which separates values in {vr}"
    limit = MAX_LENGTH[vr]
    if vr == "PN":
        groups = text.split("=")
        if len(groups) > 3 or any(g.count("^") > 4 for g in groups):
            return (f"{_shown(text)} is not a person name: at most 5 components joined by ^, "
                    "in at most 3 groups joined by =")
        text = person_name(text)  # as it is written
    if _size(text) > limit:
        return f"{_shown(text)} is {_measured(text)}; {vr} holds at most {limit}"
    return None


def person_name(text: str) -> str:
    """A Person Name as written: a name group of one component gets its trailing ``^``.

    ``Doe`` and ``Doe^`` are the same value (PS3.5 6.2.1: trailing empty components and
    their delimiters may be left out), but without a caret a validator cannot tell the
    name from the retired free-text form (dciodvfy: "Retired Person Name form").
    """
    return "=".join(group if not group or "^" in group else group + "^" for group in text.split("="))


def check_value(value, keyword: str, option: str | None = None):
    """``value`` if attribute ``keyword`` can hold it; raises otherwise.

    Raises
    ------
    EncapsulatedSTLError
        Naming the attribute, what is wrong and the limit; ``option`` (the command
        line's name for the value) is the error's subject.
    """
    problem = value_problem(value, keyword)
    if problem:
        raise EncapsulatedSTLError(f"{label(keyword)}: {problem}", option)
    return value


def fitted(text: str, keyword: str) -> str:
    """A composed value for ``keyword``, cut to its length limit with :data:`CUT_MARKER`.

    Control characters and backslashes (from a source file's text) become spaces.
    """
    vr = _vr(keyword)
    text = _FORBIDDEN["multi" if vr in ("ST", "LT") else "single"].sub(" ", str(text))
    if vr not in ("ST", "LT"):
        text = text.replace("\\", " ")
    limit = MAX_LENGTH[vr]
    if _size(text) <= limit:
        return text
    while _size(text) + len(CUT_MARKER) > limit:
        text = text[:-1]
    return text.rstrip() + CUT_MARKER


def _measured(text: str) -> str:
    size = _size(text)
    return f"{size} characters" if size == len(text) else f"{size} bytes in UTF-8"


def _shown(text: str, limit: int = 40) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"
