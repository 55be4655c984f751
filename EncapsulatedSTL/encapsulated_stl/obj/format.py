"""Wavefront OBJ and MTL bytes <-> numpy triangle arrays and materials.

OBJ is line-oriented text: ``v x y z`` statements list vertices, ``f a b c ...``
statements make polygons of them (1-based indices, or negative ones counting back
from the last vertex read), ``g``/``o`` name the groups the faces belong to,
``usemtl`` names the material in force and ``mtllib`` the MTL files that define
the materials (``newmtl``, ``Kd`` colour, ``d`` opacity, ``map_*`` textures).
OBJ carries no units; the DICOM object that holds it says what they are.

A surface is read as ``(n, 3, 3)`` float32 triangles, polygons fan-triangulated,
one :class:`ObjGroup` per (group name, material) pair.  The vertex and face lines,
nearly all of a large file, are converted together by numpy: a 2-million-triangle
OBJ is read in 1.4 to 2.1 seconds (``Testing/benchmarks/bench_wavefront.py``).  Only
the other statements, and the lines of a file that the fast path cannot take,
are read one by one in Python; a problem is reported with its line number.

Names with spaces cannot be written as they are (OBJ splits names at spaces), so
the writers escape four characters of group and material names: ``%`` as ``%25``,
space as ``%20``, ``#`` (a comment) as ``%23`` and ``\\`` (a line continuation) as
``%5C``, and the readers undo exactly these four escapes.  The DICOM objects carry
the real names as well.
"""

from __future__ import annotations

import codecs
import re
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ObjFormatError
from ..files import check_memory
from ..stl.format import _NUMBER, COORDINATE_LIMIT, HEADER_SIZE, PREAMBLE_SIZE

#: First line of every OBJ this project writes: no names, no dates, nothing that
#: could identify a patient.
OBJ_HEADER = b"# OBJ written by encapsulated-stl; units and patient in DICOM"
#: First line of every MTL this project writes.
MTL_HEADER = b"# MTL written by encapsulated-stl"

#: Statements of freeform geometry (curves and surfaces), which are not polygons.
_FREEFORM = frozenset(
    b"cstype deg bmat step curv curv2 surf parm trim hole scrv sp end con".split()
)
#: MTL statements that name a texture file.
_TEXTURE_STATEMENTS = frozenset(b"bump disp decal refl norm".split())
#: Texture statement options and the most numbers each takes (-o, -s, -t: 1 to 3).
_TEXTURE_OPTIONS = {
    b"-blendu": 1, b"-blendv": 1, b"-bm": 1, b"-boost": 1, b"-cc": 1, b"-clamp": 1,
    b"-imfchan": 1, b"-mm": 2, b"-o": 3, b"-s": 3, b"-t": 3, b"-texres": 1, b"-type": 1,
}
_NUMBER_TOKEN = re.compile(_NUMBER + rb"\Z")
_INTEGER_TOKEN = re.compile(rb"[-+]?[0-9]+\Z")
_NOT_FINITE = frozenset(b"nan +nan -nan inf +inf -inf infinity +infinity -infinity".split())
_INDENT = re.compile(rb"\n +")
_SPACE_RUN = re.compile(rb"  +")
#: A corner of the face text with more slashes than its form allows.
_MORE_THAN_ONE_SLASH = re.compile(rb"/[^ \n/]*/")
_MORE_THAN_TWO_SLASHES = re.compile(rb"/[^ \n/]*/[^ \n/]*/")
#: Tab, vertical tab and form feed separate tokens as a space does.
_SPACES = bytes.maketrans(b"\t\x0b\x0c", b"   ")
_BYTE_ORDER_MARK = b"\xef\xbb\xbf"
#: The escapes of names (see the module docstring), and their undoing.
_ESCAPES = (("%", "%25"), (" ", "%20"), ("#", "%23"), ("\\", "%5C"))
_ESCAPED = re.compile(r"%(2[05]|23|5[cC])")
#: A value no vertex coordinate can have (beyond COORDINATE_LIMIT): it stands for each 'v'
#: (short: strtod takes three times as long for 1e300).
_VERTEX_MARK = 2e9
#: Faces and vertices per block when the writer formats them: the Python objects
#: the formatting makes for a block stay small next to the output.
_WRITE_BLOCK = 1 << 16
#: Bytes looked at by the document sniffers.
_SNIFF_SIZE = 64 * 1024


@dataclass(frozen=True)
class Material:
    """One ``newmtl`` of an MTL file.

    Attributes
    ----------
    name:
        The material name, as ``usemtl`` refers to it.
    diffuse:
        ``Kd`` as (red, green, blue), each 0..1, or ``None`` when not given (or
        given as a spectral curve or CIE XYZ, which are not converted).
    opacity:
        ``d``, or ``1 - Tr`` when only ``Tr`` is given; 0 (clear) .. 1 (opaque),
        ``None`` when neither is given.
    textures:
        File names of the texture statements (``map_*``, ``bump``, ``disp``,
        ``decal``, ``refl``, ``norm``), in file order.
    """

    name: str
    diffuse: tuple[float, float, float] | None
    opacity: float | None
    textures: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObjGroup:
    """The faces of one (group name, material) pair of an OBJ file.

    Attributes
    ----------
    name:
        The group name of ``g`` (several names joined by a space) or ``o``;
        ``""`` for faces before any.
    material:
        The ``usemtl`` material in force, or ``None``.
    triangles:
        ``(n, 3, 3)`` float32 vertex coordinates in the file's units, polygons
        fan-triangulated, in file order.  Faces of the pair are gathered here
        wherever in the file they are.
    """

    name: str
    material: str | None
    triangles: np.ndarray


@dataclass(frozen=True)
class ObjModel:
    """A parsed OBJ file.

    Attributes
    ----------
    groups:
        One :class:`ObjGroup` per (name, material) pair that has faces, in the
        order the pairs first have faces in the file.
    material_libraries:
        Every file name of the ``mtllib`` statements, in order.
    vertex_count:
        The number of ``v`` statements (used or not).
    """

    groups: tuple[ObjGroup, ...]
    material_libraries: tuple[str, ...]
    vertex_count: int

    def triangles(self) -> np.ndarray:
        """All groups' triangles, ``(n, 3, 3)`` float32, group after group."""
        if len(self.groups) == 1:
            return self.groups[0].triangles
        return np.concatenate([group.triangles for group in self.groups])


# --- text and lines ---------------------------------------------------------------


def _text(data, path, what: str) -> bytes:
    """``data`` as text with ``\\n`` line ends, spaces for tabs, no comments or indents.

    Trailing NUL bytes (DICOM pads values to an even length) are dropped; any
    other NUL byte means binary data.
    """
    text = bytes(data).rstrip(b"\x00")
    if text.startswith(_BYTE_ORDER_MARK):
        text = text[len(_BYTE_ORDER_MARK):]
    if b"\r" in text:
        text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    nul = text.find(b"\x00")
    if nul >= 0:
        line = text.count(b"\n", 0, nul) + 1
        raise ObjFormatError(f"line {line}: a NUL byte: this is binary data, not {what} text", path)
    if b"\t" in text or b"\x0b" in text or b"\x0c" in text:
        text = text.translate(_SPACES)
    if b"#" in text:
        # before continuations are joined: a comment ending in '\' continues nothing.
        # Cut at each '#' and keep each piece from its line's end: a regular expression
        # would look at every byte of the text in Python's slower search.
        pieces = text.split(b"#")
        kept = [pieces[0]]
        for piece in pieces[1:]:
            end = piece.find(b"\n")
            if end >= 0:
                kept.append(piece[end:])
        text = b"".join(kept)
    return text


def _logical_lines(text: bytes) -> tuple[bytes, np.ndarray | None]:
    """``text`` with continued lines (a trailing ``\\``) joined, and each line's number.

    The numbers are ``None`` when nothing was joined: line ``i`` is then line ``i + 1``.
    Leading spaces are removed from every line.
    """
    numbers = None
    if b"\\" in text:
        lines, kept, numbers, first = text.split(b"\n"), [], [], None
        pending: list[bytes] = []
        for number, line in enumerate(lines, 1):
            if not pending:
                first = number
            stripped = line.rstrip(b" ")
            if stripped.endswith(b"\\"):
                pending.append(stripped[:-1])
                continue
            pending.append(line)
            kept.append(b" ".join(pending))
            numbers.append(first)
            pending = []
        if pending:
            kept.append(b" ".join(pending))
            numbers.append(first)
        text = b"\n".join(kept)
        numbers = np.array(numbers, dtype=np.int64)
    if b"\n " in text:
        text = _INDENT.sub(b"\n", text)
    text = text.lstrip(b" ")
    return text, numbers


class _Lines:
    """The lines of a text, as byte offsets, sorted into kinds by their first bytes."""

    def __init__(self, text: bytes, numbers: np.ndarray | None):
        self.text = text
        self.numbers = numbers
        buffer = np.frombuffer(text, dtype=np.uint8)
        breaks = np.flatnonzero(buffer == 10)
        self.starts = np.concatenate([[0], breaks + 1])
        self.ends = np.concatenate([breaks, [len(text)]])
        lengths = self.ends - self.starts
        last = max(len(text) - 1, 0)

        def byte(offset: int, missing: int) -> np.ndarray:
            if not len(text):
                return np.full(len(lengths), missing, dtype=np.uint8)
            found = buffer[np.minimum(self.starts + offset, last)]
            return np.where(lengths > offset, found, np.uint8(missing))

        first, second, third = byte(0, 0), byte(1, 32), byte(2, 32)
        space, v = np.uint8(32), np.uint8(ord("v"))
        self.vertex = np.flatnonzero((first == v) & (second == space))
        self.face = np.flatnonzero((first == np.uint8(ord("f"))) & (second == space))
        counted = (first == v) & (third == space)
        self.texture_vertex = np.flatnonzero(counted & (second == np.uint8(ord("t"))))
        self.normal = np.flatnonzero(counted & (second == np.uint8(ord("n"))))
        known = np.zeros(len(lengths), dtype=bool)
        for kind in (self.vertex, self.face, self.texture_vertex, self.normal):
            known[kind] = True
        self.other = np.flatnonzero(~known & (lengths > 0))

    def __len__(self) -> int:
        return len(self.starts)

    def number(self, index: int) -> int:
        """The 1-based line number in the file of line ``index``."""
        return int(self.numbers[index]) if self.numbers is not None else int(index) + 1

    def line(self, index: int) -> bytes:
        return self.text[self.starts[index]:self.ends[index]]

    def joined(self, indices: np.ndarray) -> bytes:
        """The lines ``indices`` (sorted) joined by ``\\n``: one slice per run of adjacent lines."""
        if not len(indices):
            return b""
        breaks = np.flatnonzero(np.diff(indices) != 1)
        firsts = np.concatenate([[0], breaks + 1])
        lasts = np.concatenate([breaks, [len(indices) - 1]])
        starts, ends = self.starts[indices[firsts]].tolist(), self.ends[indices[lasts]].tolist()
        return b"\n".join([self.text[start:end] for start, end in zip(starts, ends)])


def _numbers(text: bytes, dtype) -> np.ndarray | None:
    """The whitespace-separated numbers of ``text``, or ``None`` unless all of it is numbers."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return np.fromstring(text, dtype=dtype, sep=" ")
        except (ValueError, DeprecationWarning):
            return None


def _name(words: Sequence[bytes]) -> str:
    """A group or material name from its words: joined by a space, escapes undone."""
    name = b" ".join(words).decode("utf-8", "replace")
    return _ESCAPED.sub(lambda match: chr(int(match.group(1), 16)), name)


def _escaped(name: str, what: str) -> bytes:
    """``name`` as written in OBJ or MTL (see the module docstring)."""
    if not isinstance(name, str) or not name:
        raise ObjFormatError(f"the {what} name {name!r} is empty or not text: OBJ needs a name there")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise ObjFormatError(f"the {what} name {name!r} holds a control character, which OBJ cannot carry")
    for char, escape in _ESCAPES:
        name = name.replace(char, escape)
    return name.encode("utf-8")


def _shown(word: bytes) -> str:
    text = word.decode("utf-8", "replace")
    return repr(text if len(text) <= 40 else text[:37] + "...")


# --- vertices ---------------------------------------------------------------------


def _vertex_line_problem(words: list[bytes]) -> str | None:
    """What is wrong with the numbers of one ``v`` statement, if anything."""
    if len(words) not in (3, 4, 6, 7):
        return (
            f"a vertex is 'v x y z', with an optional weight w or colour r g b after, "
            f"not {len(words)} numbers"
        )
    for position, word in enumerate(words):
        if word.lower() in _NOT_FINITE:
            return f"the number {_shown(word)} is NaN or infinite"
        if _NUMBER_TOKEN.match(word) is None:
            return f"{_shown(word)} is not a number"
        value = abs(float(word))
        if position < 3 and value > COORDINATE_LIMIT:
            return (
                f"the coordinate {_shown(word)} is beyond +-{COORDINATE_LIMIT:.0e} (1000 km in mm): "
                "no patient model is that large; the OBJ is corrupt or its units are wrong"
            )
        if value == np.inf:
            return f"the number {_shown(word)} is too large to represent"
    return None


def _vertices_line_by_line(lines: _Lines, path) -> np.ndarray:
    """The vertices, one line at a time: slow, but says which line is wrong."""
    found = np.empty((len(lines.vertex), 3), dtype=np.float64)
    for row, index in enumerate(lines.vertex.tolist()):
        words = lines.line(index).split()[1:]
        problem = _vertex_line_problem(words)
        if problem:
            raise ObjFormatError(f"line {lines.number(index)}: {problem}", path)
        found[row] = [float(word) for word in words[:3]]
    return found.astype(np.float32)


def _vertices(lines: _Lines, path) -> np.ndarray:
    """``(m, 3)`` float32 coordinates of the ``v`` statements, in file order.

    All lines are converted by one numpy call, each 'v' replaced by a mark no
    coordinate can equal, so the marks show where each line's numbers start.
    """
    count = len(lines.vertex)
    text = lines.joined(lines.vertex)
    # only each line's first 'v': one anywhere else must fail the conversion ("0.v5")
    values = _numbers(b"2e9" + text[1:].replace(b"\nv", b"\n2e9"), np.float64)
    del text
    if values is None or not count:
        return _vertices_line_by_line(lines, path)
    marks = np.flatnonzero(values == _VERTEX_MARK)
    if len(marks) != count or marks[0] != 0:
        return _vertices_line_by_line(lines, path)
    if len(values) == 4 * count and (values[::4] == _VERTEX_MARK).all():
        xyz = values.reshape(count, 4)[:, 1:]
    else:
        sizes = np.diff(np.append(marks, len(values))) - 1
        # a weight or colour is not used, but must be a finite number all the same
        if not np.isin(sizes, (3, 4, 6, 7)).all() or not np.isfinite(values).all():
            return _vertices_line_by_line(lines, path)
        xyz = values[marks[:, None] + np.arange(1, 4)]
    within = np.abs(xyz) <= COORDINATE_LIMIT  # False for NaN too
    if not within.all():
        return _vertices_line_by_line(lines, path)
    return xyz.astype(np.float32)


# --- faces ------------------------------------------------------------------------


class _Counts:
    """How many vertices, texture vertices and normals precede each face line."""

    def __init__(self, lines: _Lines):
        self.totals = (len(lines.vertex), len(lines.texture_vertex), len(lines.normal))
        self._kinds = (lines.vertex, lines.texture_vertex, lines.normal)

    def before(self, kind: int, line_indices: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._kinds[kind], line_indices)


_KINDS = ("vertex", "texture vertex", "normal")


def _resolved(indices: np.ndarray, before: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based indices of 1-based or negative (relative) OBJ ``indices``, and which are bad."""
    resolved = np.where(indices > 0, indices - 1, before + indices)
    bad = (indices == 0) | (resolved < 0) | (resolved >= total)
    return resolved, bad


def _face_line_problem(words: list[bytes], before: tuple[int, int, int], totals) -> tuple[str | None, list[int]]:
    """What is wrong with one ``f`` statement, if anything, else its 0-based vertex indices."""
    if len(words) < 3:
        return f"a face needs at least 3 vertices, found {len(words)}", []
    corners = []
    for word in words:
        parts = word.split(b"/")
        if len(parts) > 3 or not parts[0] or (len(parts) > 1 and not parts[-1]):
            return f"{_shown(word)} is not a vertex reference (v, v/vt, v//vn or v/vt/vn)", []
        for kind, part in enumerate(parts):
            if kind and not part:
                continue
            if _INTEGER_TOKEN.match(part) is None:
                return f"{_shown(word)} is not a vertex reference: {_shown(part)} is not a whole number", []
            index = int(part)
            resolved = index - 1 if index > 0 else before[kind] + index
            if index == 0:
                return f"{_shown(word)} has {_KINDS[kind]} index 0; OBJ counts from 1", []
            if not 0 <= resolved < totals[kind]:
                where = (
                    f"the file has {totals[kind]}" if index > 0
                    else f"{before[kind]} come before this line"
                )
                return f"{_KINDS[kind]} index {index} is out of range: {where}", []
            if kind == 0:
                corners.append(resolved)
    return None, corners


def _faces_line_by_line(lines: _Lines, counts: _Counts, faces: np.ndarray, path):
    """Corner indices and corners per face of the face lines ``faces``, one line at a time."""
    befores = [counts.before(kind, faces).tolist() for kind in range(3)]
    corners: list[int] = []
    sizes = np.empty(len(faces), dtype=np.int64)
    for row, index in enumerate(faces.tolist()):
        words = lines.line(index).split()[1:]
        problem, found = _face_line_problem(
            words, (befores[0][row], befores[1][row], befores[2][row]), counts.totals
        )
        if problem:
            raise ObjFormatError(f"line {lines.number(index)}: {problem}", path)
        corners.extend(found)
        sizes[row] = len(found)
    return np.array(corners, dtype=np.int64), sizes


def _corner_form(text: bytes) -> tuple[int, int] | None:
    """Slashes and ``//`` per corner when every corner of the face text has the same form.

    ``text`` is face lines with single spaces between tokens and none at line ends.
    Returns ``None`` when the forms differ or a slash stands next to a space, which
    the fast path cannot read.  Counted, not tokenised: with ``c`` corners (one per
    space) and ``s * c`` slashes, every corner has ``s`` exactly when none has more.
    """
    slashes = text.count(b"/")
    if not slashes:
        return 0, 0
    if b"/ " in text or b" /" in text or b"/\n" in text or text.endswith(b"/") or b"///" in text:
        return None
    corners, doubles = text.count(b" "), text.count(b"//")
    if slashes == corners and not doubles and _MORE_THAN_ONE_SLASH.search(text) is None:
        return 1, 0
    if slashes == 2 * corners and doubles in (0, corners) and _MORE_THAN_TWO_SLASHES.search(text) is None:
        return 2, int(doubles > 0)
    return None


def _faces_at_once(lines: _Lines, counts: _Counts, path):
    """Corner indices and corners per face of all face lines, by numpy; ``None`` when the
    text is not uniform enough for it (the caller then reads it line by line).

    Each line's 'f' becomes 0, an index no corner can have, to mark where it starts.
    """
    faces = lines.face
    text = lines.joined(faces)
    if b"  " in text:
        text = _SPACE_RUN.sub(b" ", text)
    if b" \n" in text:
        text = text.replace(b" \n", b"\n")
    form = _corner_form(text.rstrip(b" "))
    if form is None:
        return None
    slashes, doubled = form
    numbers_per_corner = 1 + slashes - doubled
    if slashes:
        text = text.replace(b"//", b" ") if doubled else text
        text = text.replace(b"/", b" ")
    values = _numbers(b"0" + text[1:].replace(b"\nf", b"\n0"), np.int64)
    if values is None:
        return None
    marks = np.flatnonzero(values == 0)
    if len(marks) != len(faces) or (len(marks) and marks[0] != 0):
        return None
    numbers = np.diff(np.append(marks, len(values))) - 1
    sizes = numbers // numbers_per_corner
    if (numbers % numbers_per_corner).any() or (sizes < 3).any():
        return None
    if (numbers == numbers[0]).all():  # polygons of one size: drop the marks' column
        values = values.reshape(len(faces), -1)[:, 1:].reshape(-1, numbers_per_corner)
    else:
        values = values[values != 0].reshape(-1, numbers_per_corner)
    del marks, numbers
    kinds = (0,) if numbers_per_corner == 1 else (0, 2) if doubled else (0, 1, 2)[:numbers_per_corner]
    corners, first_bad = None, None
    for column, kind in enumerate(kinds):
        indices = values[:, column]
        if 0 < indices.min() and indices.max() <= counts.totals[kind]:  # all 1-based, in range
            resolved = indices - 1
        else:
            before = counts.before(kind, faces)[np.repeat(np.arange(len(faces)), sizes)]
            resolved, bad = _resolved(indices, before, counts.totals[kind])
            if bad.any():
                here = int(np.argmax(bad))
                first_bad = here if first_bad is None else min(first_bad, here)
        if kind == 0:
            corners = resolved
    if first_bad is not None:
        # the line of the first bad corner, read alone, raises what the file's first problem is
        line = faces[int(np.searchsorted(np.cumsum(sizes), first_bad, side="right"))]
        _faces_line_by_line(lines, counts, np.array([line]), path)
        return None
    return corners, sizes


def _fan(corners: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``(t, 3)`` corner indices of the fan triangulation of polygons of ``sizes`` corners."""
    if (sizes == 3).all():
        return corners.reshape(-1, 3)
    fans = sizes - 2
    firsts = np.cumsum(sizes) - sizes
    first = np.repeat(firsts, fans)
    step = np.arange(int(fans.sum())) - np.repeat(np.cumsum(fans) - fans, fans)
    return np.stack([corners[first], corners[first + step + 1], corners[first + step + 2]], axis=1)


# --- the OBJ file -----------------------------------------------------------------


def read_obj(data: bytes | bytearray | memoryview, path=None) -> ObjModel:
    """Parse Wavefront OBJ text into triangle groups.

    Read: ``v x y z`` (an optional fourth weight, or colour ``r g b``, is
    ignored); ``f`` with corners ``v``, ``v/vt``, ``v//vn`` or ``v/vt/vn``,
    1-based or negative (counting back from the line), polygons of 3 or more
    corners fan-triangulated; ``g`` (names joined by a space) and ``o`` name the
    group, ``usemtl`` the material (``usemtl`` with no name: none), ``mtllib``
    the material files.  ``vt``, ``vn`` and ``vp`` are counted, for the indices
    that refer to them.  Lines end with LF, CR LF or CR; ``#`` starts a
    comment; a ``\\`` at the end of a line continues it on the next; tabs are
    spaces; trailing NUL bytes (DICOM padding) are ignored; ``l``, ``p``, ``s``,
    ``mg`` and unknown statements are ignored.

    Parameters
    ----------
    data:
        The OBJ file's bytes.
    path:
        The file the bytes come from, for messages.

    Returns
    -------
    ObjModel
        The groups with faces, coordinates as float32 in the file's units.

    Raises
    ------
    ObjFormatError
        ``line N: ...`` for a vertex that is not 3 numbers (or 4, 6 or 7), a
        number that is malformed, NaN, infinite or beyond
        :data:`~encapsulated_stl.stl.format.COORDINATE_LIMIT`, a face with fewer
        than 3 corners or an index that is 0 or out of range, a freeform curve
        or surface statement, or a NUL byte; and a file with no faces.
    """
    # measured at the peak: 3.6 to 4.5 times the text for 2 million triangles (4.5 when
    # the vertices are shared the most: the text is short next to the triangles made)
    check_memory(6 * len(data), "parsing the OBJ", path, ObjFormatError)
    text, numbers = _logical_lines(_text(data, path, "OBJ"))
    lines = _Lines(text, numbers)
    del text, numbers
    libraries: list[str] = []
    changes: list[int] = []
    states: list[tuple[str, str | None]] = [("", None)]
    for index in lines.other.tolist():
        words = lines.line(index).split()
        keyword = words[0]
        if keyword in (b"g", b"o", b"usemtl"):
            name, material = states[-1]
            if keyword == b"usemtl":
                material = _name(words[1:]) if len(words) > 1 else None
            else:
                name = _name(words[1:])
            changes.append(index)
            states.append((name, material))
        elif keyword == b"mtllib":
            libraries.extend(word.decode("utf-8", "replace") for word in words[1:])
        elif keyword == b"vp":
            pass
        elif keyword in _FREEFORM:
            raise ObjFormatError(
                f"line {lines.number(index)}: freeform curves and surfaces "
                f"(cstype, curv, surf ...: here {_shown(keyword)}) are not supported; "
                "export the model as polygons",
                path,
            )
    if not len(lines.face):
        raise ObjFormatError("no faces: the OBJ holds no surface", path)
    vertices = _vertices(lines, path)
    counts = _Counts(lines)
    found = _faces_at_once(lines, counts, path)
    corners, sizes = found if found is not None else _faces_line_by_line(lines, counts, lines.face, path)
    triangles_of_face = sizes - 2
    state_of_face = np.searchsorted(np.array(changes, dtype=np.int64), lines.face)
    groups = _grouped(vertices, _fan(corners, sizes), np.repeat(state_of_face, triangles_of_face), states)
    return ObjModel(
        groups=groups, material_libraries=tuple(libraries), vertex_count=len(lines.vertex)
    )


def _grouped(vertices, triangles, state_of_triangle, states) -> tuple[ObjGroup, ...]:
    """One :class:`ObjGroup` per (name, material) pair, the pairs in order of their first face."""
    used, first = np.unique(state_of_triangle, return_index=True)
    group_of_state = np.zeros(len(states), dtype=np.int64)
    keys: dict[tuple[str, str | None], int] = {}
    for state in used[np.argsort(first)].tolist():
        group_of_state[state] = keys.setdefault(states[state], len(keys))
    if len(keys) == 1:
        (name, material), = keys
        return (ObjGroup(name, material, vertices[triangles]),)
    group_of_triangle = group_of_state[state_of_triangle]
    ends = np.cumsum(np.bincount(group_of_triangle, minlength=len(keys)))
    if (np.diff(group_of_triangle) >= 0).all():  # each group in one run, as writers make them
        everything = vertices[triangles]
    else:
        everything = vertices[triangles[np.argsort(group_of_triangle, kind="stable")]]
    return tuple(
        ObjGroup(name, material, everything[end - size:end])
        for (name, material), end, size in zip(keys, ends, np.diff(np.append(0, ends)))
    )


def _shared_vertices(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct vertices ``(m, 3)`` in order of first use, and ``(n, 3)`` indices into them.

    Vertices are compared by their bits, so -0.0 and 0.0 stay apart and the
    triangles made of the result are bit-identical to ``triangles``.
    """
    flat = np.ascontiguousarray(triangles.reshape(-1, 3))
    bits = flat.view(np.uint32)
    order = np.lexsort((bits[:, 2], bits[:, 1], bits[:, 0]))  # stable: first use first
    ordered = bits[order]
    new = np.empty(len(order), dtype=bool)
    new[:1] = True
    np.any(ordered[1:] != ordered[:-1], axis=1, out=new[1:])
    del ordered
    first_use = order[new]
    rank = np.empty(len(first_use), dtype=np.int64)
    rank[np.argsort(first_use)] = np.arange(len(first_use))
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = rank[np.cumsum(new) - 1]
    return flat[np.sort(first_use)], inverse.reshape(-1, 3)


def _formatted(line: str, rows: np.ndarray) -> list[bytes]:
    """``line % row`` for each row, block by block (one formatting call per block)."""
    parts = []
    for start in range(0, len(rows), _WRITE_BLOCK):
        block = rows[start:start + _WRITE_BLOCK]
        parts.append(((line * len(block)) % tuple(block.ravel().tolist())).encode("ascii"))
    return parts


def obj_bytes(groups: Sequence[tuple[str, str | None, np.ndarray]], material_library: str | None) -> bytes:
    """Encode triangle groups as Wavefront OBJ text.

    Written: :data:`OBJ_HEADER` (no patient data ever), ``mtllib`` when a
    library is given, then per group its distinct vertices (``v x y z``), ``g``
    with its name, ``usemtl`` with its material, and its faces ``f a b c``
    (1-based indices into all vertices written so far).  Coordinates are written
    with 9 significant digits, enough for :func:`read_obj` to give back each
    float32 value bit for bit.  Names are escaped as the module docstring says.
    A group without a material after one with a material gets a bare
    ``usemtl``, which :func:`read_obj` reads as no material.

    Parameters
    ----------
    groups:
        ``(name, material name or None, triangles)``, the triangles ``(n, 3, 3)``
        in mm (any float type; written as float32), at least one each.
    material_library:
        The MTL file name for ``mtllib``, or ``None``.  It must not hold spaces,
        ``#`` or control characters (OBJ cannot carry them in a file name).

    Raises
    ------
    ValueError
        A group's triangles are not ``(n, 3, 3)``, are empty, or are not finite.
    ObjFormatError
        A name is empty or holds a control character, or the library name cannot
        be written.
    """
    parts = [OBJ_HEADER + b"\n"]
    if material_library is not None:
        if (
            not isinstance(material_library, str) or not material_library
            or any(ord(char) <= 32 or ord(char) == 127 or char in "#\\" for char in material_library)
        ):
            raise ObjFormatError(
                f"the material library name {material_library!r} cannot be written in OBJ: "
                "use a file name without spaces, '#', '\\' or control characters"
            )
        parts.append(b"mtllib " + material_library.encode("utf-8") + b"\n")
    if not len(groups):
        raise ValueError("no groups to write: an OBJ needs faces")
    written, material_in_force = 0, None
    for name, material, triangles in groups:
        tri = np.asarray(triangles)
        if tri.ndim != 3 or tri.shape[1:] != (3, 3) or not len(tri):
            raise ValueError(f"the triangles of group {name!r} must have shape (n, 3, 3), n > 0, not {tri.shape}")
        tri = tri.astype(np.float32)
        if not np.isfinite(tri).all():
            raise ValueError(f"the triangles of group {name!r} contain NaN or infinite coordinates")
        label = _escaped(name, "group")
        use = _escaped(material, "material") if material is not None else None
        vertices, corners = _shared_vertices(tri)
        parts += _formatted("v %.9g %.9g %.9g\n", vertices.astype(np.float64))
        parts.append(b"g " + label + b"\n")
        if use is not None:
            parts.append(b"usemtl " + use + b"\n")
        elif material_in_force is not None:
            parts.append(b"usemtl\n")
        material_in_force = use
        parts += _formatted("f %d %d %d\n", corners + (written + 1))
        written += len(vertices)
    return b"".join(parts)


# --- the MTL file -----------------------------------------------------------------


def _mtl_number(word: bytes, where: str, path) -> float:
    if _NUMBER_TOKEN.match(word) is None:
        raise ObjFormatError(f"{where}: {_shown(word)} is not a number", path)
    return min(max(float(word), 0.0), 1.0)


def _texture_file(words: list[bytes], where: str, path) -> str:
    """The file name of a texture statement's words (after the keyword), options skipped."""
    position = 0
    while position < len(words) and words[position] in _TEXTURE_OPTIONS:
        most = _TEXTURE_OPTIONS[words[position]]
        position += 1
        taken = 0
        while (
            taken < most and position < len(words) - 1
            and (_NUMBER_TOKEN.match(words[position]) or words[position] in (b"on", b"off") or taken == 0)
        ):
            position, taken = position + 1, taken + 1
    if position >= len(words):
        raise ObjFormatError(f"{where}: the texture statement names no file", path)
    return b" ".join(words[position:]).decode("utf-8", "replace")


def read_mtl(data: bytes | bytearray | memoryview, path=None) -> dict[str, Material]:
    """Parse Wavefront MTL text into its materials, by name, in file order.

    Read: ``newmtl name``; ``Kd r [g b]`` (``g`` and ``b`` default to ``r``;
    ``Kd spectral ...`` and ``Kd xyz ...`` give no diffuse colour); ``d
    [-halo] factor``; ``Tr factor`` (opacity ``1 - Tr`` when the material has no
    ``d``); texture statements (``map_*``, ``bump``, ``disp``, ``decal``,
    ``refl``, ``norm``) with their options, the file name after them.  Colours
    and opacities outside 0..1 are clamped to it.  Other statements (``Ka``,
    ``Ks``, ``Ns``, ``Ni``, ``Ke``, ``illum`` ...), and anything before the
    first ``newmtl``, are ignored.  Line ends, comments, continuations and NUL
    padding as in :func:`read_obj`.  A name repeated replaces the earlier one.

    Raises
    ------
    ObjFormatError
        ``line N: ...`` for a malformed number, a ``newmtl`` without a name, a
        texture statement without a file, or a NUL byte.
    """
    text, numbers = _logical_lines(_text(data, path, "MTL"))
    materials: dict[str, dict] = {}
    current = None
    for index, line in enumerate(text.split(b"\n")):
        words = line.split()
        if not words:
            continue
        keyword = words[0]
        where = f"line {int(numbers[index]) if numbers is not None else index + 1}"
        if keyword == b"newmtl":
            if len(words) < 2:
                raise ObjFormatError(f"{where}: 'newmtl' names no material", path)
            current = {"name": _name(words[1:]), "diffuse": None, "d": None, "tr": None, "textures": []}
            materials.pop(current["name"], None)
            materials[current["name"]] = current
        elif current is None:
            continue
        elif keyword == b"Kd":
            if len(words) > 1 and words[1].lower() in (b"spectral", b"xyz"):
                current["diffuse"] = None
                continue
            if not 2 <= len(words) <= 4:
                raise ObjFormatError(f"{where}: 'Kd' takes 1 to 3 numbers (r g b), not {len(words) - 1}", path)
            values = [_mtl_number(word, where, path) for word in words[1:]]
            current["diffuse"] = tuple(values + [values[0]] * (3 - len(values)))
        elif keyword in (b"d", b"Tr"):
            if len(words) < 2:
                raise ObjFormatError(f"{where}: {_shown(keyword)} takes a number", path)
            current["d" if keyword == b"d" else "tr"] = _mtl_number(words[-1], where, path)
        elif keyword.lower().startswith(b"map_") or keyword.lower() in _TEXTURE_STATEMENTS:
            current["textures"].append(_texture_file(words[1:], where, path))
    return {
        name: Material(
            name=name,
            diffuse=found["diffuse"],
            opacity=found["d"] if found["d"] is not None else (
                None if found["tr"] is None else 1.0 - found["tr"]
            ),
            textures=tuple(found["textures"]),
        )
        for name, found in materials.items()
    }


def mtl_bytes(materials: Sequence[Material]) -> bytes:
    """Encode materials as Wavefront MTL text.

    Written: :data:`MTL_HEADER`, then per material ``newmtl`` (the name escaped
    as the module docstring says), ``Kd r g b`` and ``d opacity`` (6 decimals)
    for the values that are given.

    Raises
    ------
    ObjFormatError
        A material has textures (this writer writes no texture maps), or its
        name is empty, holds a control character, or repeats an earlier one.
    ValueError
        A colour component or opacity is not a number within 0..1.
    """
    parts, names = [MTL_HEADER + b"\n"], set()
    for material in materials:
        if material.textures:
            raise ObjFormatError(
                f"material {material.name!r} has texture maps {list(material.textures)}: "
                "this writer writes no texture maps"
            )
        if material.name in names:
            raise ObjFormatError(f"material {material.name!r} is given twice")
        names.add(material.name)
        parts.append(b"newmtl " + _escaped(material.name, "material") + b"\n")
        if material.diffuse is not None:
            values = tuple(float(value) for value in material.diffuse)
            if len(values) != 3 or not all(0.0 <= value <= 1.0 for value in values):
                raise ValueError(f"material {material.name!r}: diffuse {material.diffuse} is not 3 numbers in 0..1")
            parts.append(b"Kd %.6f %.6f %.6f\n" % values)
        if material.opacity is not None:
            if not 0.0 <= float(material.opacity) <= 1.0:
                raise ValueError(f"material {material.name!r}: opacity {material.opacity} is not within 0..1")
            parts.append(b"d %.6f\n" % float(material.opacity))
    return b"".join(parts)


# --- what a document really is ----------------------------------------------------


def _content_problem(data, what: str) -> str | None:
    """What ``data`` holds instead of ``what`` text, if it is recognisably something else."""
    data = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    size = len(data)
    head = bytes(data[:_SNIFF_SIZE])
    if head[:4] == b"glTF":
        return f"it holds glTF binary (GLB), not {what}"
    if head[:4] == b"PK\x03\x04":
        return f"it holds a ZIP archive (e.g. 3MF), not {what}"
    if size >= PREAMBLE_SIZE:
        count = int(np.frombuffer(head, dtype="<u4", count=1, offset=HEADER_SIZE)[0])
        if count and size == PREAMBLE_SIZE + 50 * count:
            return f"it holds a binary STL, not {what}"
    # only trailing NUL bytes can be padding: strip them from the end of the data
    end = size
    while end > 0:
        start = max(0, end - _SNIFF_SIZE)
        kept = len(bytes(data[start:end]).rstrip(b"\x00"))
        if kept:
            end = start + kept
            break
        end = start
    head = bytes(data[:min(end, _SNIFF_SIZE)])
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped.strip() and end <= _SNIFF_SIZE:
        return f"it is empty, not {what}"
    if b"\x00" in head:
        return f"it holds binary data, not {what} text"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=end <= _SNIFF_SIZE)
    except UnicodeDecodeError:
        return f"it holds binary data, not {what} text"
    if stripped[:1] == b"{" and b'"asset"' in head:
        return f"it holds glTF JSON, not {what}"
    if stripped[:5].lower() == b"solid" and re.search(rb"(?i)\bfacet\b", head):
        return f"it holds an ASCII STL, not {what}"
    return None


def _mime_problem(mime_type: str | None, expected: str) -> str | None:
    if not mime_type:
        return None
    base = mime_type.split(";", 1)[0].strip().lower()
    if base != expected:
        return f"its MIME type is {mime_type.split(';', 1)[0].strip()}, not {expected}"
    return None


def document_problem(data, mime_type: str | None = None) -> str | None:
    """Why ``data`` (with ``mime_type``, if known) is not Wavefront OBJ, or ``None``.

    For objects from other producers: a short phrase such as "it holds glTF
    binary (GLB), not OBJ" for glTF (binary or JSON), ZIP (3MF), binary or ASCII
    STL, binary data (a NUL byte or invalid UTF-8 in the first 64 KiB, trailing
    NUL padding aside) or nothing at all, else "its MIME type is X, not
    model/obj" when a MIME type other than model/obj is given (case and
    parameters ignored).  ``None`` does not mean :func:`read_obj` will accept it.
    """
    return _content_problem(data, "OBJ") or _mime_problem(mime_type, "model/obj")


def mtl_document_problem(data, mime_type: str | None = None) -> str | None:
    """Why ``data`` (with ``mime_type``, if known) is not Wavefront MTL, or ``None``.

    As :func:`document_problem`, for MTL and the MIME type model/mtl.
    """
    return _content_problem(data, "MTL") or _mime_problem(mime_type, "model/mtl")
