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

Refused with a :class:`.segment.SegmentationError` naming the file, the ROI and
the contour: ROI numbers and Contour Data that are text, NaN, infinite or of the
wrong count; ROI numbers given twice or referenced without an ROI; contours
reaching beyond the reference image by more than its own width or height
(:data:`MAX_CONTOUR_OVERHANG`: a structure set of another series, or corrupt
coordinates, which would otherwise be rasterised onto an enormous grid); and
rasterising that would need more memory than is available.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import check_memory
from ..series.slice_geometry import SliceGeometry
from ..series.source_series import SourceSeries
from .segment import (
    RT_STRUCTURE_SET_STORAGE,
    Segment,
    SegmentationError,
    dicom_numbers,
    one_line,
    quiet_reading,
    read_dicom,
    shifted_geometry,
)

#: Lines sampled across each pixel row for anti-aliased coverage.
SUBSAMPLES_PER_ROW = 16
#: A contour belongs to a slice when within this of its plane (mm, along the
#: normal), or a quarter of the smallest slice gap when that is less.
PLANE_TOLERANCE_MM = 0.5
#: How far a contour may reach beyond the reference image, in image widths and
#: heights: a contour may well leave the scanned field (a body outline cut by it),
#: but one farther out was drawn elsewhere or its coordinates are corrupt.
MAX_CONTOUR_OVERHANG = 1.0
#: Bytes of working memory per edge crossing of a sample line while rasterising.
_BYTES_PER_CROSSING = 96


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
    dataset = read_dicom(path, "DICOM")
    with quiet_reading():
        sop_class = one_line(dataset.get("SOPClassUID", "") or "")
    if sop_class != RT_STRUCTURE_SET_STORAGE:
        raise SegmentationError("not a DICOM RT Structure Set (RTSTRUCT)", path)
    return dataset


def _closed_contours(item) -> list:
    return [c for c in item.get("ContourSequence", []) or []
            if one_line(c.get("ContourGeometricType", "CLOSED_PLANAR") or "").upper() == "CLOSED_PLANAR"]


def _roi_number(item, keyword: str, path: Path, where: str) -> int:
    return dicom_numbers(item, keyword, path, where, count=1, integer=True)[0]


def _display_color(item) -> tuple[float, float, float] | None:
    """ROI Display Color as sRGB in 0..1; ``None`` when absent or unreadable (a display hint)."""
    try:
        color = dicom_numbers(item, "ROIDisplayColor", None, count=3, required=False)
    except SegmentationError:
        return None
    return None if color is None else tuple(float(min(max(v / 255.0, 0.0), 1.0)) for v in color)


def _rois(dataset, path: Path) -> list[tuple[RoiSummary, list]]:
    contours_of = {}
    colors = {}
    for n, item in enumerate(dataset.get("ROIContourSequence", []) or [], start=1):
        if "ReferencedROINumber" not in item:
            raise SegmentationError(f"ROI Contour item {n} has no Referenced ROI Number", path)
        number = _roi_number(item, "ReferencedROINumber", path, f"ROI Contour item {n}")
        if number in contours_of:
            raise SegmentationError(f"two ROI Contour items for ROI number {number}", path)
        contours_of[number] = _closed_contours(item)
        colors[number] = _display_color(item)
    types = {}
    for n, item in enumerate(dataset.get("RTROIObservationsSequence", []) or [], start=1):
        if "ReferencedROINumber" in item:
            number = _roi_number(item, "ReferencedROINumber", path, f"RT ROI Observations item {n}")
            types[number] = one_line(item.get("RTROIInterpretedType", "") or "") or None
    rois = []
    for n, item in enumerate(dataset.get("StructureSetROISequence", []) or [], start=1):
        if "ROINumber" not in item:
            raise SegmentationError(f"Structure Set ROI item {n} has no ROI Number", path)
        number = _roi_number(item, "ROINumber", path, f"Structure Set ROI item {n}")
        if any(summary.number == number for summary, _contours in rois):
            raise SegmentationError(f"ROI number {number} is given to two ROIs", path)
        contours = contours_of.get(number, [])
        frame = one_line(item.get("ReferencedFrameOfReferenceUID", "") or "")
        summary = RoiSummary(
            number=number,
            name=one_line(item.get("ROIName", "") or "") or f"ROI {number}",
            interpreted_type=types.get(number),
            contour_count=len(contours),
            color=colors.get(number),
            frame_of_reference_uid=frame or None,
        )
        rois.append((summary, contours))
    if not rois:
        raise SegmentationError("the structure set has no ROIs (empty Structure Set ROI Sequence)", path)
    orphans = sorted(set(contours_of) - {summary.number for summary, _contours in rois})
    if orphans:
        raise SegmentationError(
            f"contours for ROI number {orphans[0]}, which the Structure Set ROI Sequence does not list", path)
    return rois


def list_rois(path: str | os.PathLike) -> list[RoiSummary]:
    """The ROIs of an RTSTRUCT file in file order (no image series needed).

    Raises
    ------
    SegmentationError
        Unreadable, not an RTSTRUCT, or without ROIs.
    """
    path = Path(path)
    dataset = _read(path)
    with quiet_reading():
        return [summary for summary, _contours in _rois(dataset, path)]


def _contour_points(contour, path: Path, name: str, index: int) -> np.ndarray:
    where = f"ROI '{name}' contour {index}"
    points = dicom_numbers(contour, "ContourData", path, where)
    if points.size < 9 or points.size % 3:
        raise SegmentationError(
            f"{where}: ContourData has {points.size} coordinates; a closed contour needs "
            "at least 3 points (x, y, z triplets)", path)
    return points.reshape(-1, 3)


def rasterise_slice(polygons: list[np.ndarray], i0: int, j0: int, columns: int, rows: int,
                    path=None) -> np.ndarray:
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

    path:
        The file, for messages.

    Returns
    -------
    numpy.ndarray
        ``(rows, columns)`` float32 coverage in 0..1.  Exact along rows, sampled
        on :data:`SUBSAMPLES_PER_ROW` lines across each row.

    Raises
    ------
    SegmentationError
        When the edge crossings to sort need more memory than is available.
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
    check_memory(int(counts.sum()) * _BYTES_PER_CROSSING + 16 * rows * (columns + 1),
                 "rasterising the contours", path, SegmentationError)
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
    contours: list[np.ndarray], geometry: SliceGeometry, name: str = "ROI", path=None,
    image_size: tuple[int, int] | None = None,
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
    image_size:
        ``(columns, rows)`` of the reference images: contours reaching beyond
        them by more than :data:`MAX_CONTOUR_OVERHANG` image sizes are refused.

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
        message gives its distance to the nearest slice), one far outside the
        image, or a grid that would not fit in memory.
    """
    normal = geometry.normal
    along = geometry.positions @ normal
    tolerance = _slice_tolerance(along)
    row_spacing, column_spacing = geometry.pixel_spacing
    slices = []
    polygons = []
    for index, points in enumerate(contours, start=1):
        height = points @ normal
        k = int(np.argmin(np.abs(along - height.mean())))
        miss = float(np.abs(height - along[k]).max())
        if miss > tolerance:
            raise SegmentationError(
                f"ROI '{name}' contour {index}: at {height.mean():.2f} mm along the slice normal it lies "
                f"{miss:.2f} mm from the nearest slice plane of the reference series (tolerance "
                f"{tolerance:.2f} mm); the structure set was drawn on another series or the "
                "contour is not planar", path)
        offset = points - geometry.positions[k]
        polygon = np.stack([offset @ geometry.row_direction / column_spacing,
                            offset @ geometry.column_direction / row_spacing], axis=1)
        if image_size is not None:
            size = np.asarray(image_size, dtype=np.float64)
            reach = np.maximum(-polygon.min(axis=0), polygon.max(axis=0) - (size - 1)) / size
            if reach.max() > MAX_CONTOUR_OVERHANG:
                raise SegmentationError(
                    f"ROI '{name}' contour {index}: it reaches {reach.max():.3g} image widths or heights "
                    f"beyond the {int(size[0])} x {int(size[1])} reference image (at most "
                    f"{MAX_CONTOUR_OVERHANG:g}); the structure set was drawn on another series or its "
                    "coordinates are corrupt", path)
        slices.append(k)
        polygons.append(polygon)
    slices = np.asarray(slices)
    everything = np.concatenate(polygons)
    i0, j0 = np.floor(everything.min(axis=0)).astype(np.int64) - 1
    i1, j1 = np.ceil(everything.max(axis=0)).astype(np.int64) + 2
    k0 = max(int(slices.min()) - 1, 0)
    k1 = min(int(slices.max()) + 2, geometry.slice_count)
    check_memory(4 * (k1 - k0) * int(j1 - j0) * int(i1 - i0), f"rasterising ROI '{name}'", path,
                 SegmentationError)
    volume = np.zeros((k1 - k0, j1 - j0, i1 - i0), dtype=np.float32)
    for k in np.unique(slices):
        on_slice = [polygons[n] for n in np.flatnonzero(slices == k)]
        volume[k - k0] = rasterise_slice(on_slice, int(i0), int(j0), int(i1 - i0), int(j1 - j0), path)
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
    first = reference.datasets[0]
    image_size = tuple(dicom_numbers(first, keyword, path, "the reference series", count=1, integer=True)[0]
                       for keyword in ("Columns", "Rows"))
    with quiet_reading():
        return _segments(dataset, reference, geometry, image_size, path)


def _segments(dataset, reference, geometry, image_size, path: Path) -> list[Segment]:
    frame = reference.frame_of_reference_uid
    segments = []
    for summary, contours in _rois(dataset, path):
        if summary.frame_of_reference_uid and frame and summary.frame_of_reference_uid != frame:
            raise SegmentationError(
                f"ROI '{summary.name}' is in Frame of Reference {summary.frame_of_reference_uid}, "
                f"the reference series in {frame}; give the series the structure set was drawn on",
                path)
        if contours:
            points = [_contour_points(c, path, summary.name, n) for n, c in enumerate(contours, start=1)]
            volume, box = rasterise_roi(points, geometry, summary.name, path, image_size)
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
