"""Segments from a DICOM Segmentation (SEG): binary, fractional and label map.

Every frame of a SEG carries its own plane position (ImagePositionPatient) in the
shared or per-frame functional groups.  Frames are placed in a stack by that
position, never by frame order or by the tilt attribute:

- With the source series given and on its grid (same orientation and pixel
  spacing, every frame on one of its slice planes with one common in-plane
  offset), the stack is the source's own slices.  This is exact for gantry
  tilt and uneven spacing, and slices for which the SEG stores no frame (highdicom
  leaves out empty frames) are simply empty.
- Otherwise the stack is the SEG's own frame positions, with gaps that are whole
  multiples of the smallest gap filled by empty interpolated slices, so left-out
  empty frames never join the parts on either side of them.

A SEG in another Frame of Reference than the source series is refused.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom

from .color import rgb_from_dicom_lab
from .segments import Segment, SegmentationError
from .slice_geometry import SliceGeometry
from .source_series import SourceSeries

#: Same orientation when the direction cosines differ by less than this.
ORIENTATION_TOLERANCE = 1e-4
#: A frame is on a slice plane when within this (mm), or a quarter of the
#: smallest slice gap when that is less.
PLANE_TOLERANCE_MM = 0.1
#: Frames share the source grid when their in-plane offsets agree within this (pixels).
IN_PLANE_TOLERANCE_PX = 0.01


def _functional(dataset, frame_groups, sequence: str, keyword: str, path: Path):
    """``keyword`` of ``sequence`` from a frame's functional groups, else the shared ones."""
    for groups in (frame_groups, dataset.get("SharedFunctionalGroupsSequence", [None])[0]):
        if groups is not None and sequence in groups and len(groups[sequence].value):
            item = groups[sequence][0]
            if keyword in item:
                return item[keyword].value
    raise SegmentationError(f"a frame has no {sequence} > {keyword}", path)


def _frame_table(seg, path: Path):
    """Per-frame positions (n, 3), segment numbers (n,), orientation (6,), spacing (2,)."""
    count = int(seg.get("NumberOfFrames", 1) or 1)
    per_frame = seg.get("PerFrameFunctionalGroupsSequence", [])
    if len(per_frame) != count:
        raise SegmentationError(
            f"{len(per_frame)} per-frame functional group items for {count} frames", path)
    labelmap = str(seg.get("SegmentationType", "")).upper() == "LABELMAP"
    positions = np.empty((count, 3))
    numbers = np.zeros(count, dtype=np.int64)
    orientations = np.empty((count, 6))
    spacings = np.empty((count, 2))
    for f, groups in enumerate(per_frame):
        positions[f] = _functional(seg, groups, "PlanePositionSequence", "ImagePositionPatient", path)
        orientations[f] = _functional(seg, groups, "PlaneOrientationSequence", "ImageOrientationPatient", path)
        spacings[f] = _functional(seg, groups, "PixelMeasuresSequence", "PixelSpacing", path)
        if not labelmap:
            numbers[f] = _functional(seg, groups, "SegmentIdentificationSequence",
                                     "ReferencedSegmentNumber", path)
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_TOLERANCE:
        raise SegmentationError("frames of different orientations; only one stack of parallel "
                                "planes can be meshed", path)
    if np.abs(spacings - spacings[0]).max() > 1e-4:
        raise SegmentationError("frames of different pixel spacings", path)
    return positions, numbers, orientations[0], spacings[0]


def _on_reference_grid(positions, orientation, spacing, geometry: SliceGeometry | None):
    """Slice index per frame and the stack geometry, if the frames lie on ``geometry``'s grid."""
    if geometry is None:
        return None
    if (np.abs(orientation[:3] - geometry.row_direction).max() > ORIENTATION_TOLERANCE
            or np.abs(orientation[3:] - geometry.column_direction).max() > ORIENTATION_TOLERANCE
            or np.abs(np.asarray(spacing) - geometry.pixel_spacing).max() > 1e-4):
        return None
    normal = geometry.normal
    along = geometry.positions @ normal
    gaps = np.diff(along)
    tolerance = min(PLANE_TOLERANCE_MM, 0.25 * float(np.abs(gaps).min())) if gaps.size else PLANE_TOLERANCE_MM
    heights = positions @ normal
    k = np.argmin(np.abs(heights[:, None] - along[None, :]), axis=1)
    if np.abs(heights - along[k]).max() > tolerance:
        return None
    offset = positions - geometry.positions[k]
    row_spacing, column_spacing = geometry.pixel_spacing
    pixels = np.stack([offset @ geometry.row_direction / column_spacing,
                       offset @ geometry.column_direction / row_spacing], axis=1)
    if np.abs(pixels - pixels[0]).max() > IN_PLANE_TOLERANCE_PX:
        return None
    shift = geometry.in_plane_offsets(pixels[:1, 0], pixels[:1, 1])[0]
    return k, replace(geometry, positions=geometry.positions + shift)


def _own_stack(positions, orientation, spacing, path: Path):
    """Slice index per frame and the geometry of the SEG's own frame positions."""
    normal = np.cross(orientation[:3], orientation[3:])
    heights = positions @ normal
    order = np.argsort(heights, kind="stable")
    distinct = [order[0]]
    for f in order[1:]:
        if heights[f] - heights[distinct[-1]] > 1e-3:
            distinct.append(f)
    planes = positions[distinct]
    plane_heights = heights[distinct]
    k_of_plane = np.arange(len(distinct))
    if len(distinct) > 2:
        gaps = np.diff(plane_heights)
        step = gaps.min()
        multiples = np.round(gaps / step).astype(np.int64)
        if np.all(np.abs(gaps - multiples * step) <= 0.01 * step):
            filled = [planes[0]]
            for n in range(1, len(planes)):
                m = multiples[n - 1]
                filled.extend(planes[n - 1] + (planes[n] - planes[n - 1]) * (t / m) for t in range(1, m + 1))
            k_of_plane = np.r_[0, np.cumsum(multiples)]
            planes = np.array(filled)
    k = k_of_plane[np.argmin(np.abs(heights[:, None] - plane_heights[None, :]), axis=1)]
    if len(planes) > 1:
        # one empty slice beyond each end, one step away, where the left-out empty
        # frames were: the surface closes half a step beyond the last frame, as it
        # would on the source grid, not on the last frame itself
        planes = np.vstack([2 * planes[0] - planes[1], planes, 2 * planes[-1] - planes[-2]])
        k = k + 1
    misplaced = np.linalg.norm(positions - planes[k], axis=1)
    if misplaced.max() > 1e-3 * max(1.0, float(np.abs(positions).max())):
        raise SegmentationError("frames in one plane have different positions (tiled frames are "
                                "not supported)", path)
    geometry = SliceGeometry(planes, orientation[:3], orientation[3:], tuple(spacing))
    return k, geometry


def _description(item) -> str | None:
    text = str(item.get("SegmentDescription", "") or "").strip()
    if text:
        return text
    codes = item.get("SegmentedPropertyTypeCodeSequence")
    meaning = str(codes[0].get("CodeMeaning", "")) if codes else ""
    label = str(item.get("SegmentLabel", ""))
    return meaning if meaning and meaning.casefold() != label.casefold() else None


def read_dicom_seg_segments(
    path: str | os.PathLike,
    reference: SourceSeries | None = None,
    geometry: SliceGeometry | None = None,
) -> list[Segment]:
    """Every segment of a DICOM SEG, in Segment Sequence order.

    Parameters
    ----------
    path:
        The SEG file (BINARY, FRACTIONAL or LABELMAP).
    reference:
        The source series, sorted along the normal; its Frame of Reference must be
        the SEG's.
    geometry:
        Its exact slice geometry; frames on that grid are placed on its slices.

    Returns
    -------
    list of Segment
        Binary and label-map segments are masks (level 0.5); fractional ones
        carry the raw values with ``scale = 1 / MaximumFractionalValue``.

    Raises
    ------
    SegmentationError
        Unreadable or malformed SEG, or another Frame of Reference.
    """
    path = Path(path)
    try:
        # pydicom, not highdicom's segread: what is read here is plain attributes
        # and the pixel data, and highdicom 0.22 (the last for pydicom 2, Slicer 5.6
        # to 5.10) refuses the Label Map Segmentation SOP Class.
        seg = pydicom.dcmread(path)
    except Exception as error:  # pydicom raises many types for broken files
        raise SegmentationError(f"cannot read as DICOM SEG: {error}", path) from None
    frame_of_reference = str(seg.get("FrameOfReferenceUID", "") or "")
    if reference is not None and reference.frame_of_reference_uid and frame_of_reference \
            and frame_of_reference != reference.frame_of_reference_uid:
        raise SegmentationError(
            f"the SEG is in Frame of Reference {frame_of_reference}, the reference series "
            f"{reference.series_instance_uid} in {reference.frame_of_reference_uid}; give the "
            "series the segmentation was made on", path)
    positions, numbers, orientation, spacing = _frame_table(seg, path)
    try:
        pixels = np.asarray(seg.pixel_array)
    except Exception as error:
        raise SegmentationError(f"cannot decode the SEG pixel data: {error}", path) from None
    pixels = pixels.reshape(len(positions), int(seg.Rows), int(seg.Columns))
    placed = _on_reference_grid(positions, orientation, spacing, geometry)
    k, stack = placed if placed is not None else _own_stack(positions, orientation, spacing, path)
    kind = str(seg.SegmentationType).upper()
    shape = (stack.slice_count, int(seg.Rows), int(seg.Columns))
    scale = 1.0 / float(seg.get("MaximumFractionalValue", 1) or 1) if kind == "FRACTIONAL" else 1.0
    if kind == "LABELMAP":
        labels = np.zeros(shape, dtype=pixels.dtype)
        labels[k] = pixels
    segments = []
    for item in seg.SegmentSequence:
        number = int(item.SegmentNumber)
        if kind == "LABELMAP" and number == 0:
            continue  # the label map's background, everything outside the segments
        if kind == "LABELMAP":
            data, label_value = labels, number
        else:
            data, label_value = np.zeros(shape, dtype=pixels.dtype), None
            mine = np.flatnonzero(numbers == number)
            data[k[mine]] = pixels[mine]
        lab = item.get("RecommendedDisplayCIELabValue")
        segments.append(Segment(
            number=number,
            name=str(item.get("SegmentLabel", "") or f"Segment {number}"),
            data=data,
            geometry=stack,
            label_value=label_value,
            scale=scale,
            color=rgb_from_dicom_lab(lab) if lab is not None and len(lab) == 3 else None,
            description=_description(item),
            path=path,
        ))
    return segments
