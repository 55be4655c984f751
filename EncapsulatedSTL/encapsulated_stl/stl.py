"""Binary and ASCII STL bytes <-> numpy triangle arrays.

Binary STL layout [STL 1989]: an 80-byte header, a little-endian uint32 triangle
count, then one 50-byte record per triangle: normal (3 x float32), three vertices
(9 x float32) and a uint16 "attribute byte count".  STL carries no units; the
Encapsulated STL object says what they are (Measurement Units Code Sequence).

Everything here is vectorised: a mesh is an ``(n, 3, 3)`` float32 array of triangle
vertices, parsed from the bytes without copying them.
"""

from __future__ import annotations

import mmap
import os
import re
import threading
from dataclasses import dataclass

import numpy as np

from .errors import StlFormatError

HEADER_SIZE = 80
PREAMBLE_SIZE = HEADER_SIZE + 4
RECORD_SIZE = 50
#: Files at least this large are memory-mapped rather than read.
MAP_THRESHOLD = 16 * 1024 * 1024

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
        """Minimum and maximum vertex coordinates, each ``(3,)`` float64."""
        if self.triangle_count == 0:
            nan = np.full(3, np.nan)
            return nan, nan.copy()
        flat = self.triangles.reshape(-1, 3)
        return flat.min(axis=0).astype(np.float64), flat.max(axis=0).astype(np.float64)


def _all_finite(values: np.ndarray) -> bool:
    # A float64 sum of float32 values cannot overflow (3.4e38 x 4e9 x 12 << 1.8e308),
    # so it is finite exactly when every value is: one fast pass over the strided
    # records, where np.isfinite would take three times as long.
    return bool(np.isfinite(values.sum(dtype=np.float64)))


def _check_finite(values: np.ndarray, what: str, path) -> None:
    if _all_finite(values):
        return
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(np.argmin(finite.reshape(finite.shape[0], -1).all(axis=1)))
        raise StlFormatError(
            f"triangle {bad} has a {what} that is NaN or infinite; the STL is corrupt",
            path,
        )


def parse_binary_stl(
    data: bytes | bytearray | memoryview, path=None, *, check_values: bool = True
) -> StlMesh:
    """Parse and fully validate binary STL bytes without copying them.

    ``check_values=False`` skips only the NaN/Inf scan, the one step that reads
    every byte, for a caller that runs it alongside other work
    (:class:`ValueCheck`) and waits for it before anything is published.

    Raises
    ------
    StlFormatError
        If the data is shorter than the 84-byte preamble, the declared triangle
        count does not match the size, or any coordinate is NaN or infinite.
        The count is checked against the size before anything is allocated, so
        a huge declared count in a tiny file costs nothing.
    """
    size = len(data)
    if size < PREAMBLE_SIZE:
        raise StlFormatError(
            f"only {size} bytes; a binary STL has at least an 80-byte header and "
            "a 4-byte triangle count",
            path,
        )
    count = int(np.frombuffer(data, dtype="<u4", count=1, offset=HEADER_SIZE)[0])
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


def check_binary_stl_values(data, path=None) -> None:
    """Raise :class:`StlFormatError` if a binary STL holds a NaN or infinite float.

    ``data`` must have passed the size checks of :func:`parse_binary_stl`.
    """
    count = declared_triangle_count(data)
    floats = np.frombuffer(data, dtype=_FLOATS_DTYPE, count=count, offset=PREAMBLE_SIZE)["floats"]
    if not _all_finite(floats):
        records = np.frombuffer(data, dtype=RECORD_DTYPE, count=count, offset=PREAMBLE_SIZE)
        _check_finite(records["vertices"], "vertex", path)
        _check_finite(records["normal"], "normal", path)


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


_FLOAT = rb"([-+0-9.eEinfINFaA]+)"
_VERTEX = re.compile(rb"vertex\s+" + rb"\s+".join([_FLOAT] * 3))
_FACET = re.compile(rb"facet\s+normal\s+" + rb"\s+".join([_FLOAT] * 3))


def looks_like_ascii_stl(data) -> bool:
    """True when the data starts like an ASCII STL and is not a valid binary STL size.

    Many binary STL writers put "solid" at the start of the 80-byte header, so the
    size rule (84 + 50 n) decides first.
    """
    head = bytes(memoryview(data)[:HEADER_SIZE]).lstrip()
    if not head[:5].lower() == b"solid":
        return False
    if len(data) >= PREAMBLE_SIZE:
        count = int(np.frombuffer(data, dtype="<u4", count=1, offset=HEADER_SIZE)[0])
        if len(data) == binary_stl_size(count):
            return False
    return True


def parse_ascii_stl(data: bytes | bytearray | memoryview, path=None) -> StlMesh:
    """Parse ASCII STL text into a mesh (normals as written, attributes zero)."""
    text = bytes(data)
    stripped = text.strip()
    if not stripped.lower().startswith(b"solid"):
        raise StlFormatError("not an ASCII STL: it does not start with 'solid'", path)
    if not re.search(rb"endsolid", stripped[-HEADER_SIZE * 4 :], re.IGNORECASE):
        raise StlFormatError(
            "truncated ASCII STL: no 'endsolid' at the end of the file", path
        )
    vertices = _VERTEX.findall(text)
    facets = _FACET.findall(text)
    if len(vertices) != 3 * len(facets):
        raise StlFormatError(
            f"malformed ASCII STL: {len(facets)} facets but {len(vertices)} vertices "
            "(each facet needs exactly 3)",
            path,
        )
    loops = len(re.findall(rb"\bendloop\b", text))
    if loops != len(facets) or len(re.findall(rb"\bendfacet\b", text)) != len(facets):
        raise StlFormatError(
            "malformed ASCII STL: 'facet'/'endloop'/'endfacet' keywords do not pair up",
            path,
        )
    try:
        triangles = np.array(vertices, dtype=np.float64).reshape(-1, 3, 3)
        normals = np.array(facets, dtype=np.float64).reshape(-1, 3)
    except ValueError as exc:
        raise StlFormatError(f"malformed number in ASCII STL: {exc}", path) from None
    if np.abs(triangles).max(initial=0.0) > np.finfo(np.float32).max:
        raise StlFormatError("a vertex coordinate does not fit in float32", path)
    mesh = StlMesh(
        triangles=triangles.astype(np.float32),
        normals=normals.astype(np.float32),
        attributes=np.zeros(len(triangles), dtype=np.uint16),
        header=None,
    )
    _check_finite(mesh.triangles, "vertex", path)
    _check_finite(mesh.normals, "normal", path)
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


def map_whole_file(path) -> mmap.mmap:
    """A read-only memory map of a whole file that is about to be read in full.

    On Linux the pages are mapped up front (``MAP_POPULATE``): one call instead
    of a page fault per 64 kB as they are touched.  That halves the time to
    write a 100 MB model out of the mapping, and the check that runs alongside
    on another thread never waits for a fault either.
    """
    with open(path, "rb") as stream:
        if hasattr(mmap, "MAP_POPULATE"):
            return mmap.mmap(
                stream.fileno(), 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ
            )
        return mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)


def read_stl_file(path) -> bytes | mmap.mmap:
    """The bytes of an STL file; large files are memory-mapped, not read.

    Mapping a 100 MB model costs nothing until its pages are touched, and lets it
    be validated and written out without a copy in memory.

    Raises
    ------
    StlFormatError
        If the file is missing, a directory, or unreadable.
    """
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size < MAP_THRESHOLD:
                return stream.read()
        return map_whole_file(path)
    except FileNotFoundError:
        raise StlFormatError("no such file", path) from None
    except IsADirectoryError:
        raise StlFormatError("is a directory, not an STL file", path) from None
    except (OSError, ValueError) as error:
        raise StlFormatError(f"cannot read: {getattr(error, 'strerror', None) or error}", path) from None


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
    if np.abs(scaled).max(initial=0.0) > np.finfo(np.float32).max:
        raise StlFormatError(f"scaling by {factor} overflows float32 coordinates", path)
    records["vertices"] = scaled
    return bytes(out)
