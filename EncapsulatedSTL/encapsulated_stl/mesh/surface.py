"""Iso-surfaces of image volumes as closed triangle meshes in patient LPS millimetres.

The surface is extracted in voxel-index space (VTK flying edges on an image of unit
spacing), so its vertices sit at sub-voxel positions interpolated from the grey
values, and then every vertex is mapped through the volume's own geometry
(``geometry.lps_from_index``): the image is never resampled, which keeps gantry
tilt, uneven or missing slices and oblique orientations exact.

Smoothing and decimation act on the mapped LPS coordinates.  The default smoothing
is the windowed-sinc filter of VTK's ``vtkWindowedSincPolyDataFilter`` with
normalized coordinates (compiled in :mod:`.smoothing`): a low-pass filter that
removes the voxel "staircase" and noise without the shrinkage of Laplacian
smoothing.  Its strength follows Slicer's "smoothing factor" (0..1): pass band
``10 ** (-4 * factor)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# The modules themselves, not the ``vtk`` package, which imports all of VTK
# (0.5 s at every start of the command line against 0.1 s for these).
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints, vtkSMPTools
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D, vtkQuadricDecimation

from ..errors import EncapsulatedSTLError
from ..files import release_freed_memory
from ..progress import observe_vtk, task
from .printability import CrossingSearch, check_printability, component_labels, drop_folded_pairs, separate_sheets
from .smoothing import windowed_sinc

#: Default smoothing factor (0..1, Slicer's scale).  Light: grey-value iso-surfaces
#: have no staircase to remove, only noise.
DEFAULT_SMOOTHING = 0.15
#: Windowed-sinc iterations (Slicer uses 20 for its closed surfaces).
SMOOTHING_ITERATIONS = 20
#: Rounds of putting back unsmoothed points where the smoothed surface crosses itself,
#: each a ring of neighbours wider than the last, before whole pieces are put back.
UNCROSS_ROUNDS = 6
#: The fewest triangles a closed surface has (a tetrahedron): a smaller decimation
#: target can only give an open or degenerate mesh.
MIN_DECIMATE_TARGET = 4
#: No patient coordinate lies farther than this from the origin (mm, one kilometre).
#: Beyond it a geometry is corrupt, and float32 STL normals of such triangles
#: overflow to NaN.
MAX_COORDINATE_MM = 1e6
#: A surface whose points spread across their thinnest direction by less than this
#: fraction of their widest is flat: collapsed by a degenerate geometry.
FLATNESS_TOLERANCE = 1e-9
#: How far beyond the data range the one-voxel "outside" border lies, as a multiple
#: of the largest distance of a value from the level.  A surface crossing the volume
#: border is then closed within 1/BORDER_DEPTH of a voxel of the last slice.
BORDER_DEPTH = 1000.0

_vtk_configured = False


def _use_all_cores() -> None:
    # Flying edges uses vtkSMPTools, whose default "Sequential" backend would
    # leave every core but one idle.
    global _vtk_configured
    if not _vtk_configured:
        smp = vtkSMPTools()
        if smp.GetBackend() == "Sequential":
            smp.SetBackend("STDThread")
        _vtk_configured = True


def check_smoothing(smoothing) -> float | None:
    """``smoothing`` as a factor in 0..1 (``None`` for none); else :class:`EncapsulatedSTLError`."""
    if smoothing is None:
        return None
    try:
        factor = float(smoothing)
    except (TypeError, ValueError):
        raise EncapsulatedSTLError(f"smoothing {smoothing!r} is not a number; give a factor from 0 (none) to 1") from None
    if isinstance(smoothing, bool) or not 0.0 <= factor <= 1.0:  # NaN fails too
        raise EncapsulatedSTLError(f"smoothing {smoothing!r}: give a factor from 0 (none) to 1")
    return factor


def check_decimate(decimate) -> int | None:
    """``decimate`` as a target triangle count of at least 4 (``None`` for none); else
    :class:`EncapsulatedSTLError`."""
    if decimate is None:
        return None
    if isinstance(decimate, bool) or not isinstance(decimate, (int, np.integer)):
        raise EncapsulatedSTLError(f"decimate {decimate!r}: give a whole number of triangles")
    if decimate < MIN_DECIMATE_TARGET:
        raise EncapsulatedSTLError(
            f"decimate {decimate}: a closed surface needs at least {MIN_DECIMATE_TARGET} triangles; "
            "give a larger target")
    return int(decimate)


def check_mesh(points: np.ndarray, faces: np.ndarray, path=None) -> None:
    """Refuse a surface that is no surface: too few triangles, non-finite or absurd
    coordinates, or flat (every point on one plane or line).

    Such meshes come from corrupt geometry (a zero or NaN voxel size, coordinates
    of 1e30 mm), never from a real structure, and must not be written.
    """
    if len(faces) < MIN_DECIMATE_TARGET:
        raise EncapsulatedSTLError(
            f"the surface has {len(faces)} triangle(s); a closed surface needs at least "
            f"{MIN_DECIMATE_TARGET}", path)
    # Points no triangle uses (left by merging coincident vertices) lie on used
    # ones, so all points are checked: no index pass over the faces is needed.
    used = np.asarray(points, dtype=np.float64)
    with np.errstate(all="ignore"):
        largest = float(np.abs(used).max()) if used.size else 0.0
    if not np.isfinite(largest):
        raise EncapsulatedSTLError("the surface has non-finite (NaN or infinite) coordinates: "
                                   "the volume's geometry is corrupt", path)
    if largest > MAX_COORDINATE_MM:
        raise EncapsulatedSTLError(
            f"the surface reaches {largest:.3g} mm from the origin, beyond any patient "
            f"({MAX_COORDINATE_MM:.0g} mm): the volume's geometry is corrupt", path)
    centred = used - used.mean(axis=0)
    spread = np.sqrt(np.maximum(np.linalg.eigvalsh(centred.T @ centred), 0.0))
    if spread[-1] == 0.0 or spread[0] <= FLATNESS_TOLERANCE * spread[-1]:
        raise EncapsulatedSTLError(
            "the surface is flat (all its points on one plane, line or point): the volume's "
            "geometry is degenerate (a zero voxel size or slice spacing?)", path)


def _levels(level) -> tuple[float, float | None]:
    if np.ndim(level) == 0:
        low, high = float(level), None
    else:
        values = [float(v) for v in level]
        if len(values) != 2:
            raise EncapsulatedSTLError(f"a level band is (low, high), not {level!r}")
        low, high = values
        if not high > low:
            raise EncapsulatedSTLError(f"level band ({low:g}, {high:g}): high must exceed low")
    if not np.isfinite(low) or (high is not None and not np.isfinite(high)):
        raise EncapsulatedSTLError(f"level {level!r} is not a finite number")
    return low, high


def _padded_buffer(volume: np.ndarray) -> np.ndarray | None:
    """The float32 array that ``volume`` is the interior of, one voxel in from each side."""
    base = volume.base
    if (
        not isinstance(base, np.ndarray)
        or base.dtype != np.float32
        or volume.dtype != np.float32
        or not base.flags.c_contiguous
        or base.shape != tuple(n + 2 for n in volume.shape)
    ):
        return None
    interior = base[1:-1, 1:-1, 1:-1]
    same = (
        interior.__array_interface__["data"][0] == volume.__array_interface__["data"][0]
        and interior.strides == volume.strides
    )
    return base if same else None


def _nan_first(value: float) -> float:
    """Sort key under which NaN is the largest value (``max`` keeps it)."""
    return np.inf if value != value else value


def _nan_last(value: float) -> float:
    """Sort key under which NaN is the smallest value (``min`` keeps it)."""
    return -np.inf if value != value else value


def _padded_field(
    volume: np.ndarray, low: float, high: float | None, in_place: bool = False
) -> tuple[np.ndarray, float]:
    """The scalar field to contour, with a one-voxel 'outside' border, and its iso value.

    A single level contours the values themselves; a band contours
    ``min(v - low, high - v)`` at 0, which is positive exactly inside the band and
    stays linear near each bound, so both bounds are sub-voxel.  With
    ``in_place``, a single level and a volume that is the interior of an array
    with a one-voxel margin (``read_series_volume(border=1)``), that margin is
    filled and the array is the field: nothing is copied and the volume's values
    are unchanged.
    """
    k, j, i = volume.shape
    padded = _padded_buffer(volume) if in_place and high is None else None
    if padded is not None:
        largest, smallest = float(volume.max()), float(volume.min())
    else:
        padded = np.empty((k + 2, j + 2, i + 2), dtype=np.float32)
        interior = padded[1:-1, 1:-1, 1:-1]
        # Slab by slab: each slice is copied (or transformed) and scanned for its
        # range while it is in cache, and no full-size temporary is ever made.
        largest, smallest = -np.inf, np.inf
        for s in range(k):
            if high is None:
                interior[s] = volume[s]
            else:
                np.subtract(volume[s], np.float32(low), out=interior[s], casting="unsafe")
                np.minimum(interior[s], np.float32(high) - volume[s], out=interior[s], casting="unsafe")
            # np.max gives NaN for a slab holding one, so the range shows it
            largest = max(largest, float(interior[s].max()), key=_nan_first)
            smallest = min(smallest, float(interior[s].min()), key=_nan_last)
    if not (np.isfinite(largest) and np.isfinite(smallest)):
        raise EncapsulatedSTLError("the volume holds NaN or infinite values; no surface can be made of them")
    iso = low if high is None else 0.0
    reach = max(largest - iso, iso - smallest, 1.0)
    outside = np.float32(iso - BORDER_DEPTH * reach)
    padded[0] = padded[-1] = outside
    padded[:, 0] = padded[:, -1] = outside
    padded[:, :, 0] = padded[:, :, -1] = outside
    return padded, iso


def _keep_largest_component(padded: np.ndarray, iso: float) -> None:
    """Set every voxel of the field outside the largest 26-connected inside region.

    Different 26-connected regions never share a marching-cubes cell, so the
    largest region's surface (cavities included) is exactly what it was.
    """
    from scipy import ndimage

    inside = padded >= iso
    labels, count = ndimage.label(inside, structure=np.ones((3, 3, 3), dtype=bool))
    del inside
    if count <= 1:
        return
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = int(np.argmax(sizes))
    outside = padded[0, 0, 0]
    for s in range(padded.shape[0]):
        others = labels[s] != largest
        others &= labels[s] != 0
        padded[s][others] = outside


def _image_data(padded: np.ndarray) -> vtkImageData:
    k, j, i = padded.shape
    image = vtkImageData()
    image.SetDimensions(i, j, k)  # VTK's x fastest = our i, the last numpy axis
    image.SetOrigin(-1.0, -1.0, -1.0)  # the border voxel sits at index -1
    image.SetSpacing(1.0, 1.0, 1.0)
    scalars = numpy_to_vtk(padded.reshape(-1), deep=False)
    scalars.SetName("field")
    image.GetPointData().SetScalars(scalars)
    return image


def _flying_edges(image: vtkImageData, iso: float) -> vtkFlyingEdges3D:
    """Flying edges at ``iso`` on ``image``, geometry only (no normals or scalars)."""
    contour = vtkFlyingEdges3D()
    contour.SetInputData(image)
    contour.SetValue(0, iso)
    contour.ComputeNormalsOff()
    contour.ComputeGradientsOff()
    contour.ComputeScalarsOff()
    contour.InterpolateAttributesOff()
    return contour


def _triangles(polydata: vtkPolyData) -> tuple[np.ndarray, np.ndarray]:
    points = vtk_to_numpy(polydata.GetPoints().GetData())
    polys = polydata.GetPolys()
    offsets = vtk_to_numpy(polys.GetOffsetsArray())
    if offsets.size > 1 and not np.all(np.diff(offsets) == 3):
        raise RuntimeError("surface filter returned non-triangle cells")
    faces = vtk_to_numpy(polys.GetConnectivityArray()).reshape(-1, 3)
    return points, faces


#: Points of flying edges this close to a voxel (in voxels) are put on it: two points on
#: different edges of one voxel, each nearer than this, would be closer to each other than
#: the float32 STL can tell apart (a 1e-4 voxel step is under its resolution at 800 mm).
ON_VOXEL_TOLERANCE = 1e-3


@njit(cache=True, parallel=True)
def _on_voxel(points, tolerance):
    """Which points sit on a voxel, within ``tolerance`` of integer coordinates; those
    are moved onto it (``points`` is changed)."""
    found = np.zeros(points.shape[0], np.bool_)
    for p in prange(points.shape[0]):
        x, y, z = points[p, 0], points[p, 1], points[p, 2]
        rx, ry, rz = np.floor(x + 0.5), np.floor(y + 0.5), np.floor(z + 0.5)
        if abs(x - rx) <= tolerance and abs(y - ry) <= tolerance and abs(z - rz) <= tolerance:
            found[p] = True
            points[p, 0], points[p, 1], points[p, 2] = rx, ry, rz
    return found


@njit(cache=True, parallel=True)
def _touching(faces, marked):
    """Which faces have a marked point."""
    found = np.zeros(faces.shape[0], np.bool_)
    for f in prange(faces.shape[0]):
        found[f] = marked[faces[f, 0]] or marked[faces[f, 1]] or marked[faces[f, 2]]
    return found


@njit(cache=True)
def _renumber_faces(faces, representative):
    """Faces through ``representative``, without those that became degenerate."""
    out = np.empty_like(faces)
    kept = 0
    for f in range(faces.shape[0]):
        a = representative[faces[f, 0]]
        b = representative[faces[f, 1]]
        c = representative[faces[f, 2]]
        if a != b and b != c and c != a:
            out[kept, 0] = a
            out[kept, 1] = b
            out[kept, 2] = c
            kept += 1
    return out[:kept]


def _printable_at_voxels(points: np.ndarray, faces: np.ndarray, on_voxels: np.ndarray):
    """Where points were merged on voxels at the level, the surface may fold onto itself
    (a fin of two opposite triangles) or meet itself at the voxel (two sheets through
    one point or one edge): the fins go, the sheets are drawn a hair apart
    (:func:`~.printability.separate_sheets`).  Only those points and their neighbours
    (the other end of an edge where sheets meet) are looked at, with every face around
    them: nothing else can have changed."""
    only = np.zeros(len(points), dtype=bool)
    only[on_voxels] = True
    only[faces[_touching(faces, only)].reshape(-1)] = True
    around = _touching(faces, only)
    local = drop_folded_pairs(faces[around])
    points, local = separate_sheets(np.asarray(points, dtype=np.float64), local, only=only)
    return points, np.concatenate([faces[~around], local])


def _merge_vertices_on_voxels(points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Faces with coincident vertices merged and the resulting degenerate faces dropped.

    A voxel whose value equals the level exactly (common: integer HU and an integer
    threshold) puts the crossing of every edge at that voxel on the voxel itself, so
    flying edges emits several points at one position and zero-area triangles
    between them.  Such points have integer index coordinates (points within
    :data:`ON_VOXEL_TOLERANCE` of a voxel are put on it first); only those are
    compared.  Merging them is an edge collapse: the surface stays closed and
    consistently oriented.  Points that lose their last face stay in ``points``.

    Returns the faces, and the points that others were merged into (None when none were).
    """
    on_voxel = np.flatnonzero(_on_voxel(points, ON_VOXEL_TOLERANCE))
    if on_voxel.size < 2:
        return faces, None
    # integer index coordinates (border at -1) as one int64 key per point
    grid = np.rint(points[on_voxel]).astype(np.int64) + 1
    extent = grid.max(axis=0) + 1
    keys = (grid[:, 2] * extent[1] + grid[:, 1]) * extent[0] + grid[:, 0]
    unique_keys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if unique_keys.size == on_voxel.size:
        return faces, None
    representative = np.arange(points.shape[0])
    representative[on_voxel] = on_voxel[first[inverse.reshape(-1)]]
    merged_into = np.unique(representative[on_voxel])
    return _renumber_faces(np.ascontiguousarray(faces, dtype=np.int64), representative), merged_into


def _polydata(points: np.ndarray, faces: np.ndarray) -> vtkPolyData:
    polydata = vtkPolyData()
    vtk_points = vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True))
    polydata.SetPoints(vtk_points)
    cells = vtkCellArray()
    connectivity = numpy_to_vtk(np.ascontiguousarray(faces.reshape(-1), dtype=np.int64), deep=True)
    offsets = numpy_to_vtk(np.arange(0, faces.size + 1, 3, dtype=np.int64), deep=True)
    cells.SetData(offsets, connectivity)
    polydata.SetPolys(cells)
    return polydata


def smoothing_pass_band(factor: float) -> float:
    """Windowed-sinc pass band for a smoothing factor in 0..1 (Slicer's mapping)."""
    return float(10.0 ** (-4.0 * factor))


def _smooth(points: np.ndarray, faces: np.ndarray, factor: float, progress) -> np.ndarray:
    """Windowed-sinc smoothed copy of the mesh's points (VTK's filter, see :mod:`.smoothing`)."""
    with task(progress, "Smoothing", SMOOTHING_ITERATIONS) as current:
        return windowed_sinc(
            points, faces, iterations=SMOOTHING_ITERATIONS,
            pass_band=smoothing_pass_band(factor), step=current.advance,
        )


def _uncrossed(unsmoothed: np.ndarray, smoothed: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The smoothed points, with the unsmoothed ones put back where the smoothed surface
    crosses itself (``smoothed`` is changed).

    Smoothing draws the two sides of a thin structure (a plate of bone, a thin gap)
    towards each other, and where it draws them through each other the surface
    crosses itself and no longer bounds a solid.  The unsmoothed surface does not
    cross itself, so the points of the crossing faces are put back, then those and
    their neighbours one ring wider each round, and after :data:`UNCROSS_ROUNDS`
    rounds the whole connected pieces they belong to (at last the whole surface).
    Everywhere else the smoothed surface is untouched.  Crossings are tested on the
    points rounded to float32, as the STL stores them.
    """
    stored = smoothed.astype(np.float32)  # as the STL stores them: what check will see
    search = CrossingSearch(stored, faces)
    crossing = search.crossing
    if not crossing.any():
        del search, stored
        release_freed_memory()
        return smoothed
    restored = np.zeros(len(smoothed), dtype=bool)
    for width in range(UNCROSS_ROUNDS + 2):
        marked = np.zeros(len(smoothed), dtype=bool)
        marked[faces[crossing].reshape(-1)] = True
        if width < UNCROSS_ROUNDS:
            for _ in range(width):
                marked[faces[_touching(faces, marked)].reshape(-1)] = True
        elif width == UNCROSS_ROUNDS:
            labels = component_labels(faces, len(smoothed))
            marked = np.isin(labels, labels[marked])
        else:
            marked[:] = True
        marked &= ~restored
        if not marked.any():
            break
        restored |= marked
        smoothed[marked] = unsmoothed[marked]
        stored[marked] = unsmoothed[marked]
        crossing = search.move(stored, _touching(faces, marked))
        if not crossing.any():
            break
    del search, stored
    release_freed_memory()
    return smoothed


def _decimate(polydata: vtkPolyData, target: int, progress) -> vtkPolyData:
    count = polydata.GetNumberOfCells()
    if target >= count:
        return polydata
    decimator = vtkQuadricDecimation()
    decimator.SetInputData(polydata)
    decimator.SetTargetReduction(1.0 - target / count)
    decimator.VolumePreservationOn()  # keeps the enclosed volume, hence no shrinkage
    with task(progress, "Decimating") as current:
        observe_vtk(decimator, current)
        decimator.Update()
    return decimator.GetOutput()


def extract_surface(volume: np.ndarray, geometry, level, **options) -> np.ndarray:
    """Closed iso-surface of a volume as ``(n, 3, 3)`` float64 triangles, LPS mm.

    The triangles of :func:`extract_surface_mesh` (same arguments), one array of
    vertex coordinates per triangle.
    """
    points, faces = extract_surface_mesh(volume, geometry, level, **options)
    return np.take(points, faces, axis=0)


def extract_surface_mesh(
    volume: np.ndarray,
    geometry,
    level,
    *,
    smoothing: float | None = DEFAULT_SMOOTHING,
    decimate: int | None = None,
    largest_component: bool = False,
    progress=None,
    release=None,
    overwrite_border: bool = False,
    path=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Closed iso-surface of a volume as an indexed mesh in patient LPS millimetres.

    Parameters
    ----------
    volume:
        ``(k, j, i)`` array of grey values (HU, probabilities, label masks as 0/1).
    geometry:
        Voxel index -> patient mapping: anything with ``lps_from_index((n, 3) ijk)``
        returning ``(n, 3)`` LPS mm and ``jacobian_sign()`` (``SliceGeometry``,
        ``AffineGeometry``).  Index ``(i, j, k)`` addresses ``volume[k, j, i]``.
    level:
        Iso value in the volume's units; the surface encloses ``v >= level``.  A
        ``(low, high)`` pair encloses ``low <= v <= high``, both bounds sub-voxel.
    smoothing:
        Windowed-sinc smoothing factor in 0..1 (pass band ``10**(-4 * factor)``);
        ``None`` or 0 keeps the exact iso-surface vertices.
    decimate:
        Target number of triangles; quadric decimation with volume preservation.
        Measured on the test phantoms, keeping 10 % of the triangles moves the
        surface by at most 0.1 mm RMS.
    largest_component:
        Keep only the largest 26-connected region of the inside (with its
        cavities), dropping separate pieces such as the CT table or noise specks.
    progress:
        A :class:`~.progress.Progress` to draw bars on, or ``None``.
    release:
        Called once the field to contour has been made from ``volume``, which
        is not used after that: a caller holding the volume's only other
        reference drops it there, so a copied volume is freed before meshing
        (with ``overwrite_border`` the volume is the field itself, and is freed
        with it right after flying edges).
    overwrite_border:
        ``volume`` is the interior view of an array with a one-voxel margin on
        every side, as ``read_series_volume(border=1)`` makes, and that margin
        may be overwritten: the array is then contoured in place instead of
        copied (saving a volume's worth of memory and time).  The volume's own
        values are never changed.  Ignored (the volume is copied) for a level
        band, with ``largest_component``, or when ``volume`` is not such a view.
    path:
        The file the volume came from, named in error messages.

    Returns
    -------
    (points, faces):
        ``(m, 3)`` float64 vertices, LPS mm, and ``(n, 3)`` int64 triangles indexing
        them; closed (the volume border is treated as outside, so surfaces
        crossing it are capped at the last voxel) and consistently oriented with
        outward normals by the right-hand rule, whatever the handedness of
        ``geometry``.  Both empty when no voxel reaches the level.

    Raises
    ------
    EncapsulatedSTLError
        For a volume that is not 3D, a malformed level band, a smoothing factor
        outside 0..1 or a decimation target under 4 (checked before any work),
        and for a surface that must not be written (:func:`check_mesh`: too few
        triangles, non-finite or absurd coordinates, flat).  Decimation that
        opens a closed surface or makes it non-manifold is refused, naming the
        triangle count before decimation, rather than written: give a larger
        target.
    """
    smoothing = check_smoothing(smoothing)
    decimate = check_decimate(decimate)
    volume = np.asarray(volume)
    if volume.ndim != 3 or min(volume.shape) < 1:
        raise EncapsulatedSTLError(f"a volume must be a 3D (k, j, i) array, not shape {volume.shape}")
    if volume.dtype == bool:
        volume = volume.view(np.uint8)
    low, high = _levels(level)
    _use_all_cores()

    # the largest-component filter edits the field, so it never works in place
    padded, iso = _padded_field(volume, low, high, in_place=overwrite_border and not largest_component)
    del volume
    if release is not None:
        release()
    if largest_component:
        _keep_largest_component(padded, iso)
    image = _image_data(padded)
    contour = _flying_edges(image, iso)
    with task(progress, "Extracting surface") as current:
        observe_vtk(contour, current)
        contour.Update()
    mesh = contour.GetOutput()
    # The output keeps its producer alive, and the producer its input image, whose
    # scalars hold the padded field: drop them so the field (as large as the
    # volume) is freed now, not when the mesh is.
    image.GetPointData().Initialize()
    del image, padded, contour
    if mesh.GetNumberOfCells() == 0:
        return np.zeros((0, 3), dtype=np.float64), np.zeros((0, 3), dtype=np.int64)

    index_points, faces = _triangles(mesh)
    faces, on_voxels = _merge_vertices_on_voxels(index_points, faces)
    if on_voxels is not None:
        index_points, faces = _printable_at_voxels(index_points, faces, on_voxels)
    with np.errstate(all="ignore"):  # a corrupt geometry's NaN is refused just below
        lps_points = geometry.lps_from_index(index_points)
    del mesh, index_points
    check_mesh(lps_points, faces, path)  # before smoothing or decimating corrupt points
    if smoothing:
        lps_points = _uncrossed(lps_points, _smooth(lps_points, faces, smoothing, progress), faces)
    if decimate and decimate < len(faces):
        before = len(faces)
        polydata = _decimate(_polydata(lps_points, faces), decimate, progress)
        lps_points, faces = _triangles(polydata)
        lps_points = np.asarray(lps_points, dtype=np.float64)
        # VTK's quadric decimation does not preserve topology: a small target can leave
        # holes, edges shared by three triangles, a single triangle, or sheets pulled
        # through each other.  What would not print is refused, as check sees it (the
        # float32 STL, outward as written below).
        outward = faces[:, ::-1] if geometry.jacobian_sign() < 0 else faces
        problems = (["fewer than four triangles"] if len(faces) < MIN_DECIMATE_TARGET
                    else check_printability(lps_points[outward].astype(np.float32)).problems)
        if problems:
            raise EncapsulatedSTLError(
                f"decimating the surface of {before} triangles to {decimate} left a mesh that would "
                f"not print ({'; '.join(problems)}); give a larger decimation target (or none)", path)
    if smoothing or decimate:
        check_mesh(lps_points, faces, path)

    # Flying edges orders each triangle so that its right-hand normal points from
    # high to low values in index space, i.e. out of the "v >= level" region; a
    # mirrored geometry flips that in patient space.
    if geometry.jacobian_sign() < 0:
        faces = faces[:, ::-1]
    return lps_points, np.ascontiguousarray(faces, dtype=np.int64)


def extract_mask_surface(
    mask: np.ndarray, geometry, *, level: float = 0.5, **options
) -> np.ndarray:
    """Surface of a binary (0/1, bool) or fractional (0..1) mask at ``level``.

    For a fractional mask (DICOM SEG FRACTIONAL, probability maps) 0.5 is the
    sub-voxel boundary; for a binary mask it is half-way between voxel centres.
    Other arguments as :func:`extract_surface`.
    """
    return extract_surface(mask, geometry, level, **options)
