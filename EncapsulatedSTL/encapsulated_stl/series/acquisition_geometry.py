"""Check a viewer's volume against the exact geometry of its DICOM slices.

A viewer such as 3D Slicer shows a tilted or unevenly spaced CT in one of several
ways: a sheared voxel grid, an orthogonal grid under a displacement ("acquisition")
transform, an orthogonal grid with that transform hardened (voxels resampled), or a
plain orthogonal grid that is simply wrong.  A model drawn on the volume sits where
the volume was shown.  This module decides, from measured facts only, whether that
place is the true patient position and, where it is not, maps model vertices
through the exact per-slice geometry, so a correction is made once and only where
needed:

1. The volume's world position of every slice's corners is compared with the DICOM
   slice positions (:data:`TOLERANCE_MM`).  Equal: the model is already exact.
2. Different, and the volume's voxels are the stored slices unchanged: the volume
   was shown at the wrong place, so vertices go back to voxel index through the
   volume's own world mapping and forward to patient coordinates through
   :class:`~.slice_geometry.SliceGeometry`.
3. Different, but the voxels were resampled (another grid size, or other values):
   the anatomy was moved into the volume's grid (a hardened acquisition transform),
   so the model is already exact.

Coordinates: RAS is the viewer's world (``(x, y, z)`` LPS ``-> (-x, -y, z)``), LPS the
DICOM patient system; both in millimetres.  Voxel indices are ``(i, j, k)``, volumes
``[k, j, i]``, as in :mod:`.slice_geometry`.  Nothing here imports Slicer: the caller
passes its world mappings as functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import SeriesError
from .slice_geometry import SliceGeometry
from .source_series import SourceSeries
from .volume import decoded_pixels, image_size, rescale, sort_along_normal

#: Slice positions closer than this (mm) are the same position.
TOLERANCE_MM = 0.01
#: Share of voxels that must equal the stored pixels for "the stored slices unchanged".
STORED_SLICE_AGREEMENT = 0.99

_RAS_FROM_LPS = np.array([-1.0, -1.0, 1.0])


def ras_from_lps(points: np.ndarray) -> np.ndarray:
    """Patient LPS -> RAS (the same flip both ways), any ``(..., 3)`` array, mm."""
    return np.asarray(points, dtype=np.float64) * _RAS_FROM_LPS


def lps_from_ras(points: np.ndarray) -> np.ndarray:
    """RAS -> patient LPS, any ``(..., 3)`` array, mm."""
    return np.asarray(points, dtype=np.float64) * _RAS_FROM_LPS


def stack_order(source: SourceSeries) -> SourceSeries:
    """The series' instances sorted along the slice normal (ascending), as viewers stack them."""
    order = sort_along_normal(source, list(range(len(source))), source.series_instance_uid)
    return SourceSeries(
        source.series_instance_uid,
        files=[source.files[i] for i in order],
        datasets=[source.datasets[i] for i in order],
    )


def _slice_corners(columns: int, rows: int, slices: int) -> np.ndarray:
    """``(slices * 4, 3)`` voxel indices of the four in-plane corners of every slice."""
    k = np.repeat(np.arange(slices, dtype=np.float64), 4)
    i = np.tile([0.0, columns - 1.0, 0.0, columns - 1.0], slices)
    j = np.tile([0.0, 0.0, rows - 1.0, rows - 1.0], slices)
    return np.stack([i, j, k], axis=1)


def _stored_slice(path) -> np.ndarray:
    pixels, dataset = decoded_pixels(path)
    slope, intercept = rescale(dataset, path)
    return pixels.astype(np.float64) * slope + intercept


@dataclass
class VolumeGeometryCheck:
    """Outcome of :func:`check_volume_geometry`.

    Attributes
    ----------
    deviation_mm:
        Largest distance between a slice corner as the volume shows it (world RAS)
        and as the DICOM headers place it; ``None`` when the grids cannot be paired.
    holds_stored_slices:
        The volume's voxels are the stored slices (one voxel slice per instance,
        same values), i.e. nothing was resampled.
    needs_correction:
        Vertices must be mapped through :attr:`geometry` (see :func:`exact_lps`).
    geometry:
        Exact voxel index -> LPS geometry of the instances in the volume's slice order.
    explanation:
        One sentence for logs and dialogs.
    """

    deviation_mm: float | None
    holds_stored_slices: bool
    needs_correction: bool
    geometry: SliceGeometry | None
    explanation: str


def check_volume_geometry(
    world_ras_from_index: Callable[[np.ndarray], np.ndarray],
    shape: tuple[int, int, int],
    source: SourceSeries,
    voxels_of_slice: Callable[[int], np.ndarray],
    tolerance_mm: float = TOLERANCE_MM,
) -> VolumeGeometryCheck:
    """Compare a viewer's volume with the exact geometry of the instances it shows.

    Parameters
    ----------
    world_ras_from_index:
        Maps ``(n, 3)`` voxel indices of the volume to ``(n, 3)`` world RAS (mm),
        through the volume's IJK-to-RAS matrix and every parent transform.
    shape:
        The volume's voxel array shape ``(k, j, i)``.
    source:
        The instances the volume was loaded from (headers; files for pixel data).
    voxels_of_slice:
        Returns the volume's voxel values ``[j, i]`` of slice ``k``.

    Raises
    ------
    SeriesError
        A slice's geometry headers are unusable (the message names the file).
    """
    stack = stack_order(source)
    expected = (len(stack), *image_size(stack.first, stack.files[0]))
    if tuple(int(n) for n in shape) != expected:
        return VolumeGeometryCheck(
            None, False, False, None,
            f"the volume's grid {tuple(shape)} is not the series' {expected} (slices, rows, "
            "columns): it was resampled, so it is shown where its voxels were placed",
        )
    corners = _slice_corners(expected[2], expected[1], expected[0])
    shown = np.asarray(world_ras_from_index(corners), dtype=np.float64)
    best = None
    for datasets in (stack.datasets, stack.datasets[::-1]):
        geometry = SliceGeometry.from_datasets(datasets)
        error = np.linalg.norm(shown - ras_from_lps(geometry.lps_from_index(corners)), axis=1)
        if best is None or error.max() < best[1].max():
            best = (geometry, error, datasets is stack.datasets)
    geometry, error, ascending = best
    deviation = float(error.max())
    if deviation <= tolerance_mm:
        return VolumeGeometryCheck(
            deviation, True, False, geometry,
            f"the volume is shown at the DICOM slice positions (within {deviation:.4f} mm)",
        )
    worst = int(np.argmax(error)) // 4
    files = stack.files if ascending else stack.files[::-1]
    try:
        stored = _stored_slice(files[worst])
    except SeriesError as exc:
        return VolumeGeometryCheck(
            deviation, True, True, geometry,
            f"the volume is shown up to {deviation:.3f} mm from the DICOM slice positions; "
            f"its voxels could not be compared with {files[worst]} ({exc}), so they are "
            "taken as the stored slices and vertices are mapped through the exact geometry",
        )
    shown_voxels = np.asarray(voxels_of_slice(worst), dtype=np.float64)
    same = stored.shape == shown_voxels.shape and (
        np.mean(np.abs(stored - shown_voxels) <= 0.5) >= STORED_SLICE_AGREEMENT
    )
    if same:
        return VolumeGeometryCheck(
            deviation, True, True, geometry,
            f"the volume holds the stored slices but shows them up to {deviation:.3f} mm from "
            "their DICOM positions: vertices are mapped through the exact slice geometry",
        )
    return VolumeGeometryCheck(
        deviation, False, False, geometry,
        f"the volume's grid is up to {deviation:.3f} mm from the DICOM slice positions but its "
        "voxels were resampled onto it (hardened acquisition transform): no correction needed",
    )


def exact_lps(
    points_ras: np.ndarray,
    index_from_world_ras: Callable[[np.ndarray], np.ndarray],
    geometry: SliceGeometry,
) -> np.ndarray:
    """Exact patient LPS (mm) of world points drawn on a wrongly shown volume.

    ``index_from_world_ras`` is the inverse of the volume's world mapping (world RAS
    -> voxel index, through every parent transform and RAS-to-IJK); each point's
    voxel index is then placed through its own slices' positions.
    """
    points = np.asarray(points_ras, dtype=np.float64).reshape(-1, 3)
    return geometry.lps_from_index(index_from_world_ras(points))


@dataclass(frozen=True)
class ShownVolume:
    """How a viewer shows a volume: its voxel grid placed in the world.

    Attributes
    ----------
    shape:
        The voxel array shape ``(k, j, i)``.
    world_ras_from_index:
        ``(n, 3)`` voxel indices ``(i, j, k)`` -> ``(n, 3)`` world RAS (mm), through
        the volume's IJK-to-RAS matrix and every parent transform.
    index_from_world_ras:
        The inverse: world RAS (mm) -> voxel index.
    voxels_of_slice:
        The voxel values ``[j, i]`` of slice ``k``.
    """

    shape: tuple[int, int, int]
    world_ras_from_index: Callable[[np.ndarray], np.ndarray]
    index_from_world_ras: Callable[[np.ndarray], np.ndarray]
    voxels_of_slice: Callable[[int], np.ndarray]


def patient_lps_mapping(
    source: SourceSeries | None, shown: ShownVolume | None
) -> tuple[Callable[[np.ndarray], np.ndarray], str | None]:
    """How to take world RAS points drawn on ``shown`` to exact patient LPS (mm).

    The volume is checked once (:func:`check_volume_geometry`); the returned function
    then maps any ``(..., 3)`` array of world RAS points, by the RAS/LPS flip where the
    volume is shown at its DICOM positions (or was resampled, or there is no source
    or no volume to compare), through the exact slice geometry where it is not.

    Returns
    -------
    (to_lps, explanation)
        ``explanation`` is the check's sentence, ``None`` when nothing was checked.

    Raises
    ------
    SeriesError
        A slice's geometry headers are unusable.
    """
    if source is None or shown is None:
        return lps_from_ras, None
    check = check_volume_geometry(shown.world_ras_from_index, shown.shape, source, shown.voxels_of_slice)
    if not check.needs_correction:
        return lps_from_ras, check.explanation

    def to_lps(points_ras: np.ndarray) -> np.ndarray:
        points = np.asarray(points_ras, dtype=np.float64)
        return exact_lps(points, shown.index_from_world_ras, check.geometry).reshape(points.shape)

    return to_lps, check.explanation
