"""Binary and ASCII STL bytes <-> numpy triangle arrays.

Binary STL layout [STL 1989]: an 80-byte header, a little-endian uint32 triangle
count, then one 50-byte record per triangle: normal (3 x float32), three vertices
(9 x float32) and a uint16 "attribute byte count".  STL carries no units; the
Encapsulated STL object says what they are (Measurement Units Code Sequence).

Everything here is vectorised: a mesh is an ``(n, 3, 3)`` float32 array of triangle
vertices, parsed from the bytes without copying them.

What is accepted: at least one triangle; every number finite; every vertex
coordinate within :data:`COORDINATE_LIMIT`; at least one triangle with an area.
ASCII STL follows its grammar exactly (see :func:`parse_ascii_stl`), and a
problem in it is reported with its line number.
"""

from __future__ import annotations

import mmap
import os
import re
import threading
from dataclasses import dataclass
from itertools import chain

import numpy as np

from ..errors import EncapsulatedSTLError, StlFormatError
from ..files import check_memory, open_input

HEADER_SIZE = 80
PREAMBLE_SIZE = HEADER_SIZE + 4
RECORD_SIZE = 50
#: Files at least this large are memory-mapped rather than read.
MAP_THRESHOLD = 16 * 1024 * 1024
#: Largest vertex coordinate magnitude accepted, in the file's units.  1e9 mm is
#: 1000 km (1e9 um still 1 km): no patient model comes near it, so a larger value
#: is a corrupt file or wrong units.  It also keeps float32 mesh arithmetic finite:
#: edges are below 2e9, the components of their cross product below 8e18, and
#: the squared length of a normal below 3 x 6.4e37, under float32's 3.4e38.
COORDINATE_LIMIT = 1e9
_FLOAT32_MAX = float(np.finfo(np.float32).max)

#: One binary STL triangle record, exactly as laid out in the file.
RECORD_DTYPE = np.dtype(
    [("normal", "<f4", (3,)), ("vertices", "<f4", (3, 3)), ("attribute", "<u2")]
)
assert RECORD_DTYPE.itemsize == RECORD_SIZE
#: The same record with normal and vertices as one run of 12 floats, for one-pass checks.
_FLOATS_DTYPE = np.dtype([("floats", "<f4", (12,)), ("attribute", "<u2")])

#: Header of every STL this project writes: no names, no dates, nothing that could
#: identify a patient.  It must not start with "solid", or readers take it for ASCII.
PROJECT_HEADER = b"Binary STL written by encapsulated-stl; units and patient in DICOM"


def binary_stl_size(triangle_count: int) -> int:
    """Size in bytes of a binary STL with ``triangle_count`` triangles."""
    return PREAMBLE_SIZE + RECORD_SIZE * int(triangle_count)


@dataclass(frozen=True)
class StlMesh:
    """A parsed STL file.

    Attributes
    ----------
    triangles:
        ``(n, 3, 3)`` float32 vertex coordinates, in the file's own units
        (millimetres for what this project writes).  For binary input this is a
        read-only view into the original bytes.
    normals:
        ``(n, 3)`` float32 facet normals as stored in the file.
    attributes:
        ``(n,)`` uint16 attribute byte counts (zero for ASCII input).
    header:
        The 80-byte binary header, or ``None`` for ASCII input.
    """

    triangles: np.ndarray
    normals: np.ndarray
    attributes: np.ndarray
    header: bytes | None

    @property
    def triangle_count(self) -> int:
        return int(self.triangles.shape[0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Minimum and maximum vertex coordinates, each ``(3,)`` float64.

        A parsed mesh always has at least one triangle.
        """
        flat = self.triangles.reshape(-1, 3)
        return flat.min(axis=0).astype(np.float64), flat.max(axis=0).astype(np.float64)


def _all_finite(values: np.ndarray) -> bool:
    # A float64 sum of float32 values cannot overflow (3.4e38 x 4e9 x 12 << 1.8e308),
    # so it is finite exactly when every value is: one fast pass over the strided
    # records, where np.isfinite would take three times as long.
    with np.errstate(invalid="ignore"):  # inf + -inf is NaN: an answer, not a warning
        return bool(np.isfinite(values.sum(dtype=np.float64)))


def _first_bad_row(bad: np.ndarray) -> int:
    return int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))


def _check_finite(values: np.ndarray, what: str, path) -> None:
    if _all_finite(values):
        return
    finite = np.isfinite(values)
    if not finite.all():
        raise StlFormatError(
            f"triangle {_first_bad_row(~finite)} has a {what} that is NaN or infinite; "
            "the STL is corrupt",
            path,
        )


def _check_extent(triangles: np.ndarray, path) -> None:
    """Refuse vertex coordinates beyond :data:`COORDINATE_LIMIT` (finite ones)."""
    beyond = np.abs(triangles) > COORDINATE_LIMIT
    if beyond.any():
        bad = _first_bad_row(beyond)
        value = float(triangles[bad].reshape(-1)[np.argmax(beyond[bad].reshape(-1))])
        raise StlFormatError(
            f"triangle {bad} has a vertex coordinate {value:.6g}, beyond +-{COORDINATE_LIMIT:.0e} "
            "(1000 km in mm): no patient model is that large; the STL is corrupt or its "
            "units are wrong",
            path,
        )


def _check_area(triangles: np.ndarray, path) -> None:
    """Refuse a mesh in which no triangle has an area.

    Blocks grow from a few triangles: any real model has an area in its first
    block, so the check costs next to nothing unless the mesh is all degenerate.
    """
    count, start, size = len(triangles), 0, 256
    with np.errstate(all="ignore"):  # NaN and Inf are reported by the value scan
        while start < count:
            block = triangles[start:start + size].astype(np.float64)
            normal = np.cross(block[:, 1] - block[:, 0], block[:, 2] - block[:, 0])
            if (normal != 0).any():  # NaN counts as an area here
                return
            start, size = start + size, min(size * 8, _BLOCK)
    which = "its only triangle has" if count == 1 else f"all {count} triangles have"
    raise StlFormatError(
        f"{which} zero area (the corners coincide or lie on one line): the model has "
        "no surface to show or print",
        path,
    )


def _checked_count(data, path) -> int:
    """The triangle count of binary STL ``data``, once it agrees with the size and is not 0."""
    size = len(data)
    if size < PREAMBLE_SIZE:
        raise StlFormatError(
            f"only {size} bytes; a binary STL has at least an 80-byte header and "
            "a 4-byte triangle count",
            path,
        )
    count = declared_triangle_count(data)
    expected = binary_stl_size(count)
    if size != expected:
        if size < expected:
            problem = (
                f"truncated: the header declares {count} triangles "
                f"({expected} bytes) but the file has {size} bytes"
            )
        else:
            problem = (
                f"{size - expected} bytes of trailing data after the {count} "
                f"triangles the header declares ({expected} bytes)"
            )
        raise StlFormatError(problem, path)
    if count == 0:
        raise StlFormatError("contains no triangles: an empty model cannot be shown or printed", path)
    return count


def parse_binary_stl(
    data: bytes | bytearray | memoryview, path=None, *, check_values: bool = True
) -> StlMesh:
    """Parse and fully validate binary STL bytes without copying them.

    ``check_values=False`` skips only :func:`check_binary_stl_values`, the step
    that reads every byte, for a caller that runs it alongside other work
    (:class:`ValueCheck`) and waits for it before anything is published.

    Raises
    ------
    StlFormatError
        If the data is shorter than the 84-byte preamble, the declared triangle
        count does not match the size or is 0, or the values are unusable (see
        :func:`check_binary_stl_values`).  The count is checked against the size
        before anything is allocated, so a huge declared count in a tiny file
        costs nothing.
    """
    count = _checked_count(data, path)
    records = np.frombuffer(data, dtype=RECORD_DTYPE, count=count, offset=PREAMBLE_SIZE)
    mesh = StlMesh(
        triangles=records["vertices"],
        normals=records["normal"],
        attributes=records["attribute"],
        header=bytes(memoryview(data)[:HEADER_SIZE]),
    )
    if check_values:
        check_binary_stl_values(data, path)
    return mesh


def _within_limit(floats: np.ndarray) -> bool:
    """True when every value of ``floats`` ``(n, k)`` is finite and within :data:`COORDINATE_LIMIT`.

    One read of the records: each block's magnitudes go to a buffer that stays in
    cache, as fast as the float64 sum it replaces, and it stops at the first bad block.
    """
    step = _SCAN_BLOCK
    buffer = np.empty((min(len(floats), step),) + floats.shape[1:], dtype=floats.dtype)
    with np.errstate(invalid="ignore"):
        for start in range(0, len(floats), step):
            part = floats[start:start + step]
            if not np.abs(part, out=buffer[:len(part)]).max() <= COORDINATE_LIMIT:  # NaN fails too
                return False
    return True


#: Records per block of the value scan: its 12-float buffer (768 kB) stays in cache.
_SCAN_BLOCK = 1 << 14


def check_binary_stl_values(data, path=None) -> None:
    """Raise :class:`StlFormatError` unless a binary STL's values make a model.

    Refused: a NaN or infinite float (vertex or normal), a vertex coordinate
    beyond :data:`COORDINATE_LIMIT`, and a mesh whose every triangle has zero
    area.  One pass over all floats settles the common case; only a file that
    fails it is looked at again (still vectorised) to name the first bad triangle.
    """
    count = _checked_count(data, path)
    floats = np.frombuffer(data, dtype=_FLOATS_DTYPE, count=count, offset=PREAMBLE_SIZE)["floats"]
    records = np.frombuffer(data, dtype=RECORD_DTYPE, count=count, offset=PREAMBLE_SIZE)
    if not _within_limit(floats):  # large finite normals pass the closer look
        _check_finite(records["vertices"], "vertex", path)
        _check_finite(records["normal"], "normal", path)
        _check_extent(records["vertices"], path)
    _check_area(records["vertices"], path)


class ValueCheck:
    """The NaN/Inf scan of a binary STL, running on a worker thread.

    numpy releases the GIL while it sums, so on a second core the scan costs no
    time next to writing the output.  Start it, write to a temporary file, and
    call :meth:`wait` before the output is renamed into place: it re-raises what
    the scan found.
    """

    def __init__(self, data, path=None):
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(data, path), name="stl-value-check", daemon=True
        )
        self._thread.start()

    def _run(self, data, path) -> None:
        try:
            check_binary_stl_values(data, path)
        except BaseException as error:  # handed to the waiting thread
            self._error = error

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error


#: A number in full: optional sign, digits with at most one decimal point, optional
#: exponent.  No "nan", "inf", "0x10", "1_000" (Python's float() takes the last
#: two).  Written so that a failed match backtracks in linear time.
_NUMBER = rb"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_COORDINATES = (rb"\s+(" + _NUMBER + rb")") * 3
#: One facet with its 12 numbers captured, or else the next token as garbage (group
#: 13): matched repeatedly from a facet boundary the matches tile the text, so the
#: text is valid exactly when no garbage is found.
_FACET = re.compile(
    rb"\s*(?:facet\s+normal" + _COORDINATES + rb"\s+outer\s+loop"
    + (rb"\s+vertex" + _COORDINATES) * 3
    + rb"\s+endloop\s+endfacet(?!\S)|(\S+))",
    re.IGNORECASE,
)
_FACET_END = re.compile(rb"\sendfacet(?!\S)", re.IGNORECASE)
#: The 'solid' line, after blank lines and the UTF-8 byte order mark some editors write.
_SOLID = re.compile(rb"(?:\xef\xbb\xbf)?\s*solid(?:[^\S\r\n][^\r\n]*)?(?:\r\n|\r|\n|\Z)", re.IGNORECASE)
_BYTE_ORDER_MARK = b"\xef\xbb\xbf"
#: 'endsolid', its name (the rest of its line) and nothing after but whitespace.
_ENDSOLID = re.compile(rb"(?<!\S)endsolid(?:[^\S\r\n][^\r\n]*)?\s*\Z", re.IGNORECASE)
_TOKEN = re.compile(rb"\S+")
_NUMBER_TOKEN = re.compile(_NUMBER + rb"\Z")
_LINE_BREAK = re.compile(rb"[\r\n]")
#: Bytes no text file holds; seen near the start they mean binary data.
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
#: ASCII text is parsed per chunk of about this size: the Python objects the regular
#: expression makes for it (about 4 times its size) stay small next to the result.
_TEXT_CHUNK = 1024 * 1024

#: The 21 tokens of a facet: keywords, or (what, index) for a number.
_FACET_TOKENS = (
    (b"facet", b"normal")
    + tuple(("normal", axis) for axis in "xyz")
    + (b"outer", b"loop")
    + tuple(
        token
        for corner in (1, 2, 3)
        for token in ((b"vertex",) + tuple((f"vertex {corner}", axis) for axis in "xyz"))
    )
    + (b"endloop", b"endfacet")
)


_KEYWORDS = frozenset(token for token in _FACET_TOKENS if isinstance(token, bytes)) | {b"endsolid"}


def looks_like_ascii_stl(data) -> bool:
    """True when the data starts like an ASCII STL and is not a valid binary STL size.

    Many binary STL writers put "solid" at the start of the 80-byte header, so the
    size rule (84 + 50 n) decides first.
    """
    head = bytes(memoryview(data)[:HEADER_SIZE])
    if head.startswith(_BYTE_ORDER_MARK):
        head = head[len(_BYTE_ORDER_MARK):]
    if not head.lstrip()[:5].lower() == b"solid":
        return False
    if len(data) >= PREAMBLE_SIZE:
        count = int(np.frombuffer(data, dtype="<u4", count=1, offset=HEADER_SIZE)[0])
        if len(data) == binary_stl_size(count):
            return False
    return True


def _line_number(data, offset: int) -> int:
    """1-based line of byte ``offset``; CR LF, LF and a lone CR each end a line."""
    text = np.frombuffer(data, dtype=np.uint8, count=offset)
    cr = text == 13
    return int(
        np.count_nonzero(text == 10) + np.count_nonzero(cr)
        - np.count_nonzero(cr[:-1] & (text[1:] == 10)) + 1
    )


def _shown(token: bytes) -> str:
    """A token for a one-line message: printable, quoted, at most about 40 characters."""
    text = repr(bytes(token[:40]))[1:]
    return text if len(token) <= 40 else text[:-1] + "...'"


def _last_line_start(data, end: int) -> int:
    """Where the line holding the byte before ``end`` starts."""
    while end > 0:
        start = max(0, end - 65536)
        piece = bytes(data[start:end])
        brk = max(piece.rfind(b"\n"), piece.rfind(b"\r"))
        if brk >= 0:
            return start + brk + 1
        end = start
    return 0


def _text_end(data, end: int | None = None) -> int:
    """Where the text before ``end`` (the end of ``data``) stops, without trailing whitespace.

    Read from the end in pieces, so a hostile run of whitespace costs its length once.
    """
    end = len(data) if end is None else end
    while end > 0:
        start = max(0, end - 65536)
        kept = len(bytes(data[start:end]).rstrip())
        if kept:
            return start + kept
        end = start
    return 0


def _grammar_error(data, start: int, path) -> StlFormatError:
    """The first departure from the ASCII STL grammar at or after facet boundary ``start``.

    Token by token, in Python: only called for a file already known to be bad, from
    the start of the chunk where the fast parser found the problem.
    """
    def error(offset: int, problem: str) -> StlFormatError:
        return StlFormatError(f"line {_line_number(data, offset)}: {problem}", path)

    tokens = _TOKEN.finditer(data, start)
    while True:
        for index, want in enumerate(_FACET_TOKENS):
            token = next(tokens, None)
            if token is None:
                expected = "'facet' or 'endsolid'" if index == 0 else _expected(want)
                return error(
                    _text_end(data),
                    f"expected {expected}, found the end of the file: the file is truncated",
                )
            word = token.group()
            if index == 0 and word.lower() == b"endsolid":
                line_end = _LINE_BREAK.search(data, token.end())
                after = _TOKEN.search(data, line_end.end()) if line_end else None
                if after is None:
                    return StlFormatError("malformed ASCII STL", path)  # fast path disagrees
                hint = " (one solid per file)" if after.group().lower() == b"solid" else ""
                return error(
                    after.start(),
                    f"expected the end of the file after 'endsolid', found {_shown(after.group())}{hint}",
                )
            problem = _token_problem(want, word)
            if problem:
                return error(token.start(), problem)


def _expected(want) -> str:
    if isinstance(want, bytes):
        return repr(want.decode())
    what, axis = want
    if what == "normal":
        return f"the {axis} component of the normal"
    return f"the {axis} coordinate of {what}"


def _token_problem(want, word: bytes) -> str | None:
    """What is wrong with ``word`` where the grammar expects ``want``, if anything."""
    is_number = _NUMBER_TOKEN.match(word) is not None
    if isinstance(want, bytes):
        if word.lower() == want:
            return None
        hint = ""
        if is_number:
            hint = " (one number too many)" if want in (b"vertex", b"endloop", b"outer") else " (a stray number)"
        return f"expected {_expected(want)}, found {_shown(word)}{hint}"
    if not is_number:
        hint = (
            " (a number is missing)" if word.lower() in _KEYWORDS
            else " (not a number in full: digits, one point, an optional exponent)"
        )
        return f"expected {_expected(want)}, found {_shown(word)}{hint}"
    value = abs(float(word))
    if value == np.inf:
        return f"the number {_shown(word)} is too large to represent"
    limit = _FLOAT32_MAX if want[0] == "normal" else COORDINATE_LIMIT
    if value > limit:
        reason = (
            "does not fit in a 32-bit float" if want[0] == "normal"
            else f"is beyond +-{COORDINATE_LIMIT:.0e} (1000 km in mm): no patient model is that "
            "large; the STL is corrupt or its units are wrong"
        )
        return f"{_expected(want)} is {_shown(word)}, which {reason}"
    return None


def parse_ascii_stl(data: bytes | bytearray | memoryview, path=None) -> StlMesh:
    """Parse ASCII STL text into a mesh (normals as written, attributes zero).

    The grammar, keywords in any case, tokens separated by any whitespace::

        solid [name]
          facet normal nx ny nz
            outer loop
              vertex x y z      (exactly three)
            endloop
          endfacet              (one or more facets)
        endsolid [name]

    Every number is written in full (``-1.5``, ``2.``, ``.5``, ``1e-3``); ``nan``,
    ``inf``, ``0x10``, ``1_000`` and numbers too large to represent are refused,
    as are vertex coordinates beyond :data:`COORDINATE_LIMIT`, an STL without
    facets, and one whose every triangle has zero area.

    The text is matched with one regular expression per chunk and its numbers
    converted together; only a bad file is walked token by token, to say where.

    Raises
    ------
    StlFormatError
        ``line N: expected ..., found ...`` for the first departure from the
        grammar, or what is wrong with the model as a whole.
    """
    if not isinstance(data, (bytes, mmap.mmap)):
        data = bytes(data)
    if _BINARY_BYTES.search(data, 0, 4096) is not None:
        problem = "starts with 'solid' but holds binary data, not ASCII STL text"
        if len(data) >= PREAMBLE_SIZE:
            count = declared_triangle_count(data)
            problem += (
                f"; as a binary STL its size ({len(data)} bytes) does not match the "
                f"{count} triangles its header declares ({binary_stl_size(count)} bytes)"
            )
        raise StlFormatError(problem, path)
    head = _SOLID.match(data)
    if head is None:
        first = _TOKEN.search(data)
        where = _line_number(data, first.start()) if first else 1
        found = _shown(first.group()) if first else "nothing"
        raise StlFormatError(
            f"line {where}: expected 'solid [name]', found {found}: not an ASCII STL", path
        )
    check_memory(len(data), "parsing the ASCII STL", path, StlFormatError)
    # 'endsolid' is the first such token on the last line that is not blank (it may
    # follow the last 'endfacet' there); what follows on its line is its name.
    text_end = _text_end(data)
    end = _ENDSOLID.search(data, max(head.end(), _last_line_start(data, text_end)), text_end)
    ended = end is not None
    # The facets end at their last token: a match attempted in whitespace that no token
    # follows would be retried at every byte of it (quadratic in a hostile run of spaces).
    body_end = _text_end(data, end.start()) if ended else text_end
    parts, start = [], head.end()
    while start < body_end:
        stop = body_end
        if body_end - start > _TEXT_CHUNK:
            end = _FACET_END.search(data, start + _TEXT_CHUNK, body_end)
            stop = end.end() if end else body_end
        found = list(chain.from_iterable(_FACET.findall(data, start, stop)))
        if any(found[12::13]):
            raise _grammar_error(data, start, path)
        del found[12::13]
        numbers = np.fromiter(map(float, found), dtype=np.float64, count=len(found)).reshape(-1, 12)
        if not (
            np.abs(numbers[:, 3:]).max(initial=0.0) <= COORDINATE_LIMIT
            and np.abs(numbers[:, :3]).max(initial=0.0) <= _FLOAT32_MAX
        ):
            raise _grammar_error(data, start, path)
        parts.append(numbers.astype(np.float32))
        last, start = start, stop
    if not ended:
        raise _grammar_error(data, last if parts else head.end(), path)
    if not parts:
        raise StlFormatError("contains no triangles (no 'facet' between 'solid' and 'endsolid')", path)
    values = parts[0] if len(parts) == 1 else np.concatenate(parts)
    del parts
    mesh = StlMesh(
        triangles=values[:, 3:].reshape(-1, 3, 3),
        normals=values[:, :3],
        attributes=np.zeros(len(values), dtype=np.uint16),
        header=None,
    )
    _check_area(mesh.triangles, path)
    return mesh


def parse_stl(data: bytes | bytearray | memoryview, path=None) -> StlMesh:
    """Parse binary or ASCII STL, deciding by the binary size rule first."""
    if looks_like_ascii_stl(data):
        return parse_ascii_stl(data, path)
    return parse_binary_stl(data, path)


def unit_normals(triangles: np.ndarray) -> np.ndarray:
    """Right-handed unit normals ``(n, 3)`` float32 of ``(n, 3, 3)`` triangles.

    Computed from the vertices as float32, i.e. as a binary STL stores them, so
    each normal is that of the triangle in the file.  Degenerate triangles get a
    zero normal, which STL readers accept.
    """
    tri = np.asarray(triangles, dtype=np.float32)
    x0, y0, z0 = tri[:, 0, 0], tri[:, 0, 1], tri[:, 0, 2]
    ax, ay, az = tri[:, 1, 0] - x0, tri[:, 1, 1] - y0, tri[:, 1, 2] - z0
    bx, by, bz = tri[:, 2, 0] - x0, tri[:, 2, 1] - y0, tri[:, 2, 2] - z0
    normals = np.empty((tri.shape[0], 3), dtype=np.float32)
    nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    length = np.sqrt(nx * nx + ny * ny + nz * nz)
    length[length == 0] = np.inf  # zero normal for a degenerate triangle
    np.divide(nx, length, out=normals[:, 0])
    np.divide(ny, length, out=normals[:, 1])
    np.divide(nz, length, out=normals[:, 2])
    return normals


def _check_header(header: bytes) -> None:
    if len(header) > HEADER_SIZE or header.lstrip()[:5].lower() == b"solid":
        raise ValueError("STL header must be at most 80 bytes and not start with 'solid'")


def _stl_records(out, count: int, header: bytes) -> np.ndarray:
    """Write header and count into the binary STL buffer ``out``; return its record view."""
    preamble = np.frombuffer(out, dtype=np.uint8, count=PREAMBLE_SIZE)
    preamble[:HEADER_SIZE] = np.frombuffer(header.ljust(HEADER_SIZE, b" "), dtype=np.uint8)
    preamble[HEADER_SIZE:] = np.frombuffer(np.uint32(count).astype("<u4").tobytes(), dtype=np.uint8)
    return np.frombuffer(out, dtype=RECORD_DTYPE, count=count, offset=PREAMBLE_SIZE)


#: Triangles per block when STL records are filled: the block's temporaries stay in cache.
_BLOCK = 1 << 16


def _fill_records(records: np.ndarray, vertices_of) -> None:
    """Fill STL records block by block from ``vertices_of(start, stop)`` ((b, 3, 3) float32).

    Each block is stored and given its unit normals while it is in cache.
    """
    records["attribute"] = 0
    for start in range(0, len(records), _BLOCK):
        stop = min(start + _BLOCK, len(records))
        part = vertices_of(start, stop)
        records["vertices"][start:stop] = part
        records["normal"][start:stop] = unit_normals(part)


def binary_stl_bytes(triangles: np.ndarray, header: bytes = PROJECT_HEADER) -> bytearray:
    """Encode ``(n, 3, 3)`` triangles as binary STL with recomputed unit normals.

    The records are written straight into the one output buffer, and normals are
    computed in blocks, so a 2-million-triangle mesh costs its 100 MB of STL and
    little more.  The header is padded with spaces to 80 bytes; it must not start
    with "solid" and must never carry patient-identifying text.
    """
    tri = np.asarray(triangles)
    if tri.ndim != 3 or tri.shape[1:] != (3, 3):
        raise ValueError(f"triangles must have shape (n, 3, 3), not {tri.shape}")
    _check_header(header)
    if not _all_finite(tri):
        raise ValueError("triangles contain NaN or infinite coordinates")
    out = bytearray(binary_stl_size(len(tri)))
    records = _stl_records(out, len(tri), header)
    _fill_records(records, lambda start, stop: tri[start:stop].astype(np.float32))
    return out


def binary_stl_from_mesh(points: np.ndarray, faces: np.ndarray, header: bytes = PROJECT_HEADER) -> np.ndarray:
    """Encode an indexed mesh as binary STL with recomputed unit normals.

    ``points`` is ``(m, 3)`` (any float type), ``faces`` ``(n, 3)`` indices into it.
    Each block of triangles is gathered where it is stored, so nothing of the
    size of the whole mesh exists but the STL itself.

    Returns
    -------
    numpy.ndarray
        The STL bytes as a ``uint8`` array (a buffer: pass it where bytes go).
    """
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (n, 3), not {faces.shape}")
    _check_header(header)
    vertices = np.asarray(points, dtype=np.float32)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"points must have shape (m, 3), not {vertices.shape}")
    if not _all_finite(vertices):
        raise ValueError("points contain NaN or infinite coordinates")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError("faces refer to points that do not exist")
    out = np.empty(binary_stl_size(len(faces)), dtype=np.uint8)  # no zero-filling pass
    records = _stl_records(out, len(faces), header)
    _fill_records(records, lambda start, stop: np.take(vertices, faces[start:stop], axis=0))
    return out


def map_whole_file(file) -> mmap.mmap:
    """A read-only memory map of a whole file that is about to be read in full.

    ``file`` is an open binary file, or a path, which is then opened with
    :func:`files.open_input` (only a regular file; :class:`StlFormatError` else).
    On Linux the pages are mapped up front (``MAP_POPULATE``): one call instead
    of a page fault per 64 kB as they are touched.  That halves the time to
    write a 100 MB model out of the mapping, and the check that runs alongside
    on another thread never waits for a fault either.
    """
    if not hasattr(file, "fileno"):
        with open_input(file, StlFormatError) as stream:
            return map_whole_file(stream)
    if hasattr(mmap, "MAP_POPULATE"):
        return mmap.mmap(
            file.fileno(), 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ
        )
    return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)


def read_stl_file(path, error: type[EncapsulatedSTLError] = StlFormatError) -> bytes | mmap.mmap:
    """The bytes of an STL file; large files are memory-mapped, not read.

    Mapping a 100 MB model costs nothing until its pages are touched, and lets it
    be validated and written out without a copy in memory.

    Raises
    ------
    StlFormatError
        If the file is missing, unreadable, or not a regular file (a directory,
        a FIFO or a device is refused at once, before anything is read).
    """
    try:
        with open_input(path, error) as stream:
            if os.fstat(stream.fileno()).st_size < MAP_THRESHOLD:
                return stream.read()
            return map_whole_file(stream)
    # ValueError: a file emptied between its size and the mapping
    except (OSError, ValueError) as failure:
        raise error(f"cannot read: {getattr(failure, 'strerror', None) or failure}", path) from None


def binary_stl_for_encapsulation(data, path=None):
    """The bytes to encapsulate for STL file content ``data``.

    Binary STL is returned unchanged, byte for byte (Supplement 205 aims to
    preserve the file exactly as manufacturing devices use it); it is validated
    once, where it is encapsulated (:class:`sop.EncapsulatedSTL`), not here too.
    ASCII STL, which the standard does not allow inside DICOM, is parsed,
    validated and converted to binary with this project's header and recomputed
    unit normals.

    Returns
    -------
    (data, converted):
        The binary bytes and whether they were converted from ASCII.
    """
    if not looks_like_ascii_stl(data):
        _checked_count(data, path)  # size and count only: costs nothing, fails early
        return data, False
    return binary_stl_bytes(parse_ascii_stl(data, path).triangles), True


def declared_triangle_count(data) -> int:
    """The triangle count in a binary STL's header (no validation)."""
    return int(np.frombuffer(data, dtype="<u4", count=1, offset=HEADER_SIZE)[0])


def rescale_binary_stl(data: bytes | memoryview, factor: float, path=None) -> bytes:
    """Binary STL with every vertex multiplied by ``factor`` (a unit conversion).

    Header, normals (unchanged by a uniform positive scale) and attribute bytes are
    kept as they are.
    """
    mesh = parse_binary_stl(data, path)
    out = bytearray(data)
    records = np.frombuffer(out, dtype=RECORD_DTYPE, offset=PREAMBLE_SIZE)
    scaled = mesh.triangles.astype(np.float64) * float(factor)
    if np.abs(scaled).max(initial=0.0) > COORDINATE_LIMIT:
        raise StlFormatError(
            f"scaling by {factor} gives coordinates beyond +-{COORDINATE_LIMIT:.0e}; "
            "choose larger units",
            path,
        )
    records["vertices"] = scaled
    return bytes(out)
