"""Segments from a DICOM RT Structure Set, rasterised in the source slices' own geometry.

An RTSTRUCT gives each ROI as closed planar contours in patient LPS mm, one or
more per image slice.  Each contour is put on the slice whose plane holds it,
matched by position along the slice normal, and projected onto that slice's own
in-plane axes from that slice's own ImagePositionPatient.  So a tilted (sheared)
stack, uneven or missing slices and oblique orientations are all exact: no
contour is ever assumed axial, and the tilt attribute is never read.

Within a slice the contours of an ROI combine by the even-odd rule, so inner
contours are holes (and keyhole contours work too).  Coverage is computed
anti-aliased: exactly along each pixel row, and with
:data:`SUBSAMPLES_PER_ROW` lines across each row, giving every pixel the
fraction of its area inside (0..1).  The surface at fraction 0.5 then follows the
contour to a small fraction of a pixel in-plane; across slices it lies half-way
between a contoured slice and the next one without a contour.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from .segments import RT_STRUCTURE_SET_STORAGE, Segment, SegmentationError, shifted_geometry
from .slice_geometry import SliceGeometry
from .source_series import SourceSeries

#: Lines sampled across each pixel row for anti-aliased coverage.
SUBSAMPLES_PER_ROW = 16
#: A contour belongs to a slice when within this of its plane (mm, along the
#: normal), or a quarter of the smallest slice gap when that is less.
PLANE_TOLERANCE_MM = 0.5


@dataclass
class RoiSummary:
    """One ROI of a structure set, as ``rtstruct-rois`` lists it.

    Attributes
    ----------
    number:
        ROI Number.
    name:
        ROI Name.
    interpreted_type:
        RT ROI Interpreted Type (ORGAN, PTV, EXTERNAL...), if given.
    contour_count:
        Number of closed planar contours.
    color:
        ROI Display Color as sRGB in 0..1, if given.
    frame_of_reference_uid:
        Referenced Frame of Reference UID of the ROI.
    """

    number: int
    name: str
    interpreted_type: str | None
    contour_count: int
    color: tuple[float, float, float] | None
    frame_of_reference_uid: str | None


def _read(path: Path):
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError) as error:
        raise SegmentationError(f"cannot read as DICOM: {error}", path) from None
    if str(dataset.get("SOPClassUID", "")) != RT_STRUCTURE_SET_STORAGE:
        raise SegmentationError("not a DICOM RT Structure Set (RTSTRUCT)", path)
    return dataset


def _closed_contours(item) -> list:
    return [c for c in item.get("ContourSequence", []) or []
            if str(c.get("ContourGeometricType", "CLOSED_PLANAR")).upper() == "CLOSED_PLANAR"]


def _rois(dataset, path: Path) -> list[tuple[RoiSummary, list]]:
    contours_of = {}
    colors = {}
    for item in dataset.get("ROIContourSequence", []) or []:
        if "ReferencedROINumber" not in item:
            raise SegmentationError("an ROI Contour item has no Referenced ROI Number", path)
        number = int(item.ReferencedROINumber)
        contours_of[number] = _closed_contours(item)
        color = item.get("ROIDisplayColor")
        if color is not None and len(color) == 3:
            colors[number] = tuple(min(max(float(v) / 255.0, 0.0), 1.0) for v in color)
    types = {int(item.ReferencedROINumber): str(item.get("RTROIInterpretedType", "") or "") or None
             for item in dataset.get("RTROIObservationsSequence", []) or []
             if "ReferencedROINumber" in item}
    rois = []
    for item in dataset.get("StructureSetROISequence", []) or []:
        if "ROINumber" not in item:
            raise SegmentationError("a Structure Set ROI item has no ROI Number", path)
        number = int(item.ROINumber)
        contours = contours_of.get(number, [])
        frame = item.get("ReferencedFrameOfReferenceUID")
        summary = RoiSummary(
            number=number,
            name=str(item.get("ROIName", "") or f"ROI {number}"),
            interpreted_type=types.get(number),
            contour_count=len(contours),
            color=colors.get(number),
            frame_of_reference_uid=str(frame) if frame else None,
        )
        rois.append((summary, contours))
    if not rois:
        raise SegmentationError("the structure set has no ROIs (empty Structure Set ROI Sequence)", path)
    return rois


def list_rois(path: str | os.PathLike) -> list[RoiSummary]:
    """The ROIs of an RTSTRUCT file in file order (no image series needed).

    Raises
    ------
    SegmentationError
        Unreadable, not an RTSTRUCT, or without ROIs.
    """
    path = Path(path)
    return [summary for summary, _contours in _rois(_read(path), path)]


def _contour_points(contour, path: Path, name: str) -> np.ndarray:
    try:
        points = np.asarray(contour.ContourData, dtype=np.float64)
    except (AttributeError, ValueError, TypeError):
        raise SegmentationError(f"ROI '{name}': a contour has no valid Contour Data", path) from None
    if points.size < 9 or points.size % 3 or not np.isfinite(points).all():
        raise SegmentationError(
            f"ROI '{name}': a contour has {points.size} coordinates; a closed contour needs "
            "at least 3 points (x, y, z triplets)", path)
    return points.reshape(-1, 3)


def rasterise_slice(polygons: list[np.ndarray], i0: int, j0: int, columns: int, rows: int) -> np.ndarray:
    """Fraction of each pixel inside polygons combined by the even-odd rule.

    Parameters
    ----------
    polygons:
        ``(m, 2)`` vertex arrays in fractional pixel index ``(i, j)`` (column, row);
        pixel ``(i, j)`` is the square ``[i - 0.5, i + 0.5) x [j - 0.5, j + 0.5)``.
        Each polygon is closed implicitly (last vertex to first).
    i0, j0, columns, rows:
        The pixel window to fill: columns ``i0 .. i0 + columns - 1``, rows
        ``j0 .. j0 + rows - 1``.  Polygons must lie inside it.

    Returns
    -------
    numpy.ndarray
        ``(rows, columns)`` float32 coverage in 0..1.  Exact along rows, sampled
        on :data:`SUBSAMPLES_PER_ROW` lines across each row.
    """
    start = np.concatenate([p for p in polygons])
    end = np.concatenate([np.roll(p, -1, axis=0) for p in polygons])
    s = SUBSAMPLES_PER_ROW
    # sample line r lies at y = j0 - 0.5 + (r + 0.5) / s; an edge crosses lines with
    # low <= y < high (half-open, so a vertex on a line is counted once).
    low = np.minimum(start[:, 1], end[:, 1])
    high = np.maximum(start[:, 1], end[:, 1])
    first = np.ceil((low - (j0 - 0.5)) * s - 0.5).astype(np.int64)
    stop = np.ceil((high - (j0 - 0.5)) * s - 0.5).astype(np.int64)
    counts = np.maximum(stop - first, 0)
    edge = np.repeat(np.arange(len(start)), counts)
    line = np.repeat(first, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    y = j0 - 0.5 + (line + 0.5) / s
    x0, y0 = start[edge, 0], start[edge, 1]
    x1, y1 = end[edge, 0], end[edge, 1]
    x = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    # even-odd: along each line the sorted crossings alternate entering / leaving
    order = np.lexsort((x, line))
    line, x = line[order], x[order]
    group_start = np.r_[0, np.flatnonzero(np.diff(line)) + 1]
    rank = np.arange(len(line)) - np.repeat(group_start, np.diff(np.r_[group_start, len(line)]))
    sign = np.where(rank % 2 == 0, 1.0, -1.0) / s
    # a crossing at x covers (p + 0.5 - x) of its own pixel p and all of those after
    pixel = np.floor(x + 0.5).astype(np.int64) - i0
    row = line // s
    width = columns + 1
    partial = np.bincount(row * width + pixel, sign * (pixel + i0 + 0.5 - x), minlength=rows * width)
    steps = np.bincount(row * width + pixel + 1, sign, minlength=rows * width)
    coverage = partial.reshape(rows, width) + np.cumsum(steps.reshape(rows, width), axis=1)
    return np.clip(coverage[:, :columns], 0.0, 1.0).astype(np.float32)


def _slice_tolerance(along: np.ndarray) -> float:
    gaps = np.diff(np.sort(along))
    return min(PLANE_TOLERANCE_MM, 0.25 * float(gaps.min())) if gaps.size else PLANE_TOLERANCE_MM


def rasterise_roi(
    contours: list[np.ndarray], geometry: SliceGeometry, name: str = "ROI", path=None
) -> tuple[np.ndarray, SliceGeometry]:
    """Fraction-inside volume of closed planar contours on a stack's own slices.

    Parameters
    ----------
    contours:
        ``(m, 3)`` LPS mm points of each closed planar contour.
    geometry:
        The exact geometry of the sorted source slices.
    name, path:
        For messages.

    Returns
    -------
    volume, geometry:
        ``[k, j, i]`` float32 fractions over the smallest box of slices and pixels
        holding the contours plus one voxel, and that box's geometry (each slice
        keeping its own ImagePositionPatient).

    Raises
    ------
    SegmentationError
        A contour that is not planar or lies on no slice of the stack (the
        message gives its distance to the nearest slice).
    """
    normal = geometry.normal
    along = geometry.positions @ normal
    tolerance = _slice_tolerance(along)
    row_spacing, column_spacing = geometry.pixel_spacing
    slices = []
    polygons = []
    for points in contours:
        height = points @ normal
        k = int(np.argmin(np.abs(along - height.mean())))
        miss = float(np.abs(height - along[k]).max())
        if miss > tolerance:
            raise SegmentationError(
                f"ROI '{name}': a contour at {height.mean():.2f} mm along the slice normal lies "
                f"{miss:.2f} mm from the nearest slice plane of the reference series (tolerance "
                f"{tolerance:.2f} mm); the structure set was drawn on another series or the "
                "contour is not planar", path)
        offset = points - geometry.positions[k]
        slices.append(k)
        polygons.append(np.stack([offset @ geometry.row_direction / column_spacing,
                                  offset @ geometry.column_direction / row_spacing], axis=1))
    slices = np.asarray(slices)
    everything = np.concatenate(polygons)
    i0, j0 = np.floor(everything.min(axis=0)).astype(np.int64) - 1
    i1, j1 = np.ceil(everything.max(axis=0)).astype(np.int64) + 2
    k0 = max(int(slices.min()) - 1, 0)
    k1 = min(int(slices.max()) + 2, geometry.slice_count)
    volume = np.zeros((k1 - k0, j1 - j0, i1 - i0), dtype=np.float32)
    for k in np.unique(slices):
        on_slice = [polygons[n] for n in np.flatnonzero(slices == k)]
        volume[k - k0] = rasterise_slice(on_slice, int(i0), int(j0), int(i1 - i0), int(j1 - j0))
    return volume, shifted_geometry(geometry, int(i0), int(j0), k0, k1)


def read_rtstruct_segments(
    path: str | os.PathLike, reference: SourceSeries, geometry: SliceGeometry | None = None
) -> list[Segment]:
    """Every ROI of an RTSTRUCT as a fractional segment on the reference slices.

    Parameters
    ----------
    path:
        The RTSTRUCT file.
    reference:
        Its image series, sorted along the normal (see
        :func:`.segments.reference_stack`).
    geometry:
        The exact geometry of ``reference``; computed from its headers if omitted.

    Raises
    ------
    SegmentationError
        Unreadable file, an ROI in another Frame of Reference than the series, or
        a contour on none of its slices.  ROIs without contours give empty segments.
    """
    path = Path(path)
    dataset = _read(path)
    if geometry is None:
        geometry = SliceGeometry.from_datasets(reference.datasets)
    frame = reference.frame_of_reference_uid
    segments = []
    for summary, contours in _rois(dataset, path):
        if summary.frame_of_reference_uid and frame and summary.frame_of_reference_uid != frame:
            raise SegmentationError(
                f"ROI '{summary.name}' is in Frame of Reference {summary.frame_of_reference_uid}, "
                f"the reference series in {frame}; give the series the structure set was drawn on",
                path)
        if contours:
            points = [_contour_points(c, path, summary.name) for c in contours]
            volume, box = rasterise_roi(points, geometry, summary.name, path)
        else:
            volume, box = np.zeros((1, 1, 1), dtype=np.float32), geometry
        segments.append(Segment(
            number=summary.number,
            name=summary.name,
            data=volume,
            geometry=box,
            color=summary.color,
            description=summary.interpreted_type,
            path=path,
        ))
    return segments
