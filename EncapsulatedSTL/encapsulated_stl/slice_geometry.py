"""Exact voxel-index -> patient (LPS, mm) mappings.

Voxel index convention used everywhere in this package: ``(i, j, k)`` with ``i`` the
column index (along the row direction, ImageOrientationPatient[0:3]), ``j`` the row
index (along the column direction, ImageOrientationPatient[3:6]) and ``k`` the slice
index in the sorted stack.  Volumes are numpy arrays indexed ``[k, j, i]``.

:class:`SliceGeometry` maps through each slice's own ImagePositionPatient, with
positions interpolated linearly between the two neighbouring slices for fractional
``k``.  This is exact for gantry tilt (a sheared grid), uneven or missing slices and
oblique orientations, without ever resampling.  The Gantry/Detector Tilt attribute
(0018,1120) is never used: vendors disagree on its sign.

:class:`AffineGeometry` is the same interface for volumes defined by one 4 x 4 matrix
(NIfTI, NRRD).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


#: Points per block in :meth:`SliceGeometry.lps_from_index`.
_BLOCK = 1 << 15


@dataclass(frozen=True)
class SliceGeometry:
    """Geometry of a stack of parallel, equally oriented DICOM slices.

    Attributes
    ----------
    positions:
        ``(k, 3)`` ImagePositionPatient of each slice in stack order (LPS, mm).
    row_direction, column_direction:
        Unit vectors ImageOrientationPatient[0:3] and [3:6] (LPS).
    pixel_spacing:
        PixelSpacing as stored: (spacing between rows, spacing between columns), mm.
    """

    positions: np.ndarray
    row_direction: np.ndarray
    column_direction: np.ndarray
    pixel_spacing: tuple[float, float]

    def __post_init__(self):
        positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        object.__setattr__(self, "positions", positions)
        for name in ("row_direction", "column_direction"):
            vector = np.asarray(getattr(self, name), dtype=np.float64)
            object.__setattr__(self, name, vector / np.linalg.norm(vector))
        object.__setattr__(self, "pixel_spacing", tuple(float(v) for v in self.pixel_spacing))

    @classmethod
    def from_datasets(cls, datasets: Sequence) -> SliceGeometry:
        """Geometry of datasets already sorted in stack order."""
        first = datasets[0]
        orientation = np.asarray(first.ImageOrientationPatient, dtype=np.float64)
        return cls(
            positions=np.array([ds.ImagePositionPatient for ds in datasets], dtype=np.float64),
            row_direction=orientation[:3],
            column_direction=orientation[3:],
            pixel_spacing=tuple(first.PixelSpacing),
        )

    @property
    def slice_count(self) -> int:
        return int(self.positions.shape[0])

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal, row x column direction (LPS)."""
        n = np.cross(self.row_direction, self.column_direction)
        return n / np.linalg.norm(n)

    def in_plane_offsets(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``(n, 3)`` LPS offsets of column ``i`` and row ``j`` from a slice's origin."""
        row_spacing, column_spacing = self.pixel_spacing
        return (np.asarray(i, dtype=np.float64)[:, None] * (column_spacing * self.row_direction)
                + np.asarray(j, dtype=np.float64)[:, None] * (row_spacing * self.column_direction))

    def slice_origin(self, k: np.ndarray) -> np.ndarray:
        """``(n, 3)`` ImagePositionPatient at fractional slice index ``k``.

        Linear between the two neighbouring slices; beyond the ends, continued with
        the first or last gap (needed for surfaces closed just outside the stack).
        """
        k = np.asarray(k, dtype=np.float64)
        count = self.slice_count
        if count == 1:
            return np.broadcast_to(self.positions[0], k.shape + (3,)) + k[..., None] * self.normal
        lower = np.clip(np.floor(k).astype(np.int64), 0, count - 2)
        fraction = (k - lower)[..., None]
        return self.positions[lower] + fraction * (self.positions[lower + 1] - self.positions[lower])

    def lps_from_index(self, ijk: np.ndarray) -> np.ndarray:
        """Map ``(n, 3)`` voxel indices ``(i, j, k)`` to ``(n, 3)`` LPS millimetres."""
        ijk = np.asarray(ijk).reshape(-1, 3)
        row_spacing, column_spacing = self.pixel_spacing
        in_plane = np.stack([column_spacing * self.row_direction, row_spacing * self.column_direction])
        lps = np.empty(ijk.shape, dtype=np.float64)
        # In blocks, so the temporaries stay in cache (a surface has millions of
        # points): (i, j) -> in-plane offset by one small matrix product, plus the
        # slice origin interpolated along the stack.
        for start in range(0, ijk.shape[0], _BLOCK):
            part = ijk[start:start + _BLOCK]
            out = lps[start:start + _BLOCK]
            np.matmul(part[:, :2].astype(np.float64), in_plane, out=out)
            out += self.slice_origin(part[:, 2])
        return lps

    def index_from_lps(self, points: np.ndarray) -> np.ndarray:
        """Map ``(n, 3)`` LPS millimetres to fractional voxel indices ``(i, j, k)``.

        The inverse of :meth:`lps_from_index` (exact, also for sheared and unevenly
        spaced stacks): ``k`` from the position along the slice normal, then ``i`` and
        ``j`` from the in-plane offset from that slice's interpolated origin.  Beyond
        the ends of the stack ``k`` continues with the first or last gap.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        normal = self.normal
        along = points @ normal
        if self.slice_count == 1:
            k = along - self.positions[0] @ normal
        else:
            stops = self.positions @ normal
            if stops[-1] < stops[0]:
                stops, reverse = stops[::-1], True
            else:
                reverse = False
            lower = np.clip(np.searchsorted(stops, along, side="right") - 1, 0, self.slice_count - 2)
            k = lower + (along - stops[lower]) / (stops[lower + 1] - stops[lower])
            if reverse:
                k = (self.slice_count - 1) - k
        offsets = points - self.slice_origin(k)
        row_spacing, column_spacing = self.pixel_spacing
        i = offsets @ self.row_direction / column_spacing
        j = offsets @ self.column_direction / row_spacing
        return np.stack([i, j, k], axis=1)

    def is_orthogonal(self, tolerance_mm: float = 0.01) -> bool:
        """True when the stack is an evenly spaced, unsheared grid (one affine is exact)."""
        affine = self.orthogonal_geometry()
        k = np.arange(self.slice_count, dtype=np.float64)
        origins = affine.lps_from_index(np.stack([np.zeros_like(k), np.zeros_like(k), k], axis=1))
        return bool(np.abs(origins - self.positions).max() <= tolerance_mm)

    def orthogonal_geometry(self) -> AffineGeometry:
        """The tilt-ignoring reading many loaders make: first slice, normal, mean spacing.

        Kept to show (and test) how far that reading is from the exact geometry.
        """
        row_spacing, column_spacing = self.pixel_spacing
        if self.slice_count > 1:
            along = (self.positions[-1] - self.positions[0]) @ self.normal
            spacing = along / (self.slice_count - 1)
        else:
            spacing = 1.0
        matrix = np.eye(4)
        matrix[:3, 0] = self.row_direction * column_spacing
        matrix[:3, 1] = self.column_direction * row_spacing
        matrix[:3, 2] = self.normal * spacing
        matrix[:3, 3] = self.positions[0]
        return AffineGeometry(matrix)

    def jacobian_sign(self) -> float:
        """+1 if increasing (i, j, k) is right-handed in LPS, -1 if mirrored."""
        if self.slice_count > 1:
            step = self.positions[-1] - self.positions[0]
        else:
            step = self.normal
        return float(np.sign(np.dot(np.cross(self.row_direction, self.column_direction), step)))


@dataclass(frozen=True)
class AffineGeometry:
    """Voxel index ``(i, j, k)`` -> LPS mm through one 4 x 4 matrix."""

    matrix: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "matrix", np.asarray(self.matrix, dtype=np.float64).reshape(4, 4))

    def lps_from_index(self, ijk: np.ndarray) -> np.ndarray:
        ijk = np.asarray(ijk, dtype=np.float64).reshape(-1, 3)
        return ijk @ self.matrix[:3, :3].T + self.matrix[:3, 3]

    def jacobian_sign(self) -> float:
        return float(np.sign(np.linalg.det(self.matrix[:3, :3])))
