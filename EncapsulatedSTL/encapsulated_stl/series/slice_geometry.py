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

import functools
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from pydicom.datadict import dictionary_VR, tag_for_keyword

from ..errors import SeriesError

#: Points per block in :meth:`SliceGeometry.lps_from_index`.
_BLOCK = 1 << 15

#: PixelSpacing values (mm) outside this range are refused as damaged headers:
#: 0.1 um is finer than any microscope slide scanner, 1 m wider than any patient.
#: Zero would collapse a model to a line, a negative value mirror it, and a huge
#: one overflow the float32 coordinates of the STL.
PIXEL_SPACING_RANGE_MM = (1e-4, 1e3)
#: ImagePositionPatient coordinates beyond +-1 km (mm) are refused: no patient is
#: there, and float32 vertices would lose their sub-millimetre precision.
POSITION_LIMIT_MM = 1e6
#: How far ImageOrientationPatient may be from two orthogonal unit vectors:
#: |row.row - 1|, |column.column - 1| and |row.column| must each be below it, the
#: test and the value of GDCM's ``DirectionCosines::IsValid``.  Within it, the
#: directions are replaced by the nearest orthonormal pair (rounding in the
#: stored decimal strings); beyond it the header is refused.
ORTHONORMAL_TOLERANCE = 1e-3

#: A DICOM Decimal String (or Integer String) value, without Python's extras
#: (``1_000``, ``nan``, ``inf``, ``0x10``).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def attribute_name(keyword: str) -> str:
    """``PixelSpacing (0028,0030)``: an attribute as messages name it."""
    tag = tag_for_keyword(keyword)
    return keyword if tag is None else f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


#: Value representations whose raw bytes are backslash-separated text.
_TEXT_VRS = {"DS", "IS", "UI", "CS", "LO", "SH"}


def header_values(dataset, keyword: str) -> list | None:
    """The values of ``keyword`` in ``dataset`` as a list, ``None`` when absent or empty.

    Text values still as read from the file are split here, without pydicom's
    conversion: it costs more than the rest of a slice's checks together, and
    warns of what the checks report anyway.  Other values are converted by
    pydicom with its warnings silenced; one it cannot convert is returned as
    the text ``'<unreadable>'``, which no check accepts.
    """
    tag = _tag_of(keyword)
    element = dataset._dict.get(tag) if tag is not None else None
    if element is None:
        return None
    raw = getattr(element, "value_tell", None) is not None and isinstance(element.value, bytes)
    if raw and (element.VR or dictionary_VR(tag)) in _TEXT_VRS:
        text = element.value.decode("latin-1").strip(" \x00")
        return [value.strip(" \x00") for value in text.split("\\")] if text else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = dataset[tag].value
        except Exception:  # pydicom raises many types for values it cannot convert
            return ["<unreadable>"]
    if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, Sequence)):
        return [value]
    return list(value)


@functools.lru_cache(maxsize=None)
def _tag_of(keyword: str) -> int | None:
    return tag_for_keyword(keyword)


def number(value) -> float | None:
    """``value`` as a finite float when it is a number or a DICOM decimal string, else ``None``."""
    if isinstance(value, bool):
        return None
    try:
        if type(value) in (int, float) or isinstance(value, (np.integer, np.floating)):
            result = float(value)
        elif isinstance(value, (str, int, float, Decimal)):  # DSfloat, IS, DSdecimal keep their text
            text = str(value).strip()
            if not _DECIMAL.fullmatch(text):
                return None
            result = float(text)
        else:
            return None
    except (OverflowError, ValueError):
        return None
    return result if math.isfinite(result) else None


def header_numbers(dataset, keyword: str) -> tuple[list | None, list[float] | None]:
    """``(values as stored, the same as finite floats or None if any is not one)``."""
    values = header_values(dataset, keyword)
    if values is None:
        return None, None
    numbers = [number(v) for v in values]
    return values, (None if any(n is None for n in numbers) else numbers)


def shown(values) -> str:
    """Stored values for a message: one line, at most about 80 characters."""
    if values is None:
        return "nothing"
    text = repr([v if isinstance(v, str) else str(v) for v in values])
    return text if len(text) <= 80 else text[:76] + "...]"


def pixel_spacing(dataset, path=None, keyword: str = "PixelSpacing") -> tuple[float, float]:
    """PixelSpacing (between rows, between columns; mm), checked.

    Raises
    ------
    SeriesError
        Unless there are two finite numbers within :data:`PIXEL_SPACING_RANGE_MM`.
    """
    values, numbers = header_numbers(dataset, keyword)
    low, high = PIXEL_SPACING_RANGE_MM
    if numbers is None or len(numbers) != 2 or not all(low <= n <= high for n in numbers):
        raise SeriesError(
            f"{attribute_name(keyword)} must be two numbers from {low:g} to {high:g} mm, "
            f"found {shown(values)}", path)
    return numbers[0], numbers[1]


def image_position(dataset, path=None) -> tuple[float, float, float]:
    """ImagePositionPatient (LPS, mm), checked.

    Raises
    ------
    SeriesError
        Unless there are three finite numbers within +-:data:`POSITION_LIMIT_MM`.
    """
    values, numbers = header_numbers(dataset, "ImagePositionPatient")
    if numbers is None or len(numbers) != 3 or not all(abs(n) <= POSITION_LIMIT_MM for n in numbers):
        raise SeriesError(
            f"{attribute_name('ImagePositionPatient')} must be three finite numbers within "
            f"+-{POSITION_LIMIT_MM:g} mm, found {shown(values)}", path)
    return numbers[0], numbers[1], numbers[2]


def image_orientation(dataset, path=None) -> tuple[float, ...]:
    """ImageOrientationPatient (row, then column direction cosines; LPS), checked.

    The six values are returned as stored; :class:`SliceGeometry` makes them
    exactly orthonormal.

    Raises
    ------
    SeriesError
        Unless there are six finite numbers forming two unit vectors at a right
        angle within :data:`ORTHONORMAL_TOLERANCE`.
    """
    values, numbers = header_numbers(dataset, "ImageOrientationPatient")
    name = attribute_name("ImageOrientationPatient")
    if numbers is None or len(numbers) != 6:
        raise SeriesError(f"{name} must be six finite numbers, found {shown(values)}", path)
    problem = orthonormal_problem(numbers[:3], numbers[3:])
    if problem:
        raise SeriesError(f"{name} is not two orthogonal unit vectors ({problem}), found {shown(values)}", path)
    return tuple(numbers)


def orthonormal_problem(row, column) -> str | None:
    """What keeps ``row`` and ``column`` from being orthonormal within the tolerance, or ``None``.

    Plain floats: called once per slice, where numpy's per-call cost would dominate.
    """
    rr = sum(a * a for a in row)
    cc = sum(a * a for a in column)
    rc = sum(a * b for a, b in zip(row, column))
    if not all(math.isfinite(v) for v in (rr, cc, rc)):
        return "values too large"
    if abs(rr - 1) < ORTHONORMAL_TOLERANCE and abs(cc - 1) < ORTHONORMAL_TOLERANCE and abs(rc) < ORTHONORMAL_TOLERANCE:
        return None
    return (f"lengths {math.sqrt(rr):.4g} and {math.sqrt(cc):.4g}, cosine of their angle {rc:.4g}; "
            f"tolerance {ORTHONORMAL_TOLERANCE:g}")


def _orthonormal(row: np.ndarray, column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The orthonormal pair nearest to ``row`` and ``column`` (both checked to be close)."""
    row = row / np.linalg.norm(row)
    column = column / np.linalg.norm(column)
    if abs(float(row @ column)) > 1e-12:
        # the polar factor of [row column]: the nearest orthonormal pair, both
        # directions moved alike
        u, _s, vt = np.linalg.svd(np.stack([row, column], axis=1), full_matrices=False)
        pair = u @ vt
        row, column = pair[:, 0], pair[:, 1]
    return row, column


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
        # The last guard before a model is placed: whoever built the geometry,
        # nothing degenerate (NaN, collapsed, mirrored by a negative spacing,
        # sheared by non-orthogonal directions) gets past it.
        try:
            positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
            row = np.asarray(self.row_direction, dtype=np.float64).reshape(3)
            column = np.asarray(self.column_direction, dtype=np.float64).reshape(3)
            spacing = tuple(float(v) for v in self.pixel_spacing)
        except (TypeError, ValueError, OverflowError) as error:
            raise SeriesError(f"slice geometry is not numeric: {error}") from None
        if not positions.size or not np.isfinite(positions).all() or np.abs(positions).max() > POSITION_LIMIT_MM:
            raise SeriesError(f"slice positions must be finite and within +-{POSITION_LIMIT_MM:g} mm")
        problem = orthonormal_problem(row.tolist(), column.tolist())
        if problem:
            raise SeriesError(f"row and column directions are not orthonormal ({problem})")
        low, high = PIXEL_SPACING_RANGE_MM
        if len(spacing) != 2 or not all(low <= v <= high for v in spacing):
            raise SeriesError(f"pixel spacing must be two numbers from {low:g} to {high:g} mm, found {spacing}")
        row, column = _orthonormal(row, column)
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "row_direction", row)
        object.__setattr__(self, "column_direction", column)
        object.__setattr__(self, "pixel_spacing", spacing)

    @classmethod
    def from_datasets(cls, datasets: Sequence) -> SliceGeometry:
        """Geometry of datasets already sorted in stack order.

        Raises
        ------
        SeriesError
            A slice's ImagePositionPatient, or the first one's
            ImageOrientationPatient or PixelSpacing, is missing or unusable
            (see :func:`image_position`, :func:`image_orientation`,
            :func:`pixel_spacing`); the message names the file.
        """
        if not datasets:
            raise SeriesError("no slices to take a geometry from")
        first = datasets[0]
        path = getattr(first, "filename", None)
        orientation = image_orientation(first, path)
        return cls(
            positions=np.array([image_position(ds, getattr(ds, "filename", None)) for ds in datasets]),
            row_direction=orientation[:3],
            column_direction=orientation[3:],
            pixel_spacing=pixel_spacing(first, path),
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
