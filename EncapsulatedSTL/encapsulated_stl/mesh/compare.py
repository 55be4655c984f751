"""How far is a printed part from its plan?  Surface distances between two meshes.

Both meshes are ``(n, 3, 3)`` triangles in millimetres.  A distance is from a point
to the closest point of the other mesh's *surface* (its triangles, edges or
vertices), never to its nearest vertex: against a coarse mesh that would measure
the tessellation, not the shape.

**Samples.**  Each triangle is sampled at its three corners and its centroid, with
weights of 1/12 of its area per corner and 3/4 at the centroid: a quadrature over
the triangle that is exact for quadratic functions, so the mean and RMS below are
integrals over the surface's area (a finely tessellated region does not count more
than a coarse one) and the surface's centroid and second moments, used to start the
alignment, are exact.  Corners shared by several triangles are one sample (identical
coordinates only) carrying all their weights.  On triangles much larger than the
distances measured, the mean is a four-point quadrature and the maximum is over the
samples; on fine meshes both are exact to the scale of the tessellation.

**Statistics**, per direction (the samples of one mesh to the surface of the other):
the area-weighted mean, RMS and 95th percentile (the smallest distance within which
at least 95 % of the area lies), and the maximum.  **Symmetric**: both directions
pooled, each carrying half the weight whatever the two areas, so a surface missing
from either mesh shows; its maximum is the larger of the two (the Hausdorff
distance, over the samples).

**Closest points, exactly.**  The triangles are the leaves, four to a leaf, of a
complete binary tree of axis-aligned boxes; each node splits its triangles across
the longest side of their centroids' box (a k-d split).  A query walks the tree
depth first, the nearer child first, and skips every box no nearer than the best
triangle found so far; what it skips cannot hold a nearer point, so the result is
the minimum over all triangles.  The point-triangle distance (Ericson's regions) and
the walk are compiled with numba, the points shared among the cores.  The cost
grows where many triangles are almost equally far, as from the centre of a sphere.

**Rigid alignment** (``align="rigid"``) moves ACTUAL onto PLANNED (an optical scan of
a print is in the scanner's coordinates, not the patient's), rotation and
translation only: a print scaled wrong must show as distance.  Starts: identity, the
centroids matched, and the centroids and principal axes matched with each of the
four proper sign choices of the axes; each is improved by a few point-to-point
(Kabsch) iterations on 2,000 samples and the lowest RMS is kept, then refined by
point-to-plane ICP on up to 20,000 area-drawn samples of ACTUAL until no sample moves
by more than 1e-6 mm in an iteration.  It assumes ACTUAL covers the surface of
PLANNED; the pairs are not trimmed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..errors import EncapsulatedSTLError
from .shared_vertices import merge_identical_vertices

ALIGNMENTS = ("none", "rigid")
#: ICP stops when no sample moved by more than this in one iteration (mm).
CONVERGED_MM = 1e-6
#: Samples of ACTUAL that steer the alignment (drawn by area).
ALIGNMENT_SAMPLES = 20_000
COARSE_SAMPLES = 2_000
COARSE_ITERATIONS = 10
MAX_ITERATIONS = 200
#: Triangles per leaf of the bounding-volume hierarchy.
LEAF_TRIANGLES = 4
#: Points one thread takes at a time.
QUERY_CHUNK = 256


@dataclass(frozen=True)
class DistanceStatistics:
    """Distances in mm from samples of one surface to another (area-weighted)."""

    mean: float
    rms: float
    p95: float
    max: float
    samples: int

    def as_dict(self) -> dict:
        return {"mean": self.mean, "rms": self.rms, "p95": self.p95, "max": self.max, "samples": self.samples}


@dataclass(frozen=True)
class SurfaceComparison:
    """What :func:`compare_surfaces` measured.  Lengths in mm, in PLANNED's coordinates
    (LPS when PLANNED is a patient model).

    Attributes
    ----------
    actual_to_planned, planned_to_actual:
        Samples of the first surface to the second.
    symmetric:
        Both directions pooled, each with half the weight; ``max`` the larger maximum.
    align:
        ``"none"`` or ``"rigid"``.
    transform:
        ``(4, 4)`` homogeneous matrix applied to ACTUAL before measuring (identity
        without alignment): ``x_planned = transform @ [x_actual, 1]``.
    iterations:
        ICP iterations of the refinement (0 without alignment).
    converged:
        The refinement settled (no sample moved more than 1e-6 mm in its last
        iteration) within its 200 iterations; False for a shape that a rotation leaves
        unchanged (a sphere, a cylinder about its axis), where any such turn fits.
    actual_points, actual_faces, actual_vertex_distances:
        ACTUAL as moved by ``transform``: its distinct vertices ``(p, 3)``, its
        triangles as indices ``(n, 3)``, and each vertex's distance to PLANNED (mm),
        for a picture of ACTUAL coloured by distance.
    planned_area, actual_area:
        Surface areas in mm².
    """

    actual_to_planned: DistanceStatistics
    planned_to_actual: DistanceStatistics
    symmetric: DistanceStatistics
    align: str
    transform: np.ndarray
    iterations: int
    converged: bool
    actual_points: np.ndarray
    actual_faces: np.ndarray
    actual_vertex_distances: np.ndarray
    planned_triangles: int
    actual_triangles: int
    planned_area: float
    actual_area: float

    @property
    def rotation_degrees(self) -> float:
        """Angle of the alignment's rotation, in degrees (0 to 180)."""
        cosine = (np.trace(self.transform[:3, :3]) - 1.0) / 2.0
        return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))

    @property
    def rotation_axis(self) -> list[float]:
        """Unit axis of the alignment's rotation (right-handed), [0, 0, 0] without one."""
        r = self.transform[:3, :3]
        axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
        norm = np.linalg.norm(axis)
        if norm < 1e-12:
            if self.rotation_degrees < 90.0:
                return [0.0, 0.0, 0.0]
            # 180 degrees: the axis is the eigenvector of eigenvalue 1
            values, vectors = np.linalg.eigh((r + r.T) / 2.0)
            axis, norm = vectors[:, np.argmax(values)], 1.0
        return [float(v) for v in axis / norm]

    @property
    def translation_mm(self) -> list[float]:
        """The alignment's translation (applied after the rotation about the origin), mm."""
        return [float(v) for v in self.transform[:3, 3]]

    def picture(self, size: int = 512, view: str = "anterior") -> np.ndarray:
        """ACTUAL (as aligned) coloured by each point's distance to PLANNED, with a colour
        bar from 0 (blue) to the 95th percentile of those distances (red, and red
        beyond), and the statistics written in a corner.

        Parameters
        ----------
        size : int
            Width and height in pixels.
        view : str
            One of :data:`.render.VIEWS` (``anterior``: from the patient's front, LPS).

        Returns
        -------
        numpy.ndarray
            ``(size, size, 3)`` uint8 RGB, first row at the top.

        Raises
        ------
        EncapsulatedSTLError
            A bad size or view; ``RenderingUnavailable`` where VTK cannot render.
        """
        from .render import Label, Layer, Scale, render

        stats = self.actual_to_planned
        white = (1.0, 1.0, 1.0)
        labels = [Label("ACTUAL coloured by distance to PLANNED", white),
                  Label(f"mean {stats.mean:.2f}  95% {stats.p95:.2f}  max {stats.max:.2f} mm", white)]
        if self.align == "rigid":
            labels.append(Label(f"after a rigid alignment: turned {self.rotation_degrees:.2f} degrees", white))
        layer = Layer(self.actual_points[self.actual_faces], scalars=self.actual_vertex_distances[self.actual_faces])
        return render([layer], size, view=view, scale=Scale("mm", 0.0, stats.p95), labels=tuple(labels))


def compare_surfaces(planned: np.ndarray, actual: np.ndarray, align: str = "none", *,
                     names: tuple[str, str] = ("planned", "actual")) -> SurfaceComparison:
    """Surface distances between two meshes, optionally after moving ACTUAL rigidly onto PLANNED.

    Parameters
    ----------
    planned, actual : numpy.ndarray
        ``(n, 3, 3)`` triangles in mm (any float type), in one coordinate system
        (patient LPS for models made here) unless ``align="rigid"``.
    align : {"none", "rigid"}
        ``"rigid"``: first find the rotation and translation of ACTUAL that best
        fits PLANNED (point-to-plane ICP; see the module's notes).  No scaling.
    names : (str, str)
        What to call the two meshes in an error (their files).

    Returns
    -------
    SurfaceComparison

    Raises
    ------
    EncapsulatedSTLError
        A mesh with no triangles, no area, a non-finite coordinate or the wrong shape,
        or an unknown ``align``.
    """
    if align not in ALIGNMENTS:
        raise EncapsulatedSTLError(f"unknown alignment '{align}'; choose {' or '.join(ALIGNMENTS)}")
    planned = _checked(planned, names[0])
    actual = _checked(actual, names[1])
    planned_samples = _Samples(planned, names[0])
    actual_samples = _Samples(actual, names[1])
    planned_surface = _Surface(planned)

    transform, iterations, converged = np.eye(4), 0, True
    if align == "rigid":
        transform, iterations, converged = _rigid_alignment(actual_samples, planned_samples, planned_surface)
        actual = _transformed(actual, transform)
        actual_samples = _Samples(actual, names[1])

    to_planned, _, _ = planned_surface.closest(actual_samples.points)
    del planned_surface  # its box tree: the memory is needed for the other one
    to_actual, _, _ = _Surface(actual).closest(planned_samples.points)
    forward = _statistics(to_planned, actual_samples.weights)
    backward = _statistics(to_actual, planned_samples.weights)
    pooled = _statistics(
        np.concatenate([to_planned, to_actual]),
        np.concatenate([actual_samples.weights / actual_samples.area, planned_samples.weights / planned_samples.area]),
    )
    vertices = len(actual_samples.vertex_points)
    return SurfaceComparison(
        actual_to_planned=forward,
        planned_to_actual=backward,
        symmetric=DistanceStatistics(pooled.mean, pooled.rms, pooled.p95, max(forward.max, backward.max),
                                     forward.samples + backward.samples),
        align=align,
        transform=transform,
        iterations=iterations,
        converged=converged,
        actual_points=actual_samples.vertex_points,
        actual_faces=actual_samples.faces,
        actual_vertex_distances=to_planned[:vertices],
        planned_triangles=len(planned),
        actual_triangles=len(actual),
        planned_area=planned_samples.area,
        actual_area=actual_samples.area,
    )


def _checked(triangles, name: str) -> np.ndarray:
    try:
        triangles = np.asarray(triangles, dtype=np.float64)
    except (TypeError, ValueError):
        raise EncapsulatedSTLError("not an array of triangle coordinates", name) from None
    if triangles.ndim != 3 or triangles.shape[1:] != (3, 3):
        raise EncapsulatedSTLError(f"triangles must be an (n, 3, 3) array, not {triangles.shape}", name)
    if len(triangles) == 0:
        raise EncapsulatedSTLError("the model has no triangles: there is no surface to compare", name)
    if not np.isfinite(triangles).all():
        raise EncapsulatedSTLError("the model has a coordinate that is not a finite number (NaN or infinity)",
                                   name)
    return np.ascontiguousarray(triangles)


class _Samples:
    """A mesh's samples (distinct vertices, then triangle centroids) and their area weights."""

    def __init__(self, triangles: np.ndarray, name: str):
        points, faces = merge_identical_vertices(triangles)
        self.vertex_points = np.asarray(points, dtype=np.float64)
        self.faces = np.asarray(faces, dtype=np.int64)
        areas = 0.5 * np.linalg.norm(
            np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]), axis=1)
        self.area = float(areas.sum())
        if not self.area > 0.0:
            raise EncapsulatedSTLError("the model has no area: every triangle is degenerate", name)
        corner_weights = np.bincount(self.faces.ravel(), weights=np.repeat(areas / 12.0, 3),
                                     minlength=len(self.vertex_points))
        self.points = np.concatenate([self.vertex_points, triangles.mean(axis=1)])
        self.weights = np.concatenate([corner_weights, 0.75 * areas])

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The surface's area centroid and principal axes (columns, largest spread first)."""
        weights = self.weights / self.area
        centroid = weights @ self.points
        centred = self.points - centroid
        covariance = (centred * weights[:, None]).T @ centred
        _values, axes = np.linalg.eigh(covariance)
        return centroid, axes[:, ::-1]


def _statistics(distances: np.ndarray, weights: np.ndarray) -> DistanceStatistics:
    total = weights.sum()
    order = np.argsort(distances, kind="stable")
    cumulative = np.cumsum(weights[order])
    at = min(int(np.searchsorted(cumulative, 0.95 * cumulative[-1], side="left")), len(order) - 1)
    return DistanceStatistics(
        mean=float(weights @ distances / total),
        rms=float(math.sqrt(weights @ (distances * distances) / total)),
        p95=float(distances[order[at]]),
        max=float(distances.max()),
        samples=len(distances),
    )


def _transformed(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    return points @ transform[:3, :3].T + transform[:3, 3]


class _Surface:
    """A mesh ready for exact closest-point queries: a bounding-volume hierarchy (see
    the module's notes)."""

    def __init__(self, triangles: np.ndarray):
        leaves = -(-len(triangles) // LEAF_TRIANGLES)
        self.depth = int(math.ceil(math.log2(leaves))) if leaves > 1 else 0
        self.order = np.arange(len(triangles))
        _split_at_medians(triangles.mean(axis=1), self.depth, self.order)
        self.triangles = np.ascontiguousarray(triangles[self.order])
        self.boxes = np.empty((2 << self.depth, 6))
        _build_boxes(self.triangles, self.depth, self.boxes)

    def closest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distances in mm, triangle numbers, closest points) of ``points`` on the surface."""
        points = np.ascontiguousarray(points, dtype=np.float64)
        d2 = np.empty(len(points))
        which = np.empty(len(points), dtype=np.int64)
        near = np.empty((len(points), 3))
        _closest_in_hierarchy(points, self.triangles, self.boxes, self.depth, d2, which, near)
        return np.sqrt(d2), self.order[which], near

    def normals(self, triangles: np.ndarray) -> np.ndarray:
        """Unit normals of the triangles numbered ``triangles`` (as :meth:`closest` numbers them)."""
        inverse = np.empty_like(self.order)
        inverse[self.order] = np.arange(len(self.order))
        corners = self.triangles[inverse[triangles]]
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


@njit(cache=True, nogil=True)
def _split_at_medians(centroids, depth, order):
    """Order the triangles so that each node of the complete binary tree (heap order, as
    :func:`_build_boxes` lays it out) splits its triangles across the longest side of
    their centroids' box: the left child's share below, the right child's above (a
    k-d split, made by selection, not sorting)."""
    first_leaf = 1 << depth
    count = order.shape[0]
    for node in range(1, first_leaf):
        level = 63 - _leading_zeros(node)
        width = LEAF_TRIANGLES << (depth - level)  # triangles under a node of this level
        start = (node - (1 << level)) * width
        end = min(start + width, count)
        middle = start + width // 2
        if middle >= end or end - start <= LEAF_TRIANGLES:
            continue
        low = np.full(3, np.inf)
        high = np.full(3, -np.inf)
        for i in range(start, end):
            for axis in range(3):
                value = centroids[order[i], axis]
                low[axis] = min(low[axis], value)
                high[axis] = max(high[axis], value)
        axis = int(np.argmax(high - low))
        _select(order, centroids, axis, start, end, middle)


@njit(cache=True, nogil=True, inline="always")
def _leading_zeros(value):
    zeros = 64
    while value:
        value >>= 1
        zeros -= 1
    return zeros


@njit(cache=True, nogil=True)
def _select(order, centroids, axis, start, end, k):
    """Rearrange order[start:end] so that order[k] is the triangle that sorting by the
    centroid's ``axis`` would put there, none after it smaller, none before it larger
    (Hoare's selection)."""
    left, right = start, end - 1
    while right > left:
        pivot = centroids[order[(left + right) // 2], axis]
        i, j = left, right
        while i <= j:
            while centroids[order[i], axis] < pivot:
                i += 1
            while centroids[order[j], axis] > pivot:
                j -= 1
            if i <= j:
                order[i], order[j] = order[j], order[i]
                i += 1
                j -= 1
        if k <= j:
            right = j
        elif k >= i:
            left = i
        else:
            break


@njit(cache=True, nogil=True)
def _build_boxes(triangles, depth, boxes):
    """Boxes of a complete binary tree in heap order (root 1, children 2i and 2i + 1) whose
    2**depth leaves hold LEAF_TRIANGLES consecutive triangles each; an empty box is
    inverted (low +inf, high -inf), so it is infinitely far from every point."""
    first_leaf = 1 << depth
    count = triangles.shape[0]
    for leaf in range(first_leaf):
        node = first_leaf + leaf
        for axis in range(3):
            boxes[node, axis], boxes[node, 3 + axis] = np.inf, -np.inf
        for t in range(leaf * LEAF_TRIANGLES, min((leaf + 1) * LEAF_TRIANGLES, count)):
            for corner in range(3):
                for axis in range(3):
                    value = triangles[t, corner, axis]
                    boxes[node, axis] = min(boxes[node, axis], value)
                    boxes[node, 3 + axis] = max(boxes[node, 3 + axis], value)
    for node in range(first_leaf - 1, 0, -1):
        for axis in range(3):
            boxes[node, axis] = min(boxes[2 * node, axis], boxes[2 * node + 1, axis])
            boxes[node, 3 + axis] = max(boxes[2 * node, 3 + axis], boxes[2 * node + 1, 3 + axis])


@njit(cache=True, nogil=True, inline="always")
def _box_distance2(boxes, node, px, py, pz):
    dx = max(boxes[node, 0] - px, 0.0, px - boxes[node, 3])
    dy = max(boxes[node, 1] - py, 0.0, py - boxes[node, 4])
    dz = max(boxes[node, 2] - pz, 0.0, pz - boxes[node, 5])
    return dx * dx + dy * dy + dz * dz


@njit(cache=True, nogil=True, parallel=True)
def _closest_in_hierarchy(points, triangles, boxes, depth, d2, which, near):
    chunks = (points.shape[0] + QUERY_CHUNK - 1) // QUERY_CHUNK
    for chunk in prange(chunks):
        stack = np.empty(depth + 2, dtype=np.int64)  # one per chunk: allocating per point is slow in threads
        for i in range(chunk * QUERY_CHUNK, min((chunk + 1) * QUERY_CHUNK, points.shape[0])):
            d2[i], which[i], near[i, 0], near[i, 1], near[i, 2] = _walk(
                points[i, 0], points[i, 1], points[i, 2], triangles, boxes, depth, stack)


@njit(cache=True, nogil=True)
def _walk(px, py, pz, triangles, boxes, depth, stack):
    """The closest triangle to p: depth first, the nearer child first, skipping every box
    no nearer than the best triangle found so far, so the minimum over all triangles,
    exactly.  Returns (squared distance, triangle, closest point)."""
    first_leaf = 1 << depth
    best, best_triangle = np.inf, -1
    bx, by, bz = 0.0, 0.0, 0.0
    stack[0] = 1
    top = 1
    while top > 0:
        top -= 1
        node = stack[top]
        if _box_distance2(boxes, node, px, py, pz) >= best:
            continue
        if node >= first_leaf:
            leaf = node - first_leaf
            for t in range(leaf * LEAF_TRIANGLES, min((leaf + 1) * LEAF_TRIANGLES, triangles.shape[0])):
                qx, qy, qz = _closest_on_triangle(px, py, pz, triangles[t])
                d = (px - qx) ** 2 + (py - qy) ** 2 + (pz - qz) ** 2
                if d < best:
                    best, best_triangle, bx, by, bz = d, t, qx, qy, qz
            continue
        left, right = 2 * node, 2 * node + 1
        if _box_distance2(boxes, left, px, py, pz) <= _box_distance2(boxes, right, px, py, pz):
            stack[top], stack[top + 1] = right, left
        else:
            stack[top], stack[top + 1] = left, right
        top += 2
    return best, best_triangle, bx, by, bz


@njit(cache=True, nogil=True, inline="always")
def _segment_point(px, py, pz, ax, ay, az, bx, by, bz):
    ex, ey, ez = bx - ax, by - ay, bz - az
    length2 = ex * ex + ey * ey + ez * ez
    s = 0.0
    if length2 > 0.0:
        s = min(1.0, max(0.0, ((px - ax) * ex + (py - ay) * ey + (pz - az) * ez) / length2))
    return ax + s * ex, ay + s * ey, az + s * ez


@njit(cache=True, nogil=True)
def _closest_on_triangle(px, py, pz, tri):
    """The closest point of triangle ``tri`` (3, 3) to p: Ericson's Voronoi regions
    (Real-Time Collision Detection, 5.1.5), with degenerate triangles measured by
    their edges."""
    ax, ay, az = tri[0, 0], tri[0, 1], tri[0, 2]
    bx, by, bz = tri[1, 0], tri[1, 1], tri[1, 2]
    cx, cy, cz = tri[2, 0], tri[2, 1], tri[2, 2]
    abx, aby, abz = bx - ax, by - ay, bz - az
    acx, acy, acz = cx - ax, cy - ay, cz - az
    apx, apy, apz = px - ax, py - ay, pz - az
    d1 = abx * apx + aby * apy + abz * apz
    d2 = acx * apx + acy * apy + acz * apz
    if d1 <= 0.0 and d2 <= 0.0:
        return ax, ay, az
    bpx, bpy, bpz = px - bx, py - by, pz - bz
    d3 = abx * bpx + aby * bpy + abz * bpz
    d4 = acx * bpx + acy * bpy + acz * bpz
    if d3 >= 0.0 and d4 <= d3:
        return bx, by, bz
    vc = d1 * d4 - d3 * d2
    if vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0 and d1 - d3 > 0.0:
        v = d1 / (d1 - d3)
        return ax + v * abx, ay + v * aby, az + v * abz
    cpx, cpy, cpz = px - cx, py - cy, pz - cz
    d5 = abx * cpx + aby * cpy + abz * cpz
    d6 = acx * cpx + acy * cpy + acz * cpz
    if d6 >= 0.0 and d5 <= d6:
        return cx, cy, cz
    vb = d5 * d2 - d1 * d6
    if vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0 and d2 - d6 > 0.0:
        w = d2 / (d2 - d6)
        return ax + w * acx, ay + w * acy, az + w * acz
    va = d3 * d6 - d5 * d4
    if va <= 0.0 and d4 - d3 >= 0.0 and d5 - d6 >= 0.0 and (d4 - d3) + (d5 - d6) > 0.0:
        w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        return bx + w * (cx - bx), by + w * (cy - by), bz + w * (cz - bz)
    denominator = va + vb + vc
    if denominator > 0.0:
        v = vb / denominator
        w = vc / denominator
        return ax + abx * v + acx * w, ay + aby * v + acy * w, az + abz * v + acz * w
    # no area (collinear corners): the nearest of the three edges
    best = np.inf
    qx, qy, qz = ax, ay, az
    for e in range(3):
        sx, sy, sz = _segment_point(px, py, pz, tri[e, 0], tri[e, 1], tri[e, 2],
                                    tri[(e + 1) % 3, 0], tri[(e + 1) % 3, 1], tri[(e + 1) % 3, 2])
        d = (px - sx) ** 2 + (py - sy) ** 2 + (pz - sz) ** 2
        if d < best:
            best, qx, qy, qz = d, sx, sy, sz
    return qx, qy, qz


def _rigid_alignment(moving: _Samples, fixed: _Samples, surface: _Surface) -> tuple[np.ndarray, int, bool]:
    """The 4 x 4 rigid transform taking ``moving`` onto ``surface``, the ICP iterations,
    and whether they settled."""
    rng = np.random.default_rng(0)
    chosen = np.unique(rng.choice(len(moving.points), size=ALIGNMENT_SAMPLES, p=moving.weights / moving.weights.sum()))
    points = moving.points[chosen]
    coarse = points[rng.permutation(len(points))[:COARSE_SAMPLES]]

    fixed_centroid, fixed_axes = fixed.moments()
    moving_centroid, moving_axes = moving.moments()
    starts = [np.eye(4), _homogeneous(np.eye(3), fixed_centroid - moving_centroid)]
    for signs in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
        for flip in (1, -1):  # the axes from eigh may be left-handed: keep the proper rotations
            rotation = fixed_axes @ np.diag(signs) @ np.diag([1, 1, flip]) @ moving_axes.T
            if np.linalg.det(rotation) > 0:
                starts.append(_homogeneous(rotation, fixed_centroid - rotation @ moving_centroid))
    best, best_rms = None, np.inf
    for start in starts:
        transform = start
        for _ in range(COARSE_ITERATIONS):
            moved = _transformed(coarse, transform)
            _, _, targets = surface.closest(moved)
            transform = _homogeneous(*_kabsch(moved, targets)) @ transform
        distances, _, _ = surface.closest(_transformed(coarse, transform))
        rms = float(np.sqrt(np.mean(distances ** 2)))
        if rms < best_rms:
            best, best_rms = transform, rms

    transform = best
    for iteration in range(1, MAX_ITERATIONS + 1):
        moved = _transformed(points, transform)
        _, triangles, targets = surface.closest(moved)
        step = _point_to_plane_step(moved, targets, surface.normals(triangles))
        transform = step @ transform
        change = np.abs(_transformed(moved, step) - moved).max()
        if change <= CONVERGED_MM:
            return transform, iteration, True
    return transform, MAX_ITERATIONS, False


def _homogeneous(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    transform = np.eye(4)
    transform[:3, :3], transform[:3, 3] = rotation, translation
    return transform


def _kabsch(points: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation and translation best taking ``points`` to ``targets`` (least squares)."""
    p0, q0 = points.mean(axis=0), targets.mean(axis=0)
    u, _s, vt = np.linalg.svd((points - p0).T @ (targets - q0))
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rotation, q0 - rotation @ p0


def _point_to_plane_step(points: np.ndarray, targets: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """One linearised point-to-plane step: the small rotation (about the points' centroid)
    and translation minimising the sum of squared distances to the target planes."""
    centre = points.mean(axis=0)
    arms = points - centre
    system = np.hstack([np.cross(arms, normals), normals])
    residual = np.einsum("ij,ij->i", points - targets, normals)
    solution = np.linalg.lstsq(system, -residual, rcond=None)[0]
    rotation = _rotation_from_vector(solution[:3])
    return _homogeneous(rotation, centre + solution[3:] - rotation @ centre)


def _rotation_from_vector(vector: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(vector))
    if angle == 0.0:
        return np.eye(3)
    x, y, z = vector / angle
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)
