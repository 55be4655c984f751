"""Triangles to an indexed mesh whose identical vertices are one shared point.

An STL file stores every triangle with its own three vertices, so a closed surface
lists each point about six times.  Viewers and mesh filters want each point once,
with the triangles referring to it by index (VTK's polydata, trimesh's
``(vertices, faces)``); without that, normals cannot be averaged, the surface has
no connectivity and it takes six times the memory.  Here vertices are merged only
when their coordinates are identical: no tolerance, and the coordinates are not
changed (the one exception: -0.0 becomes +0.0, which compares equal to it).

The work is a hash table in numpy, with no sorting.  Each vertex's coordinate
bytes are hashed; the hash picks a slot in a table of twice as many slots as
vertices, which holds -1 (empty) or the number of a point.  A vertex reading an
empty slot claims it for a new point; one reading a number compares its bytes with
that point's: equal, it is that point; different (another point was hashed to the
same slot), it tries the next slot, in a few rounds over the few percent
concerned.  Vertices are compared by all their bytes, never by hash alone, so
two different points are never merged, whatever the hash does.

Vertices go through in blocks, so that the temporary arrays stay small and in the
processor's cache.  A point's six uses are mostly close together in an STL, so each
block is first reduced to its distinct points with a small table of its own (in
cache), and only those look up and claim slots in the large table (out of cache).
On a 2.3-million-triangle skull this takes about a third of the time of VTK's
``vtkSTLReader`` reading the same STL (which merges points with a point locator).
"""

from __future__ import annotations

import numpy as np

# 64-bit odd multipliers (the golden ratio's, MurmurHash3's and SplitMix64's
# constants): multiplication carries every low bit into the high bits.
_MIX_WORDS = (
    np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x94D049BB133111EB)
)
_MIX = np.uint64(0xBF58476D1CE4E5B9)
#: Triangles per block: 98304 vertices, whose words (1.2 MB) and table of their
#: own (2 to 4 slots per vertex, int32: 1 MB) stay in a processor's level-2 cache.
_BLOCK = 1 << 15


def merge_identical_vertices(
    triangles: np.ndarray, *, faces: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Points shared by the triangles that meet there, and the triangles as indices.

    Parameters
    ----------
    triangles:
        ``(n, 3, 3)`` vertex coordinates, one ``(3, 3)`` row of three vertices per
        triangle, float32 (as stored in STL; a strided view into the STL records is
        read without a copy of its own) or float64.  Any coordinate system and unit:
        they are compared, never changed.
    faces:
        Optional C-contiguous ``(n, 3)`` int64 array to write the faces into, for
        example a numpy view of a VTK array, which then holds them without a copy.

    Returns
    -------
    points:
        ``(p, 3)`` coordinates of the distinct vertices, in the dtype, coordinate
        system and units of ``triangles``, numbered about in the order the
        triangles first use them; no two rows are equal.
    faces:
        ``(n, 3)`` int64 indices into ``points`` (VTK's vtkIdType), so that
        ``points[faces]`` equals ``triangles`` (-0.0 read as +0.0).  Degenerate
        triangles are kept: a triangle with two identical vertices has two equal
        indices.

    Raises
    ------
    ValueError
        If ``triangles`` is not ``(n, 3, 3)``, or a coordinate is NaN or infinite
        (a NaN equals nothing, not even itself, so it cannot be merged).
    """
    triangles = np.asanyarray(triangles)
    if triangles.ndim != 3 or triangles.shape[1:] != (3, 3):
        raise ValueError(f"triangles must be an (n, 3, 3) array, not {triangles.shape}")
    if triangles.dtype not in (np.float32, np.float64):
        triangles = triangles.astype(np.float64)
    if faces is None:
        faces = np.empty((triangles.shape[0], 3), np.int64)
    elif faces.shape != (triangles.shape[0], 3) or faces.dtype != np.int64 or not faces.flags.c_contiguous:
        raise ValueError(
            f"faces must be a C-contiguous ({triangles.shape[0]}, 3) int64 array, "
            f"not {faces.shape} {faces.dtype}"
        )
    if triangles.shape[0] == 0:
        return np.zeros((0, 3), triangles.dtype), faces
    if triangles.strides[2] != triangles.itemsize:
        triangles = np.ascontiguousarray(triangles)
    points = _points(_shared_points(triangles, faces.reshape(-1)))
    if not np.isfinite(points).all():
        # Each coordinate is in some point, so this finds every NaN and infinity
        # while looking at a sixth of the values.
        bad_points = np.flatnonzero(~np.isfinite(points).all(axis=1))
        bad_triangle = int(np.flatnonzero(np.isin(faces, bad_points).any(axis=1))[0])
        raise ValueError(
            f"triangle {bad_triangle} has a NaN or infinite vertex coordinate; "
            "vertices can be merged only when every coordinate is a number"
        )
    return points, faces


def _shared_points(triangles: np.ndarray, numbers: np.ndarray) -> tuple[np.ndarray, ...]:
    """The words of each distinct point; each vertex's point number into ``numbers``.

    Points are numbered in the order the blocks find them, so the numbering
    follows the order of the vertices (within a block, the order of the vertices
    that numpy's writes let stay in the block's table).
    """
    count = triangles.shape[0] * 3
    bits = _table_bits(count)
    buffers = _word_buffers(triangles.dtype, min(_BLOCK, triangles.shape[0]) * 3)
    block_bits = _table_bits(buffers[0].size)
    # int32 when it can: half the memory, and half the table's cache misses
    table = np.full(1 << bits, -1, np.int32 if count < 2**31 else np.int64)
    block_table = np.empty(1 << block_bits, np.int32)
    # Room for every vertex being a point of its own; only the pages written to
    # (those of the points found) take memory.
    point_words = tuple(np.empty(count, buffer.dtype) for buffer in buffers)
    points = 0
    for first in range(0, triangles.shape[0], _BLOCK):
        block = _coordinate_words(triangles[first:first + _BLOCK], buffers)
        hashed = _hash(block)
        # the block's table takes the hash bits just below those of the large one
        block_slot = hashed >> np.uint64(64 - bits - block_bits)
        block_slot &= np.uint64(block_table.size - 1)
        block_table.fill(-1)
        representative = _block_representatives(block_table, block_slot.view(np.int64), block)
        distinct = np.flatnonzero(representative == np.arange(representative.size))
        slot = hashed[distinct]
        slot >>= np.uint64(64 - bits)
        number = np.empty(representative.size, np.int64)
        number[distinct], points = _number_points(
            table, slot.view(np.int64), tuple(word[distinct] for word in block), point_words, points
        )
        np.take(number, representative, out=numbers[3 * first:3 * first + representative.size])
    return tuple(word[:points] for word in point_words)


def _word_buffers(dtype, size: int) -> tuple[np.ndarray, ...]:
    """Arrays for the words of ``size`` vertices: x and y as one uint64 and z as
    a uint32 for float32 coordinates, one uint64 each for float64."""
    if dtype == np.float32:
        return np.empty(size, np.uint64), np.empty(size, np.uint32)
    return tuple(np.empty(size, np.uint64) for _ in range(3))


def _coordinate_words(triangles: np.ndarray, buffers) -> tuple[np.ndarray, ...]:
    """The bytes of the triangles' vertices, in vertex order, in (the start of) ``buffers``.

    -0.0 is written as +0.0 so that the two merge, as they compare equal.  The
    copy reads straight from a strided view of the STL records.
    """
    size = triangles.shape[0] * 3
    words = tuple(buffer[:size] for buffer in buffers)
    shape = (triangles.shape[0], 3, 1)
    if len(words) == 2:
        np.copyto(words[0].reshape(shape), triangles[:, :, :2].view(np.uint64), casting="unsafe")
        np.copyto(words[1].reshape(shape), triangles[:, :, 2:].view(np.uint32), casting="unsafe")
        halves = (words[0].view(np.uint32), words[1])
        sign = np.uint32(0x80000000)
    else:
        coordinates = triangles.view(np.uint64)
        for axis, word in enumerate(words):
            np.copyto(word.reshape(shape), coordinates[:, :, axis:axis + 1], casting="unsafe")
        halves = words
        sign = np.uint64(0x8000000000000000)
    for half in halves:
        negative_zero = half == sign
        if negative_zero.any():
            half[negative_zero] = 0
    return words


def _table_bits(count: int) -> int:
    """log2 of a table size of two to four slots per vertex (linear probing stays short)."""
    return max(int(count - 1).bit_length() + 1, 4)


def _block_representatives(table, slot, vertices) -> np.ndarray:
    """For each vertex of a block, the position of one vertex with the same bytes.

    ``table`` is empty (-1); ``slot`` each vertex's slot in it.  Every vertex
    writes its position into its slot and reads back the one that stayed (numpy
    keeps one of several writes to one place): equal bytes, that is its
    representative; otherwise it probes the next slots, claiming an empty one
    the same way.
    """
    mask = table.size - 1
    position = np.arange(slot.size, dtype=table.dtype)
    table[slot] = position
    representative = np.take(table, slot).astype(np.intp)
    missed = np.flatnonzero(~_equal(vertices, representative, vertices))
    pending, slot = position[missed], slot[missed]
    mine = tuple(word[missed] for word in vertices)
    while pending.size:
        slot += 1
        slot &= mask
        holder = np.take(table, slot)
        empty = np.flatnonzero(holder < 0)
        if empty.size:
            table[slot[empty]] = pending[empty]
            holder[empty] = np.take(table, slot[empty])
        same = _equal(vertices, holder, mine)
        representative[pending[same]] = holder[same]
        missed = np.flatnonzero(~same)
        pending, slot = pending[missed], slot[missed]
        mine = tuple(word[missed] for word in mine)
    return representative


def _number_points(table, slot, vertices, point_words, points: int) -> tuple[np.ndarray, int]:
    """Point numbers of distinct ``vertices``, found in ``table`` or added to it.

    ``slot`` is each vertex's slot in the large table; ``points`` the number of
    points so far.  Returns the numbers (int64) and the new number of points.

    A vertex reading an empty slot claims it by writing a token of its own
    (-2 - its position) and reading back which token stayed; the winner's point
    gets the next number, in the slot and in ``point_words``.  Then every vertex
    compares its words with those of the point numbered in its slot: the same
    bytes, that is its point; otherwise it tries the next slot.
    """
    mask = table.size - 1
    numbers = np.empty(slot.size, np.int64)
    which = np.arange(slot.size)
    while which.size:
        holder = np.take(table, slot)
        empty = np.flatnonzero(holder < 0)
        if empty.size:
            claimed = slot[empty]
            token = (-2 - which[empty]).astype(table.dtype)
            table[claimed] = token
            winner = empty[np.take(table, claimed) == token]
            new = slice(points, points + winner.size)
            table[slot[winner]] = np.arange(new.start, new.stop)
            for point_word, vertex_word in zip(point_words, vertices):
                point_word[new] = vertex_word[winner]
            points = new.stop
            holder[empty] = np.take(table, claimed)
        same = _equal(point_words, holder, vertices)
        numbers[which[same]] = holder[same]
        missed = np.flatnonzero(~same)
        which, slot = which[missed], slot[missed]
        slot += 1
        slot &= mask
        vertices = tuple(word[missed] for word in vertices)
    return numbers, points


def _hash(words: tuple[np.ndarray, ...]) -> np.ndarray:
    """A 64-bit hash of each vertex's words, its high bits well mixed.

    Each word times an odd constant, xor-ed, then a step of SplitMix64's
    finaliser: the shift folds the high bits into the low ones and the last
    multiplication carries all of them into the high bits that pick the slots.
    Without the fold, coordinates on a regular grid (whole or half millimetres)
    leave most low bits zero and crowd into few slots: ten times slower.
    """
    hashed = np.multiply(words[0], _MIX_WORDS[0], dtype=np.uint64)
    for word, mix in zip(words[1:], _MIX_WORDS[1:]):
        hashed ^= np.multiply(word, mix, dtype=np.uint64)
    hashed ^= hashed >> np.uint64(31)
    hashed *= _MIX
    return hashed


def _equal(words, index: np.ndarray, vertices) -> np.ndarray:
    """True where the vertex words ``vertices`` equal ``words`` at ``index``."""
    index = index.astype(np.intp, copy=False)
    equal = np.take(words[0], index) == vertices[0]
    for word, vertex_word in zip(words[1:], vertices[1:]):
        equal &= np.take(word, index) == vertex_word
    return equal


def _points(point_words: tuple[np.ndarray, ...]) -> np.ndarray:
    """``(p, 3)`` coordinates rebuilt from the points' words."""
    count = point_words[0].size
    if len(point_words) == 2:
        points = np.empty((count, 3), np.float32)
        points[:, :2] = point_words[0].view(np.float32).reshape(-1, 2)
        points[:, 2] = point_words[1].view(np.float32)
    else:
        points = np.empty((count, 3), np.float64)
        for axis, word in enumerate(point_words):
            points[:, axis] = word.view(np.float64)
    return points
