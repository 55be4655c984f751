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

A SEG in another Frame of Reference than the source series is refused, and so is
one whose numbers cannot be trusted (:class:`.segment.SegmentationError` naming
the file, the frame and the attribute): positions, orientations and spacings
that are text, NaN, infinite or of the wrong count, orientations that are not
two orthogonal unit vectors, spacings that are not positive, segment numbers
that are not whole or that frames reference without a Segment Sequence item,
and pixel data shorter than its frame count and matrix declare.  What would be
allocated (the frames, each segment's slices) is checked against the memory
available before it is.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..files import check_memory
from ..iod.color import rgb_from_dicom_lab
from ..series.slice_geometry import SliceGeometry
from ..series.source_series import SourceSeries
from .segment import (
    Segment,
    SegmentationError,
    dicom_numbers,
    one_line,
    quiet_reading,
    read_dicom,
    shifted_geometry,
)

#: Same orientation when the direction cosines differ by less than this.
ORIENTATION_TOLERANCE = 1e-4
#: A frame is on a slice plane when within this (mm), or a quarter of the
#: smallest slice gap when that is less.
PLANE_TOLERANCE_MM = 0.1
#: Frames share the source grid when their in-plane offsets agree within this (pixels).
IN_PLANE_TOLERANCE_PX = 0.01
#: How far ImageOrientationPatient may be from two orthogonal unit vectors
#: (|row.row - 1|, |column.column - 1|, |row.column|; GDCM's test and value).
ORTHONORMAL_TOLERANCE = 1e-3
#: Frame positions (mm) farther from the origin than this are not of a patient.
POSITION_LIMIT_MM = 1e6
#: The most slices the SEG's own stack may have once gaps of left-out empty frames
#: are filled: far more than any scan, few enough to allocate.
MAX_STACK_SLICES = 65536


def _functional_item(dataset, frame_groups, sequence: str, keyword: str, frame: int, path: Path):
    """The item of ``sequence`` that holds ``keyword``: the frame's own, else the shared one."""
    shared = dataset.get("SharedFunctionalGroupsSequence")
    for groups in (frame_groups, shared[0] if shared else None):
        if groups is not None and sequence in groups and len(groups[sequence].value):
            item = groups[sequence][0]
            if keyword in item:
                return item
    raise SegmentationError(f"frame {frame + 1} has no {sequence} > {keyword}", path)


def _frame_numbers(dataset, groups, sequence, keyword, frame, path, count=None, integer=False):
    item = _functional_item(dataset, groups, sequence, keyword, frame, path)
    return dicom_numbers(item, keyword, path, f"frame {frame + 1}", count=count, integer=integer)


def _frame_table(seg, labelmap: bool, path: Path):
    """Per-frame positions (n, 3), segment numbers (n,), orientation (6,), spacing (2,)."""
    count = dicom_numbers(seg, "NumberOfFrames", path, count=1, integer=True, required=False)
    count = 1 if count is None else count[0]
    if count < 1:
        raise SegmentationError(f"NumberOfFrames is {count}", path)
    per_frame = seg.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != count:
        raise SegmentationError(
            f"{len(per_frame)} per-frame functional group items for {count} frames", path)
    positions = np.empty((count, 3))
    numbers = np.zeros(count, dtype=np.int64)
    orientations = np.empty((count, 6))
    spacings = np.empty((count, 2))
    for f, groups in enumerate(per_frame):
        positions[f] = _frame_numbers(seg, groups, "PlanePositionSequence", "ImagePositionPatient", f, path, 3)
        orientations[f] = _frame_numbers(seg, groups, "PlaneOrientationSequence", "ImageOrientationPatient",
                                         f, path, 6)
        spacings[f] = _frame_numbers(seg, groups, "PixelMeasuresSequence", "PixelSpacing", f, path, 2)
        if not labelmap:
            numbers[f] = _frame_numbers(seg, groups, "SegmentIdentificationSequence",
                                        "ReferencedSegmentNumber", f, path, 1, integer=True)[0]
    far = np.flatnonzero(np.abs(positions).max(axis=1) > POSITION_LIMIT_MM)
    if far.size:
        raise SegmentationError(
            f"frame {far[0] + 1}: ImagePositionPatient is beyond any patient (more than "
            f"{POSITION_LIMIT_MM:g} mm from the origin)", path)
    bad = np.flatnonzero(~(spacings > 0.0).all(axis=1))
    if bad.size:
        raise SegmentationError(
            f"frame {bad[0] + 1}: PixelSpacing {spacings[bad[0]].tolist()} must be positive mm", path)
    row, column = orientations[0, :3], orientations[0, 3:]
    if (abs(row @ row - 1.0) >= ORTHONORMAL_TOLERANCE or abs(column @ column - 1.0) >= ORTHONORMAL_TOLERANCE
            or abs(row @ column) >= ORTHONORMAL_TOLERANCE):
        raise SegmentationError(
            f"ImageOrientationPatient {orientations[0].tolist()} is not two orthogonal unit vectors "
            f"(tolerance {ORTHONORMAL_TOLERANCE:g})", path)
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
        multiples = np.round(gaps / step)
        if multiples.sum() >= MAX_STACK_SLICES:
            raise SegmentationError(
                f"the frames span {multiples.sum():.0f} slice steps of {step:.3g} mm, more than the "
                f"{MAX_STACK_SLICES} slices a stack may have; give the source series", path)
        multiples = multiples.astype(np.int64)
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
    text = one_line(item.get("SegmentDescription", "") or "")
    if text:
        return text
    codes = item.get("SegmentedPropertyTypeCodeSequence")
    meaning = one_line(codes[0].get("CodeMeaning", "")) if codes else ""
    label = one_line(item.get("SegmentLabel", ""))
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
    # pydicom, not highdicom's segread: what is read here is plain attributes and
    # the pixel data, and highdicom 0.22 (the last for pydicom 2, Slicer 5.6 to
    # 5.10) refuses the Label Map Segmentation SOP Class.  Values are decoded on
    # access, so all of it runs with pydicom's warnings silenced (they are checked).
    seg = read_dicom(path, "DICOM SEG")
    with quiet_reading():
        return _segments(seg, reference, geometry, path)


def _pixel_frames(seg, count: int, path: Path) -> np.ndarray:
    """The frames as a ``(count, rows, columns)`` array, once their size is checked."""
    rows, columns, bits = (dicom_numbers(seg, keyword, path, count=1, integer=True)[0]
                           for keyword in ("Rows", "Columns", "BitsAllocated"))
    if rows < 1 or columns < 1:
        raise SegmentationError(f"a frame of {rows} x {columns} pixels", path)
    if bits not in (1, 8, 16):
        raise SegmentationError(f"BitsAllocated {bits}: a SEG has 1, 8 or 16", path)
    if "PixelData" not in seg:
        raise SegmentationError("no Pixel Data", path)
    pixels = count * rows * columns
    syntax = getattr(getattr(seg, "file_meta", None), "TransferSyntaxUID", None)
    try:
        compressed = syntax is not None and syntax.is_compressed
    except (ValueError, AttributeError):
        raise SegmentationError(f"TransferSyntaxUID '{one_line(syntax)[:64]}' is not a transfer syntax",
                                path) from None
    if not compressed:
        needed = -(-pixels * bits // 8)
        stored = len(seg.PixelData or b"")
        if stored < needed:
            raise SegmentationError(
                f"Pixel Data holds {stored} bytes; {count} frame(s) of {rows} x {columns} pixels at "
                f"{bits} bit(s) need {needed}: the file is truncated or NumberOfFrames is wrong", path)
    check_memory(2 * pixels * max(bits // 8, 1), "decoding the SEG frames", path, SegmentationError)
    try:
        frames = np.asarray(seg.pixel_array)
    except Exception as error:  # pydicom's decoders raise many types
        raise SegmentationError(f"cannot decode the SEG pixel data: {one_line(error)}", path) from None
    if frames.size != pixels:
        raise SegmentationError(
            f"the pixel data decodes to {frames.size} pixels, not {count} frame(s) of {rows} x {columns}", path)
    return frames.reshape(count, rows, columns)


def _segment_numbers(seg, kind: str, path: Path) -> list[int]:
    items = seg.get("SegmentSequence") or []
    if not items:
        raise SegmentationError("no Segment Sequence: the SEG describes no segment", path)
    numbers = []
    for n, item in enumerate(items, start=1):
        number = dicom_numbers(item, "SegmentNumber", path, f"Segment Sequence item {n}", count=1,
                               integer=True)[0]
        if number < (0 if kind == "LABELMAP" else 1) or number > 65535:
            raise SegmentationError(f"Segment Sequence item {n}: SegmentNumber {number} is out of range", path)
        if number in numbers:
            raise SegmentationError(f"SegmentNumber {number} is given twice", path)
        numbers.append(number)
    return numbers


def _segments(seg, reference, geometry, path: Path) -> list[Segment]:
    kind = one_line(seg.get("SegmentationType", "")).upper()
    if kind not in ("BINARY", "FRACTIONAL", "LABELMAP"):
        raise SegmentationError(
            f"SegmentationType '{kind[:20]}' is not BINARY, FRACTIONAL or LABELMAP", path)
    frame_of_reference = one_line(seg.get("FrameOfReferenceUID", "") or "")
    if reference is not None and reference.frame_of_reference_uid and frame_of_reference \
            and frame_of_reference != reference.frame_of_reference_uid:
        raise SegmentationError(
            f"the SEG is in Frame of Reference {frame_of_reference}, the reference series "
            f"{reference.series_instance_uid} in {reference.frame_of_reference_uid}; give the "
            "series the segmentation was made on", path)
    numbers_described = _segment_numbers(seg, kind, path)
    positions, numbers, orientation, spacing = _frame_table(seg, kind == "LABELMAP", path)
    unknown = sorted(set(numbers.tolist()) - set(numbers_described)) if kind != "LABELMAP" else []
    if unknown:
        raise SegmentationError(
            f"frames reference segment {unknown[0]}, which the Segment Sequence does not describe", path)
    scale = 1.0
    if kind == "FRACTIONAL":
        maximum = dicom_numbers(seg, "MaximumFractionalValue", path, count=1, integer=True)[0]
        if not 1 <= maximum <= 65535:
            raise SegmentationError(f"MaximumFractionalValue {maximum} must be 1 or more", path)
        scale = 1.0 / maximum
    pixels = _pixel_frames(seg, len(positions), path)
    placed = _on_reference_grid(positions, orientation, spacing, geometry)
    k, stack = placed if placed is not None else _own_stack(positions, orientation, spacing, path)
    rows, columns = pixels.shape[1:]
    if kind == "LABELMAP":
        check_memory(stack.slice_count * rows * columns * pixels.itemsize, "placing the SEG frames",
                     path, SegmentationError)
        labels = np.zeros((stack.slice_count, rows, columns), dtype=pixels.dtype)
        labels[k] = pixels
    else:
        # each segment on the slices its frames are on, plus one empty slice beyond
        # each end where the stack has one: the same surface as on the whole stack
        # (cropped(margin=1) takes no more), without a whole stack per segment
        spans = {}
        for number in numbers_described:
            mine = k[numbers == number]
            if mine.size:
                spans[number] = (max(int(mine.min()) - 1, 0), min(int(mine.max()) + 2, stack.slice_count))
        slices = sum(stop - start for start, stop in spans.values())
        check_memory(slices * rows * columns * pixels.itemsize, "placing the SEG frames", path,
                     SegmentationError)
    segments = []
    for item, number in zip(seg.SegmentSequence, numbers_described):
        if kind == "LABELMAP" and number == 0:
            continue  # the label map's background, everything outside the segments
        if kind == "LABELMAP":
            data, label_value, where = labels, number, stack
        elif number in spans:
            start, stop = spans[number]
            data, label_value = np.zeros((stop - start, rows, columns), dtype=pixels.dtype), None
            mine = np.flatnonzero(numbers == number)
            data[k[mine] - start] = pixels[mine]
            where = shifted_geometry(stack, 0, 0, start, stop)
        else:  # no frame: an empty segment
            data, label_value, where = np.zeros((1, 1, 1), dtype=pixels.dtype), None, stack
        lab = item.get("RecommendedDisplayCIELabValue")
        try:
            color = rgb_from_dicom_lab(lab) if lab is not None and len(lab) == 3 else None
        except (TypeError, ValueError, OverflowError):
            color = None  # only a display hint
        segments.append(Segment(
            number=number,
            name=one_line(item.get("SegmentLabel", "") or "") or f"Segment {number}",
            data=data,
            geometry=where,
            label_value=label_value,
            scale=scale,
            color=color,
            description=_description(item),
            path=path,
        ))
    return segments
