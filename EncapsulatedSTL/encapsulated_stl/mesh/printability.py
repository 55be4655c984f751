"""Would this mesh print?  The checks a 3D-printing lab makes before slicing a model.

A printer (its slicer software) needs a closed, manifold, consistently oriented
surface that does not cross itself: only then is "inside" defined.  From
``(n, 3, 3)`` triangles (identical vertices merged by
:func:`~.shared_vertices.merge_identical_vertices`: no tolerance), this module
counts:

- **boundary edges**: edges of one triangle only (a hole: the surface is not closed);
- **non-manifold edges**: edges of three or more triangles;
- **non-manifold vertices**: vertices where two or more fans of triangles meet at a
  point only (a bow tie);
- **inconsistent edges**: edges whose two triangles run the same way along them (a
  triangle turned over: the orientation is not consistent);
- **degenerate triangles**: a vertex used twice, or three collinear vertices (no area);
- **duplicate triangles**: the same three vertices twice;
- **self-intersections**: pairs of triangles sharing no vertex whose surfaces cross or
  overlap (a grid of cells finds the candidates; each pair is tested exactly once);
- **components**: surfaces connected through shared vertices, each with its enclosed
  volume (positive when its normals point outwards).

Edges and faces are counted with numpy; union-find and the intersection search are
compiled with numba.  Coordinates are in the model's units (the caller scales to mm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import get_num_threads, njit, prange

from .shared_vertices import merge_identical_vertices

#: Cells per axis of the self-intersection grid at most (the grid's count array stays
#: under 128 MB).
MAX_GRID_CELLS_PER_AXIS = 256


@dataclass
class Component:
    """A connected surface: its triangles, the volume it encloses (mm³ when the
    coordinates are mm; negative when its normals point inwards, as a cavity's must),
    and the winding number of the other components around it (0: it lies in the open,
    so it is an outer shell; 1: it lies in material, so it bounds a cavity)."""

    triangles: int
    volume: float
    enclosed_by: int = 0


@dataclass
class Printability:
    """What :func:`check_printability` found."""

    triangles: int
    points: int
    boundary_edges: int
    non_manifold_edges: int
    non_manifold_vertices: int
    inconsistent_edges: int
    degenerate_triangles: int
    duplicate_triangles: int
    self_intersections: int
    components: list[Component] = field(default_factory=list)
    wrongly_oriented_components: int = 0
    bounds: tuple[list[float], list[float]] = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))

    @property
    def closed(self) -> bool:
        return self.boundary_edges == 0

    @property
    def manifold(self) -> bool:
        return self.non_manifold_edges == 0 and self.non_manifold_vertices == 0

    @property
    def oriented(self) -> bool:
        """Consistently oriented, every normal pointing out of the material: outer shells
        enclose positive volumes, cavities (components inside material) negative ones."""
        return self.inconsistent_edges == 0 and self.wrongly_oriented_components == 0

    @property
    def volume(self) -> float:
        """The volume of material: shells' volumes less the cavities'."""
        return float(sum(c.volume for c in self.components))

    @property
    def problems(self) -> list[str]:
        """One phrase per reason the mesh would not print; empty when it would."""
        found = []
        for count, what in ((self.boundary_edges, "boundary edge(s): the surface is not closed"),
                            (self.non_manifold_edges, "non-manifold edge(s)"),
                            (self.non_manifold_vertices, "non-manifold vertex(es)"),
                            (self.inconsistent_edges, "edge(s) with inconsistently oriented triangles"),
                            (self.degenerate_triangles, "degenerate triangle(s)"),
                            (self.duplicate_triangles, "duplicate triangle(s)"),
                            (self.self_intersections, "self-intersecting triangle pair(s)")):
            if count:
                found.append(f"{count} {what}")
        if self.wrongly_oriented_components and not self.inconsistent_edges:
            found.append(f"{self.wrongly_oriented_components} component(s) with normals pointing into the "
                         "material, or inside two solids at once")
        return found

    @property
    def printable(self) -> bool:
        return not self.problems


def check_printability(triangles: np.ndarray) -> Printability:
    """Check a triangle soup (``(n, 3, 3)``, at least one triangle) for printing."""
    triangles = np.asarray(triangles)
    points, faces = merge_identical_vertices(triangles)
    points = np.asarray(points, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    count = len(faces)

    # degenerate: a vertex twice, or no area
    repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    corners = points[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    degenerate = repeated | ~np.any(normals != 0.0, axis=1)

    ordered = np.sort(faces, axis=1)
    ordered = ordered[np.lexsort((ordered[:, 2], ordered[:, 1], ordered[:, 0]))]
    duplicates = int(np.count_nonzero(np.all(ordered[1:] == ordered[:-1], axis=1)))

    # edges: directed k -> k+1 of every face; undirected key (low, high)
    edges = edge_pairs(faces, len(points))
    order, first, uses, way = edges
    valid = ~np.repeat(repeated, 3)  # a degenerate face's collapsed edge is no edge
    direction_sum = np.add.reduceat(way[order], first)
    boundary = int(np.count_nonzero((uses == 1) & valid[order][first]))
    non_manifold = int(np.count_nonzero(uses > 2))
    inconsistent = int(np.count_nonzero(direction_sum[uses == 2] != 0))

    # fans around each vertex (a corner is only ever joined to corners of its own
    # vertex: one root corner per fan)
    corner_roots = fan_roots(faces, len(points), edges)
    is_root = corner_roots == np.arange(len(corner_roots))
    fans_per_vertex = np.bincount(faces.reshape(-1)[is_root], minlength=len(points))
    non_manifold_vertices = int(np.count_nonzero(fans_per_vertex > 1))

    # components through shared vertices, and their enclosed volumes
    labels = component_labels(faces, len(points))
    _, component_of_face = np.unique(labels[faces[:, 0]], return_inverse=True)
    signed = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])) / 6.0
    volumes = np.bincount(component_of_face, weights=signed)
    sizes = np.bincount(component_of_face)
    grid = _Grid(points, faces, np.flatnonzero(~degenerate))
    crossings = grid.crossings()
    enclosing = grid.winding_numbers(component_of_face, len(volumes))
    inward = (volumes > 0) != (enclosing == 0)  # a shell in the open, or a cavity in material
    misplaced = (enclosing != 0) & (enclosing != 1)  # inside two solids at once, or impossible
    components = sorted((Component(int(n), float(v), int(w)) for n, v, w in zip(sizes, volumes, enclosing)),
                        key=lambda c: -abs(c.volume))
    return Printability(
        triangles=count, points=len(points), boundary_edges=boundary, non_manifold_edges=non_manifold,
        non_manifold_vertices=non_manifold_vertices, inconsistent_edges=inconsistent,
        degenerate_triangles=int(np.count_nonzero(degenerate)), duplicate_triangles=int(duplicates),
        self_intersections=int(crossings), components=components,
        wrongly_oriented_components=int(np.count_nonzero(inward | misplaced)),
        bounds=(points.min(axis=0).tolist(), points.max(axis=0).tolist()),
    )


def edge_pairs(faces: np.ndarray, point_count: int):
    """The undirected edges of a mesh, from its directed edges ``3 * face + k`` (corner k
    to corner k + 1): their order sorted by edge, where each edge's run starts, how many
    directed edges it has, and each directed edge's way (+1 from the lower point number)."""
    starts = faces.reshape(-1)
    ends = faces[:, [1, 2, 0]].reshape(-1)
    keys = np.minimum(starts, ends) * np.int64(point_count) + np.maximum(starts, ends)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    first = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    uses = np.diff(np.append(first, len(keys)))
    return order, first, uses, np.where(starts < ends, 1, -1)


def fan_roots(faces: np.ndarray, point_count: int, edges=None) -> np.ndarray:
    """For every face corner ``3 * face + k``, the first corner of its fan: the corners
    of one vertex joined across the edges exactly two triangles share.  A vertex whose
    corners have more than one root is where sheets of the surface meet at a point
    (or along an edge of three or more triangles).  ``edges``: :func:`edge_pairs`'s, if
    already made."""
    order, first, uses, _way = edges if edges is not None else edge_pairs(faces, point_count)
    pairs = first[uses == 2]
    return _corner_fans(faces, order[pairs], order[pairs + 1])


def crossing_faces(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Which faces cross another face they share no vertex with (a boolean per face)."""
    grid = _Grid(points, faces, np.flatnonzero(~degenerate_faces(points, faces)))
    found = np.zeros(len(faces), dtype=bool)
    found[grid.ids] = grid.crossing_pairs()[1]
    return found


def _coordinates(points: np.ndarray) -> np.ndarray:
    """Points as the compiled searches take them: float32 (an STL's, which they convert to
    float64 one by one, saving a copy) or float64."""
    points = np.asarray(points)
    return np.ascontiguousarray(points, dtype=np.float32 if points.dtype == np.float32 else np.float64)


def degenerate_faces(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Which faces have no area: a zero normal (a boolean per face)."""
    return _zero_normals(_coordinates(points), np.ascontiguousarray(faces, dtype=np.int64))


class CrossingSearch:
    """The faces of a mesh that cross another face (sharing no vertex with it), kept up to
    date while points move a few at a time: the faces are binned once, and after a move
    only the faces around points that ever moved are tested again, against the rest and
    among themselves.

    ``points`` and ``faces`` as in :func:`crossing_faces`; ``crossing`` is a boolean per
    face."""

    def __init__(self, points: np.ndarray, faces: np.ndarray):
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        points = _coordinates(points)
        self._grid = _Grid(points, self.faces, np.flatnonzero(~degenerate_faces(points, self.faces)))
        self.crossing = np.zeros(len(self.faces), dtype=bool)
        self.crossing[self._grid.ids] = self._grid.crossing_pairs()[1]
        self._moved = np.zeros(len(self.faces), dtype=bool)

    def move(self, points: np.ndarray, moved_faces: np.ndarray) -> np.ndarray:
        """``crossing`` for the mesh at ``points``, where only ``moved_faces`` (a boolean per
        face: those with a point that moved since the last call) may differ.

        Only pairs with a face that ever moved are tested: pairs of faces that never did
        are taken not to cross, so every face found crossing so far must have moved."""
        self._moved |= moved_faces
        points = _coordinates(points)
        moved = np.flatnonzero(self._moved)
        usable = moved[~_zero_normals(points, self.faces[moved])]
        # the moved faces against the others, binned where they still are ...
        crossing = self._grid.crossing_with(points, usable, self._moved)
        # ... and among themselves, binned where they are now
        among = _Grid(points, self.faces, usable)
        crossing[among.ids] |= among.crossing_pairs()[1]
        self.crossing = crossing
        return crossing


def drop_folded_pairs(faces: np.ndarray) -> np.ndarray:
    """The faces without pairs that are one triangle twice, facing opposite ways: a fin of
    no volume (an edge collapse on a voxel can leave one), which no printer can make."""
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    ordered = np.sort(faces, axis=1)
    order = np.lexsort((ordered[:, 2], ordered[:, 1], ordered[:, 0]))
    same = np.all(ordered[order][1:] == ordered[order][:-1], axis=1)
    if not same.any():
        return faces
    drop = np.zeros(len(faces), dtype=bool)
    for position in np.flatnonzero(same):
        a, b = order[position], order[position + 1]
        if drop[a] or drop[b]:
            continue
        # opposite orientation: b is a reversed rotation of a
        reversed_a = faces[a, ::-1]
        if any(np.array_equal(np.roll(reversed_a, shift), faces[b]) for shift in range(3)):
            drop[a] = drop[b] = True
    return faces[~drop]


def separate_sheets(points: np.ndarray, faces: np.ndarray, offset: float = 1e-2,
                    only: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The mesh with every vertex where sheets meet (several fans) split into one vertex
    per fan, each moved towards its own fan by ``offset`` of the distance to the fan's
    other corners: what was a pinch point, or an edge of four triangles, becomes two
    surfaces a hair apart, each closed and manifold.  Other vertices are untouched.

    An iso-surface passing exactly through a voxel (the voxel's value equals the
    level) touches itself there; this is how it is made printable.  ``only`` (a mask
    over the points) limits the splitting to those points; ``faces`` may then be just
    the faces around them, which hold every fan of those points.
    """
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    roots = fan_roots(faces, len(points))
    corners = faces.reshape(-1)
    is_root = roots == np.arange(len(roots))
    fans = np.bincount(corners[is_root], minlength=len(points))
    if only is not None:
        fans[~only] = 1
    if not np.any(fans > 1):
        return points, faces
    # each fan beyond a vertex's first gets a new point
    root_corners = np.flatnonzero(is_root)
    vertex = corners[root_corners]
    order = np.argsort(vertex, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    boundaries = np.concatenate(([0], np.flatnonzero(np.diff(vertex[order])) + 1))
    rank[order] = np.arange(len(order)) - np.repeat(boundaries, np.diff(np.append(boundaries, len(order))))
    extra = (rank > 0) & (fans[vertex] > 1)
    new_index = np.full(len(roots), -1, dtype=np.int64)
    new_index[root_corners[extra]] = len(points) + np.arange(np.count_nonzero(extra))
    moved = new_index[roots]
    new_corners = np.where(moved >= 0, moved, corners)
    new_points = np.concatenate([points, points[corners[root_corners[extra]]]])
    new_faces = new_corners.reshape(-1, 3)
    # every copy of a split vertex, the first one included, steps into its own fan
    split = fans[corners] > 1
    neighbour_sum = np.zeros_like(new_points)
    neighbour_count = np.zeros(len(new_points))
    for k in (1, 2):
        others = new_faces[:, [(0 + k) % 3, (1 + k) % 3, (2 + k) % 3]].reshape(-1)
        np.add.at(neighbour_sum, new_corners[split], new_points[others[split]])
        np.add.at(neighbour_count, new_corners[split], 1.0)
    targets = np.unique(new_corners[split])
    centre = neighbour_sum[targets] / neighbour_count[targets, None]
    new_points[targets] += offset * (centre - new_points[targets])
    return new_points, new_faces


# -- union-find ------------------------------------------------------------------


@njit(cache=True)
def _find(parent, item):
    root = item
    while parent[root] != root:
        root = parent[root]
    while parent[item] != root:  # path compression
        parent[item], item = root, parent[item]
    return root


@njit(cache=True)
def _union(parent, a, b):
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        if ra < rb:
            parent[rb] = ra
        else:
            parent[ra] = rb


@njit(cache=True)
def _corner_fans(faces, first_edges, second_edges):
    """Root corner of every face corner, corners joined across shared manifold edges."""
    parent = np.arange(faces.shape[0] * 3)
    for index in range(first_edges.shape[0]):
        e1, e2 = first_edges[index], second_edges[index]
        f1, k1, f2, k2 = e1 // 3, e1 % 3, e2 // 3, e2 % 3
        start1, end1 = 3 * f1 + k1, 3 * f1 + (k1 + 1) % 3
        start2, end2 = 3 * f2 + k2, 3 * f2 + (k2 + 1) % 3
        if faces[f1, k1] == faces[f2, k2]:
            _union(parent, start1, start2)
            _union(parent, end1, end2)
        else:
            _union(parent, start1, end2)
            _union(parent, end1, start2)
    roots = np.empty(parent.shape[0], dtype=np.int64)
    for corner in range(parent.shape[0]):
        roots[corner] = _find(parent, corner)
    return roots


@njit(cache=True)
def component_labels(faces, point_count):
    """For every point, the smallest point of the surface connected to it."""
    parent = np.arange(point_count)
    for face in range(faces.shape[0]):
        _union(parent, faces[face, 0], faces[face, 1])
        _union(parent, faces[face, 0], faces[face, 2])
    roots = np.empty(point_count, dtype=np.int64)
    for point in range(point_count):
        roots[point] = _find(parent, point)
    return roots


# -- self-intersections -------------------------------------------------------------


@njit(cache=True, parallel=True)
def _zero_normals(points, faces):
    found = np.zeros(faces.shape[0], dtype=np.bool_)
    for f in prange(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        # in float64 whatever the points' type, as check_printability's numpy does
        ax, ay, az = np.float64(points[a, 0]), np.float64(points[a, 1]), np.float64(points[a, 2])
        u0, u1, u2 = np.float64(points[b, 0]) - ax, np.float64(points[b, 1]) - ay, np.float64(points[b, 2]) - az
        v0, v1, v2 = np.float64(points[c, 0]) - ax, np.float64(points[c, 1]) - ay, np.float64(points[c, 2]) - az
        found[f] = u1 * v2 - u2 * v1 == 0.0 and u2 * v0 - u0 * v2 == 0.0 and u0 * v1 - u1 * v0 == 0.0
    return found


class _Grid:
    """Triangles binned in a grid of cells, for the searches that need neighbours:
    crossings between triangles, and rays for winding numbers.

    Lean, for meshes of millions of triangles: each binned triangle keeps only its
    bounding box, in float32 rounded outwards (a box is only ever a filter; the
    triangles are tested on ``points``), and is read through ``faces`` wherever its
    corners are needed.  Cells hold positions in ``ids``, the faces binned."""

    def __init__(self, points: np.ndarray, faces: np.ndarray, ids: np.ndarray):
        self.points = _coordinates(points)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self.ids = np.ascontiguousarray(ids, dtype=np.int32 if len(self.faces) < 2**31 else np.int64)
        if len(self.ids) == 0:
            return
        self.low, self.high = _face_boxes(self.points, self.faces, self.ids)
        self.origin, top = _box_bounds(self.low, self.high)
        extent = top - self.origin
        # the median edge of a sample (the cell size only sets the speed, never the answer)
        sample = self.faces[self.ids[:: max(1, len(self.ids) // 65536)]]
        edge = float(np.median(np.linalg.norm(
            self.points[sample[:, 1]].astype(np.float64) - self.points[sample[:, 0]], axis=1)))
        self.size = max(2.0 * edge, float(extent.max()) / MAX_GRID_CELLS_PER_AXIS, 1e-9)
        self.shape = np.maximum(np.ceil(extent / self.size).astype(np.int64), 1)
        self.scale = 1.0 / self.size
        # each thread bins the cells of its own slab of z, so the cells' lists come out the same
        slabs = max(1, min(get_num_threads(), int(self.shape[2])))
        counts = np.zeros(int(np.prod(self.shape)) + 1, dtype=np.int32)  # a cell holds < 2**31 faces
        _count_cell_members(self.low, self.high, self.origin, self.scale, self.shape, slabs, counts)
        total = int(counts.sum(dtype=np.int64))
        self.starts = np.cumsum(counts, out=counts) if total < 2**31 else np.cumsum(counts, dtype=np.int64)
        del counts
        self.members = np.empty(total, dtype=self.ids.dtype)
        _fill_cells(self.low, self.high, self.origin, self.scale, self.shape, slabs, self.starts, self.members)

    def crossings(self) -> int:
        """Pairs of triangles sharing no vertex that cross or overlap, each counted once."""
        return self.crossing_pairs()[0]

    def crossing_pairs(self) -> tuple[int, np.ndarray]:
        """(how many pairs cross, which of the binned triangles (positions in ``ids``) are in one)."""
        flags = np.zeros(len(self.ids), dtype=np.bool_)
        if len(self.ids) < 2:
            return 0, flags
        count = _count_crossings(self.points, self.faces, self.ids, self.low, self.high, self.origin, self.scale,
                                 self.shape, self.starts, self.members, flags)
        return int(count), flags

    def crossing_with(self, points: np.ndarray, queries: np.ndarray, left_out: np.ndarray) -> np.ndarray:
        """Which faces cross one of ``queries`` (face numbers, at their corners in ``points``):
        a boolean per face of the mesh, the crossing queries and the faces they cross set.

        Only pairs of a query and a binned face not ``left_out`` (a boolean per face) are
        tested: the binned faces must be where they were when binned, except those left
        out, and the queries among themselves need a grid of their own."""
        found = np.zeros(len(self.faces), dtype=np.bool_)
        if len(self.ids) == 0 or len(queries) == 0:
            return found
        _query_crossings(_coordinates(points), self.faces,
                         np.ascontiguousarray(queries, dtype=np.int64), left_out, self.ids, self.low, self.high,
                         self.origin, self.scale, self.shape, self.starts, self.members, found)
        return found

    def winding_numbers(self, component_of_face: np.ndarray, count: int) -> np.ndarray:
        """For each component, the winding number of the others at a point of it (a ray
        to +x from the centre of one of its triangles, counting crossings by the sign
        of their normal; another triangle is tried where a ray grazes an edge)."""
        if len(self.ids) == 0:
            return np.zeros(count, dtype=np.int64)
        component = np.ascontiguousarray(component_of_face[self.ids])
        order = np.argsort(component, kind="stable")
        first = np.searchsorted(component[order], np.arange(count + 1))
        return _winding_numbers(self.points, self.faces, self.ids, component, order, first, self.origin,
                                self.scale, self.shape, self.starts, self.members)


#: Cells of the grid handed to a thread at a time by the crossing search.
_CELL_BLOCK = 4096


@njit(cache=True, inline="always")
def _below(value):
    """The largest float32 not above ``value``."""
    rounded = np.float32(value)
    if rounded > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return rounded


@njit(cache=True, inline="always")
def _above(value):
    """The smallest float32 not below ``value``."""
    rounded = np.float32(value)
    if rounded < value:
        rounded = np.nextafter(rounded, np.float32(np.inf))
    return rounded


@njit(cache=True, parallel=True)
def _face_boxes(points, faces, ids):
    """Bounding boxes of the faces ``ids``, float32 rounded outwards."""
    low = np.empty((ids.shape[0], 3), dtype=np.float32)
    high = np.empty((ids.shape[0], 3), dtype=np.float32)
    for k in prange(ids.shape[0]):
        f = ids[k]
        for axis in range(3):
            a, b, c = points[faces[f, 0], axis], points[faces[f, 1], axis], points[faces[f, 2], axis]
            low[k, axis] = _below(min(a, b, c))
            high[k, axis] = _above(max(a, b, c))
    return low, high


@njit(cache=True)
def _box_bounds(low, high):
    """The lowest corner and the highest of all boxes (float64)."""
    origin = np.full(3, np.inf)
    top = np.full(3, -np.inf)
    for k in range(low.shape[0]):
        for axis in range(3):
            origin[axis] = min(origin[axis], low[k, axis])
            top[axis] = max(top[axis], high[k, axis])
    return origin, top


@njit(cache=True, inline="always")
def _cell_of(value, origin, scale, count):
    """The cell along one axis holding coordinate ``value`` (clamped to the grid; ``scale``:
    cells per unit, the reciprocal of the cell size, so that binning multiplies)."""
    return min(max(int(math.floor((value - origin) * scale)), 0), count - 1)


@njit(cache=True, inline="always")
def _cell_index(x, y, z, shape):
    """Cells run x fastest, as the rows of slices (and so the faces of flying edges) do."""
    return (z * shape[1] + y) * shape[0] + x


@njit(cache=True, inline="always")
def _slab(part, parts, count):
    """The cells along z of part ``part`` of ``parts``: ``range(*_slab(...))``."""
    return part * count // parts, (part + 1) * count // parts


@njit(cache=True, inline="always")
def _cells_of_box(low, high, k, origin, scale, shape, first, stop):
    """The cells box ``k`` meets within the slab ``first..stop - 1`` along z, as
    ``x0, x1, y0, y1, z0, z1`` (inclusive; ``z0 > z1`` when none)."""
    z0 = max(_cell_of(low[k, 2], origin[2], scale, shape[2]), first)
    z1 = min(_cell_of(high[k, 2], origin[2], scale, shape[2]), stop - 1)
    x0, x1 = _cell_of(low[k, 0], origin[0], scale, shape[0]), _cell_of(high[k, 0], origin[0], scale, shape[0])
    y0, y1 = _cell_of(low[k, 1], origin[1], scale, shape[1]), _cell_of(high[k, 1], origin[1], scale, shape[1])
    return x0, x1, y0, y1, z0, z1


@njit(cache=True, parallel=True)
def _count_cell_members(low, high, origin, scale, shape, slabs, counts):
    """``counts[c + 1]``: how many boxes meet cell c."""
    for part in prange(slabs):
        first, stop = _slab(part, slabs, shape[2])
        for k in range(low.shape[0]):
            x0, x1, y0, y1, z0, z1 = _cells_of_box(low, high, k, origin, scale, shape, first, stop)
            for z in range(z0, z1 + 1):
                for y in range(y0, y1 + 1):
                    for x in range(x0, x1 + 1):
                        counts[_cell_index(x, y, z, shape) + 1] += 1


@njit(cache=True, parallel=True)
def _fill_cells(low, high, origin, scale, shape, slabs, starts, members):
    """Cells as CSR: ``members[starts[c]:starts[c + 1]]`` are the boxes that meet cell c,
    in the order of the boxes."""
    for part in prange(slabs):
        first, stop = _slab(part, slabs, shape[2])
        # where each cell of the slab is filled to
        filled = starts[_cell_index(0, 0, first, shape):_cell_index(0, 0, stop, shape)].copy()
        offset = _cell_index(0, 0, first, shape)
        for k in range(low.shape[0]):
            x0, x1, y0, y1, z0, z1 = _cells_of_box(low, high, k, origin, scale, shape, first, stop)
            for z in range(z0, z1 + 1):
                for y in range(y0, y1 + 1):
                    for x in range(x0, x1 + 1):
                        cell = _cell_index(x, y, z, shape) - offset
                        members[filled[cell]] = k
                        filled[cell] += 1


@njit(cache=True, inline="always")
def _share_a_vertex(faces, i, j):
    a0, a1, a2 = faces[i, 0], faces[i, 1], faces[i, 2]
    b0, b1, b2 = faces[j, 0], faces[j, 1], faces[j, 2]
    return (a0 == b0 or a0 == b1 or a0 == b2 or a1 == b0 or a1 == b1 or a1 == b2
            or a2 == b0 or a2 == b1 or a2 == b2)


@njit(cache=True, inline="always")
def _gather(points, faces, face, out):
    for k in range(3):
        for axis in range(3):
            out[k, axis] = points[faces[face, k], axis]


@njit(cache=True, parallel=True)
def _count_crossings(points, faces, ids, low, high, origin, scale, shape, starts, members, flags):
    cells = starts.shape[0] - 1
    blocks = (cells + _CELL_BLOCK - 1) // _CELL_BLOCK
    found = np.zeros(blocks, dtype=np.int64)
    for block in prange(blocks):
        p = np.empty((3, 3))
        q = np.empty((3, 3))
        # a cell's boxes and vertex numbers side by side, one array per coordinate: its
        # pairs are read from cache
        capacity = 64
        boxes = np.empty((6, capacity), dtype=np.float32)
        corners = np.empty((3, capacity), dtype=np.int64)
        near = np.empty(capacity, dtype=np.int64)
        keep = np.empty(capacity, dtype=np.bool_)
        for cell in range(block * _CELL_BLOCK, min(cells, (block + 1) * _CELL_BLOCK)):
            first, count = starts[cell], starts[cell + 1] - starts[cell]
            if count < 2:
                continue
            if count > capacity:
                capacity = 2 * count
                boxes = np.empty((6, capacity), dtype=np.float32)
                corners = np.empty((3, capacity), dtype=np.int64)
                near = np.empty(capacity, dtype=np.int64)
                keep = np.empty(capacity, dtype=np.bool_)
            for a in range(count):
                u = members[first + a]
                for axis in range(3):
                    boxes[axis, a] = low[u, axis]
                    boxes[3 + axis, a] = high[u, axis]
                    corners[axis, a] = faces[ids[u], axis]
            lx, ly, lz, hx, hy, hz = boxes[0], boxes[1], boxes[2], boxes[3], boxes[4], boxes[5]
            c0, c1, c2 = corners[0], corners[1], corners[2]
            for a in range(count - 1):
                x0, y0, z0, x1, y1, z1 = lx[a], ly[a], lz[a], hx[a], hy[a], hz[a]
                a0, a1, a2 = c0[a], c1[a], c2[a]
                # the later faces whose boxes meet this one's and that share no vertex with it:
                # marked in a loop the compiler vectorises, then gathered (about 1 in 80)
                for b in range(a + 1, count):
                    keep[b] = ((x0 <= hx[b]) & (lx[b] <= x1) & (y0 <= hy[b]) & (ly[b] <= y1)
                               & (z0 <= hz[b]) & (lz[b] <= z1)
                               & (a0 != c0[b]) & (a0 != c1[b]) & (a0 != c2[b]) & (a1 != c0[b])
                               & (a1 != c1[b]) & (a1 != c2[b]) & (a2 != c0[b]) & (a2 != c1[b])
                               & (a2 != c2[b]))
                n = 0
                for b in range(a + 1, count):
                    if keep[b]:
                        near[n] = b
                        n += 1
                for m in range(n):
                    b = near[m]
                    # tested in the cell where both boxes begin to overlap
                    x = _cell_of(max(x0, lx[b]), origin[0], scale, shape[0])
                    y = _cell_of(max(y0, ly[b]), origin[1], scale, shape[1])
                    z = _cell_of(max(z0, lz[b]), origin[2], scale, shape[2])
                    if _cell_index(x, y, z, shape) != cell:
                        continue
                    u, v = members[first + a], members[first + b]
                    _gather(points, faces, ids[u], p)
                    _gather(points, faces, ids[v], q)
                    if _triangles_cross(p, q):
                        found[block] += 1
                        flags[u] = True  # only ever set: concurrent writes agree
                        flags[v] = True
    return found.sum()


@njit(cache=True, parallel=True)
def _query_crossings(points, faces, queries, left_out, ids, low, high, origin, scale, shape, starts, members,
                     found):
    for k in prange(queries.shape[0]):
        i = queries[k]
        p = np.empty((3, 3))
        q = np.empty((3, 3))
        _gather(points, faces, i, p)
        box_low = np.empty(3, dtype=np.float32)
        box_high = np.empty(3, dtype=np.float32)
        for axis in range(3):
            box_low[axis] = _below(min(p[0, axis], p[1, axis], p[2, axis]))
            box_high[axis] = _above(max(p[0, axis], p[1, axis], p[2, axis]))
        x0, x1 = _cell_of(box_low[0], origin[0], scale, shape[0]), _cell_of(box_high[0], origin[0], scale, shape[0])
        y0, y1 = _cell_of(box_low[1], origin[1], scale, shape[1]), _cell_of(box_high[1], origin[1], scale, shape[1])
        z0, z1 = _cell_of(box_low[2], origin[2], scale, shape[2]), _cell_of(box_high[2], origin[2], scale, shape[2])
        for z in range(z0, z1 + 1):
            for y in range(y0, y1 + 1):
                for x in range(x0, x1 + 1):
                    cell = _cell_index(x, y, z, shape)
                    for a in range(starts[cell], starts[cell + 1]):
                        v = members[a]
                        j = ids[v]
                        if left_out[j]:
                            continue
                        if (box_low[0] > high[v, 0] or low[v, 0] > box_high[0] or box_low[1] > high[v, 1]
                                or low[v, 1] > box_high[1] or box_low[2] > high[v, 2] or low[v, 2] > box_high[2]):
                            continue
                        if _share_a_vertex(faces, i, j):
                            continue
                        if (_cell_of(max(box_low[0], low[v, 0]), origin[0], scale, shape[0]) != x
                                or _cell_of(max(box_low[1], low[v, 1]), origin[1], scale, shape[1]) != y
                                or _cell_of(max(box_low[2], low[v, 2]), origin[2], scale, shape[2]) != z):
                            continue  # tested in the cell where both boxes begin to overlap
                        _gather(points, faces, j, q)
                        if _triangles_cross(p, q):
                            found[i] = True  # only ever set: concurrent writes agree
                            found[j] = True


# The triangle test runs on every candidate pair of millions of triangles: it works on
# scalars, allocating nothing (a heap array per step cost ten times the arithmetic).


@njit(cache=True, inline="always")
def _normal(t):
    """``(t[1] - t[0]) x (t[2] - t[0])``."""
    a0, a1, a2 = t[1, 0] - t[0, 0], t[1, 1] - t[0, 1], t[1, 2] - t[0, 2]
    b0, b1, b2 = t[2, 0] - t[0, 0], t[2, 1] - t[0, 1], t[2, 2] - t[0, 2]
    return a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0


@njit(cache=True, inline="always")
def _signed_distance(n0, n1, n2, point, triangle, k, tolerance):
    value = (n0 * (triangle[k, 0] - point[0]) + n1 * (triangle[k, 1] - point[1])
             + n2 * (triangle[k, 2] - point[2]))
    return 0.0 if abs(value) <= tolerance else value


@njit(cache=True, inline="always")
def _one_side(d0, d1, d2):
    return (d0 > 0 and d1 > 0 and d2 > 0) or (d0 < 0 and d1 < 0 and d2 < 0)


@njit(cache=True)
def _interval(triangle, d0, d1, d2, axis):
    """The segment where a triangle meets the other's plane (its corners at signed
    distances d0, d1, d2 from it), projected on ``axis``."""
    first = 0.0
    second = 0.0
    found = 0
    for k in range(3):
        dk = d0 if k == 0 else (d1 if k == 1 else d2)
        if dk == 0.0 and found < 2:
            if found == 0:
                first = triangle[k, axis]
            else:
                second = triangle[k, axis]
            found += 1
    for k in range(3):
        m = (k + 1) % 3
        dk = d0 if k == 0 else (d1 if k == 1 else d2)
        dm = d0 if m == 0 else (d1 if m == 1 else d2)
        if dk * dm < 0.0 and found < 2:
            t = dk / (dk - dm)
            value = triangle[k, axis] + t * (triangle[m, axis] - triangle[k, axis])
            if found == 0:
                first = value
            else:
                second = value
            found += 1
    if found == 1:
        second = first
    return min(first, second), max(first, second)


@njit(cache=True)
def _triangles_cross(p, q):
    """Do two triangles (3 x 3) cross or overlap?  Möller's interval test; coplanar
    triangles by their edges and corners in the plane."""
    scale = 0.0
    for k in range(3):
        for axis in range(3):
            scale = max(scale, abs(p[k, axis]), abs(q[k, axis]))
    p0, p1, p2 = _normal(p)
    q0, q1, q2 = _normal(q)
    length_p = math.sqrt(p0 ** 2 + p1 ** 2 + p2 ** 2)
    length_q = math.sqrt(q0 ** 2 + q1 ** 2 + q2 ** 2)
    if length_p == 0.0 or length_q == 0.0:
        return False
    tolerance = 1e-12 * max(scale, 1.0)
    u0, u1, u2 = p0 / length_p, p1 / length_p, p2 / length_p
    dq0 = _signed_distance(u0, u1, u2, p[0], q, 0, tolerance)
    dq1 = _signed_distance(u0, u1, u2, p[0], q, 1, tolerance)
    dq2 = _signed_distance(u0, u1, u2, p[0], q, 2, tolerance)
    if _one_side(dq0, dq1, dq2):
        return False
    v0, v1, v2 = q0 / length_q, q1 / length_q, q2 / length_q
    dp0 = _signed_distance(v0, v1, v2, q[0], p, 0, tolerance)
    dp1 = _signed_distance(v0, v1, v2, q[0], p, 1, tolerance)
    dp2 = _signed_distance(v0, v1, v2, q[0], p, 2, tolerance)
    if _one_side(dp0, dp1, dp2):
        return False
    if dq0 == 0.0 and dq1 == 0.0 and dq2 == 0.0:
        return _coplanar_cross(p, q, np.array([p0, p1, p2]))
    # the direction of the line where the planes meet: np x nq
    line0, line1, line2 = p1 * q2 - p2 * q1, p2 * q0 - p0 * q2, p0 * q1 - p1 * q0
    axis = 0
    largest = abs(line0)
    if abs(line1) > largest:
        axis, largest = 1, abs(line1)
    if abs(line2) > largest:
        axis = 2
    p_low, p_high = _interval(p, dp0, dp1, dp2, axis)
    q_low, q_high = _interval(q, dq0, dq1, dq2, axis)
    overlap = min(p_high, q_high) - max(p_low, q_low)
    return overlap > tolerance


@njit(cache=True)
def _segments_cross(a, b, c, d):
    """Do 2D segments ab and cd cross (properly, not just touch)?"""
    d1 = (d[0] - c[0]) * (a[1] - c[1]) - (d[1] - c[1]) * (a[0] - c[0])
    d2 = (d[0] - c[0]) * (b[1] - c[1]) - (d[1] - c[1]) * (b[0] - c[0])
    d3 = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    d4 = (b[0] - a[0]) * (d[1] - a[1]) - (b[1] - a[1]) * (d[0] - a[0])
    return d1 * d2 < 0.0 and d3 * d4 < 0.0


@njit(cache=True)
def _inside(point, triangle):
    """Is a 2D point strictly inside a 2D triangle?"""
    signs = np.empty(3)
    for k in range(3):
        m = (k + 1) % 3
        signs[k] = ((triangle[m, 0] - triangle[k, 0]) * (point[1] - triangle[k, 1])
                    - (triangle[m, 1] - triangle[k, 1]) * (point[0] - triangle[k, 0]))
    return (signs[0] > 0 and signs[1] > 0 and signs[2] > 0) or (signs[0] < 0 and signs[1] < 0 and signs[2] < 0)


@njit(cache=True)
def _coplanar_cross(p, q, normal):
    drop = 0
    for k in range(1, 3):
        if abs(normal[k]) > abs(normal[drop]):
            drop = k
    keep0, keep1 = (1, 2) if drop == 0 else ((0, 2) if drop == 1 else (0, 1))
    p2 = np.empty((3, 2))
    q2 = np.empty((3, 2))
    for k in range(3):
        p2[k, 0], p2[k, 1] = p[k, keep0], p[k, keep1]
        q2[k, 0], q2[k, 1] = q[k, keep0], q[k, keep1]
    for k in range(3):
        for m in range(3):
            if _segments_cross(p2[k], p2[(k + 1) % 3], q2[m], q2[(m + 1) % 3]):
                return True
    for k in range(3):
        if _inside(p2[k], q2) or _inside(q2[k], p2):
            return True
    return False


@njit(cache=True, parallel=True)
def _winding_numbers(points, faces, ids, component, order, first, origin, scale, shape, starts, members):
    count = first.shape[0] - 1
    result = np.zeros(count, dtype=np.int64)
    for c in prange(count):
        for attempt in range(first[c], min(first[c + 1], first[c] + 16)):
            f = ids[order[attempt]]
            a, b, d = faces[f, 0], faces[f, 1], faces[f, 2]
            px = (points[a, 0] + points[b, 0] + points[d, 0]) / 3.0
            py = (points[a, 1] + points[b, 1] + points[d, 1]) / 3.0
            pz = (points[a, 2] + points[b, 2] + points[d, 2]) / 3.0
            winding, grazed = _ray_winding(points, faces, ids, component, c, px, py, pz, origin, scale, shape,
                                           starts, members)
            if not grazed:
                result[c] = winding
                break
    return result


@njit(cache=True)
def _ray_winding(points, faces, ids, component, own, px, py, pz, origin, scale, shape, starts, members):
    """Signed crossings of the ray from (px, py, pz) to +x with other components' triangles."""
    y = _cell_of(py, origin[1], scale, shape[1])
    z = _cell_of(pz, origin[2], scale, shape[2])
    x0 = _cell_of(px, origin[0], scale, shape[0])
    winding = 0
    e = np.empty(3)
    for x in range(x0, shape[0]):
        cell = _cell_index(x, y, z, shape)
        for m in range(starts[cell], starts[cell + 1]):
            binned = members[m]
            if component[binned] == own:
                continue
            f = ids[binned]
            for k in range(3):
                a, b = faces[f, k], faces[f, (k + 1) % 3]
                e[k] = ((points[b, 1] - points[a, 1]) * (pz - points[a, 2])
                        - (points[b, 2] - points[a, 2]) * (py - points[a, 1]))
            if e[0] == 0.0 or e[1] == 0.0 or e[2] == 0.0:
                inside_or_on = (e[0] >= 0 and e[1] >= 0 and e[2] >= 0) or (e[0] <= 0 and e[1] <= 0 and e[2] <= 0)
                if inside_or_on:
                    return 0, True  # on an edge or a vertex: try another point
                continue
            if not ((e[0] > 0 and e[1] > 0 and e[2] > 0) or (e[0] < 0 and e[1] < 0 and e[2] < 0)):
                continue
            total = e[0] + e[1] + e[2]
            # e[k] weighs the vertex opposite edge k, which is vertex k + 2
            hit = (e[0] * points[faces[f, 2], 0] + e[1] * points[faces[f, 0], 0]
                   + e[2] * points[faces[f, 1], 0]) / total
            if hit <= px or _cell_of(hit, origin[0], scale, shape[0]) != x:
                continue  # behind the start, or counted in the cell where it is hit
            winding += 1 if total > 0 else -1
    return winding, False
