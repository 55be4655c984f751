"""Read a CT or MR series into a voxel volume with its exact slice geometry.

The slices are found with :func:`source_series.scan_series` (a directory is searched
recursively, headers grouped by Series Instance UID).  Within the chosen series,
localizers (scouts) and images whose orientation, matrix or pixel spacing differ
from the stack's are dropped, the rest are sorted by position along the slice
normal, and their pixels are decoded through pydicom's pixel handlers (so the
JPEG, JPEG 2000, JPEG-LS and RLE transfer syntaxes work with the pylibjpeg and
pyjpegls plugins) with each slice's rescale slope and intercept applied.

Enhanced (multi-frame) CT and MR images count one slice per frame, with the
frame's plane position, orientation, pixel spacing and rescale taken from its
per-frame or shared functional groups; a series may mix them with single-frame
images.

Nothing is resampled: the volume holds the stored slices as they are, and
:class:`~.slice_geometry.SliceGeometry` maps voxel indices to patient LPS through
each slice's own ImagePositionPatient (exact for gantry tilt and uneven spacing).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .errors import SeriesError
from .progress import Progress, task
from .slice_geometry import SliceGeometry
from .source_series import SourceSeries, choose_series, scan_series

#: Two orientations are "the same" when their direction cosines differ by less.
ORIENTATION_TOLERANCE = 1e-4
#: Two slices closer than this along the normal (mm) are duplicates.
DUPLICATE_POSITION_MM = 1e-3

_GEOMETRY_KEYWORDS = ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "Rows", "Columns")


@dataclass
class SeriesVolume:
    """A series' voxels, their geometry and the headers they came from.

    Attributes
    ----------
    voxels:
        ``(k, j, i)`` float32 array of rescaled values (HU for CT): slice ``k`` in
        stack order, row ``j``, column ``i``.
    geometry:
        Exact voxel index -> patient LPS (mm) mapping of the sorted stack.
    source:
        The used instances' headers and files, in stack order; a model made from
        this volume references every one of them.
    skipped:
        ``(file, reason)`` for instances of the series left out (localizers,
        other orientations or matrix sizes).
    """

    voxels: np.ndarray
    geometry: SliceGeometry
    source: SourceSeries
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    _value_range: tuple[float, float] | None = None

    @property
    def value_range(self) -> tuple[float, float]:
        """Smallest and largest voxel value (noted while reading, so still known
        after ``voxels`` has been released)."""
        if self._value_range is None:
            self._value_range = (float(self.voxels.min()), float(self.voxels.max()))
        return self._value_range


def _is_localizer(dataset: Dataset) -> bool:
    image_type = dataset.get("ImageType") or []
    if isinstance(image_type, str):
        image_type = [image_type]
    return any(str(value).upper() == "LOCALIZER" for value in image_type)


def _stack_key(dataset: Dataset) -> tuple:
    # plain floats: numpy's per-call cost would dominate for six numbers per slice
    return (
        tuple(round(float(v) / ORIENTATION_TOLERANCE) for v in dataset.ImageOrientationPatient),
        tuple(round(float(v) / 1e-4) for v in dataset.PixelSpacing),
        int(dataset.Rows),
        int(dataset.Columns),
    )


_PER_FRAME = "PerFrameFunctionalGroupsSequence"
_SHARED = "SharedFunctionalGroupsSequence"
#: Elements of an enhanced image that its frames' headers leave out.
_NOT_PER_FRAME = {tag_for_keyword(keyword) for keyword in (_PER_FRAME, _SHARED, "PixelData")}
#: Functional groups of an enhanced image, and the attributes each gives a frame's
#: header (where a single-frame image has them at the top level).
_FRAME_GROUPS = (
    ("PlanePositionSequence", ("ImagePositionPatient",)),
    ("PlaneOrientationSequence", ("ImageOrientationPatient",)),
    ("PixelMeasuresSequence", ("PixelSpacing", "SliceThickness")),
    ("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept", "RescaleType")),
)
#: What pydicom needs to read a value that a header scan left in the file.
_DEFERRED_READ_ATTRIBUTES = ("filename", "buffer", "fileobj_type", "timestamp")
#: Functional groups whose Frame Type is the frame's Image Type (localizer or not).
_FRAME_TYPE_GROUPS = ("CTImageFrameTypeSequence", "MRImageFrameTypeSequence")


def _frame_count(dataset: Dataset) -> int:
    try:
        return int(dataset.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _group_item(groups, keyword: str) -> Dataset | None:
    """The one item of functional group ``keyword`` in a groups item, if present."""
    if groups is None or keyword not in groups or not groups[keyword].value:
        return None
    return groups[keyword].value[0]


def frame_headers(dataset: Dataset) -> list[Dataset]:
    """One header per frame of an enhanced (multi-frame) image, in frame order.

    Each is the image's top-level attributes (patient, study, series, SOP
    instance...) without its functional groups and pixel data, plus what the
    frame's per-frame group, or else the shared group, says of its plane position
    and orientation, pixel spacing, rescale and frame type, under the
    single-frame keywords (ImagePositionPatient, RescaleSlope, ImageType...).
    Two plain attributes say where it came from: ``frame_index`` (0-based) and
    ``multi_frame``, the image's own header.  A frame no group describes simply
    lacks those attributes.  Nothing is read from the file.
    """
    count = _frame_count(dataset)
    shared = dataset[_SHARED].value[0] if _SHARED in dataset and dataset[_SHARED].value else None
    per_frame = dataset[_PER_FRAME].value if _PER_FRAME in dataset else []
    # the elements as read (raw ones stay unconverted), not the groups or pixels
    top = {tag: element for tag, element in dataset._dict.items() if tag not in _NOT_PER_FRAME}
    headers = []
    for index in range(count):
        frame = Dataset(dict(top))
        frame.file_meta = getattr(dataset, "file_meta", None)
        for name in _DEFERRED_READ_ATTRIBUTES:  # values left in the file stay readable
            setattr(frame, name, getattr(dataset, name, None))
        own = per_frame[index] if index < len(per_frame) else None
        for group, keywords in _FRAME_GROUPS:
            item = _group_item(own, group) or _group_item(shared, group)
            for keyword in keywords:
                if item is not None and keyword in item:
                    frame[keyword] = item[keyword]
        for group in _FRAME_TYPE_GROUPS:
            item = _group_item(own, group) or _group_item(shared, group)
            if item is not None and item.get("FrameType"):
                frame.ImageType = item.FrameType
        frame.frame_index = index
        frame.multi_frame = dataset
        headers.append(frame)
    return headers


def _has_frames(dataset: Dataset) -> bool:
    """Several frames, or an enhanced image's functional groups (even for one frame)."""
    return _frame_count(dataset) > 1 or _PER_FRAME in dataset or _SHARED in dataset


def _with_frames(series: SourceSeries) -> SourceSeries:
    """``series`` with each multi-frame instance replaced by its frames' headers."""
    if not any(_has_frames(dataset) for dataset in series.datasets):
        return series
    files: list[Path] = []
    datasets: list[Dataset] = []
    for path, dataset in zip(series.files, series.datasets):
        frames = frame_headers(dataset) if _has_frames(dataset) else [dataset]
        files.extend([path] * len(frames))
        datasets.extend(frames)
    return SourceSeries(series.series_instance_uid, files=files, datasets=datasets)


def _where(path: Path, dataset: Dataset) -> str:
    """A slice's file, and its frame when it is one of several."""
    index = getattr(dataset, "frame_index", None)
    return f"{path.name} frame {index + 1}" if index is not None else path.name


@dataclass
class _Selection:
    """A series' slices (one per frame of a multi-frame instance): those that form
    the stack (indices into ``slices``) and those left out, with the reason."""

    slices: SourceSeries
    kept: list[int]
    skipped: list[tuple[Path, str]]


def _volume_slices(series: SourceSeries) -> _Selection:
    """The slices of ``series`` that form the stack, and the skipped."""
    slices = _with_frames(series)
    skipped: list[tuple[Path, str]] = []
    usable: list[int] = []

    def skip(index: int, reason: str) -> None:
        frame = getattr(slices.datasets[index], "frame_index", None)
        skipped.append((slices.files[index], reason if frame is None else f"frame {frame + 1}: {reason}"))

    for index, dataset in enumerate(slices.datasets):
        if _is_localizer(dataset):
            skip(index, "localizer")
        elif any(keyword not in dataset or dataset[keyword].value in (None, "") for keyword in _GEOMETRY_KEYWORDS):
            skip(index, "no image plane geometry (not a cross-sectional image)")
        else:
            usable.append(index)
    if not usable:
        return _Selection(slices, [], skipped)
    keys = {index: _stack_key(slices.datasets[index]) for index in usable}
    majority, _count = Counter(keys.values()).most_common(1)[0]
    kept = [index for index in usable if keys[index] == majority]
    for index in usable:
        if keys[index] != majority:
            skip(index, "orientation, matrix size or pixel spacing differs from the stack")
    return _Selection(slices, kept, skipped)


def sort_along_normal(series: SourceSeries, indices: Sequence[int], label) -> list[int]:
    """``indices`` of ``series`` sorted by slice position along the normal (ascending).

    Raises
    ------
    SeriesError
        If two slices lie at the same position (several phases or echoes mixed
        in one series), naming both files.
    """
    first = series.datasets[indices[0]]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array(
        [series.datasets[i].ImagePositionPatient for i in indices], dtype=np.float64
    )
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    gaps = np.diff(along[order])
    if gaps.size and gaps.min() < DUPLICATE_POSITION_MM:
        at = int(np.argmin(gaps))
        a, b = (_where(series.files[i], series.datasets[i]) for i in (indices[order[at]], indices[order[at + 1]]))
        raise SeriesError(
            f"two slices at the same position ({a} and {b}): the series mixes "
            "several phases, echoes or acquisitions; split it before meshing",
            label,
        )
    return [indices[o] for o in order]


#: Transfer syntaxes whose 16-bit pixel data lies in the file as little-endian words.
_NATIVE_LITTLE_ENDIAN = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
_PIXEL_DATA_TAG = 0x7FE00010


def _native_pixels(header: Dataset, path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """A slice's stored values read straight from the file, or ``None``.

    For the common case, 16-bit single-sample uncompressed little-endian pixels,
    the header scan already knows where the pixel data starts, so the file is
    not parsed a second time.  Bits above Bits Stored are handled as on every
    path (:func:`_stored_values`): masked off or sign-extended.  Everything else
    (compressed, big-endian, other depths) returns ``None`` and goes through
    pydicom's decoders.
    """
    meta = getattr(header, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    # pydicom's own element: get_item() would read a deferred value into the
    # header; a frame's header finds it in its image's
    raw = getattr(header, "multi_frame", header)._dict.get(_PIXEL_DATA_TAG)
    if (
        syntax not in _NATIVE_LITTLE_ENDIAN
        or raw is None
        or int(header.get("BitsAllocated", 0) or 0) != 16
        or int(header.get("SamplesPerPixel", 1) or 1) != 1
    ):
        return None
    count = shape[0] * shape[1]
    frames = _frame_count(header)
    start = getattr(header, "frame_index", 0) * 2 * count  # byte offset of the frame
    signed = int(header.get("PixelRepresentation", 0) or 0) == 1
    dtype = np.dtype("<i2" if signed else "<u2")
    value = raw.value
    if value is None:  # deferred: read from where the scan saw it start
        offset, length = getattr(raw, "value_tell", None), raw.length
        if offset is None or length != 2 * count * frames:
            return None
        pixels = np.fromfile(path, dtype=dtype, count=count, offset=offset + start)
        if pixels.size != count:
            return None
    else:
        if len(value) != 2 * count * frames:
            return None
        pixels = np.frombuffer(value, dtype=dtype, count=count, offset=start).copy()
    return _stored_values(pixels, int(header.get("BitsStored", 16) or 16)).reshape(shape)


def _stored_values(pixels: np.ndarray, bits_stored: int) -> np.ndarray:
    """``pixels`` with the bits above Bits Stored masked off (unsigned) or sign-extended (signed).

    Those bits are no part of the value, and some files carry overlays or other
    garbage there.  pydicom 3 clears them when decoding, pydicom 2.4 (Slicer up to
    5.10) hands them on: done here on every path, it is the same on both.
    """
    bits = 8 * pixels.dtype.itemsize
    if pixels.dtype.kind not in "iu" or not 0 < bits_stored < bits:
        return pixels
    if not pixels.flags.writeable:
        pixels = pixels.copy()
    if pixels.dtype.kind == "i":
        shift = bits - bits_stored
        np.left_shift(pixels, shift, out=pixels)
        np.right_shift(pixels, shift, out=pixels)
    else:
        np.bitwise_and(pixels, (1 << bits_stored) - 1, out=pixels)
    return pixels


def _decoded_pixels(path: Path) -> tuple[np.ndarray, Dataset]:
    """Every frame of a file decoded by pydicom's handlers, and its dataset."""
    dataset = None
    try:
        dataset = pydicom.dcmread(path)
        bits_stored = int(dataset.get("BitsStored", 0) or 0)
        return _stored_values(dataset.pixel_array, bits_stored), dataset
    except Exception as error:  # pydicom raises many types for undecodable pixel data
        syntax = ""
        try:
            syntax = f" (transfer syntax {dataset.file_meta.TransferSyntaxUID.name})"
        except Exception:
            pass
        raise SeriesError(f"cannot decode the pixel data{syntax}: {error}", path) from None


def _decode_into(
    out: np.ndarray, path: Path, header: Dataset | None = None, decoded: dict | None = None
) -> None:
    """Decode one slice into ``out`` as rescaled float32 (HU for CT).

    ``header`` may be a frame's (:func:`frame_headers`): that frame is decoded,
    with its own rescale.  Compressed multi-frame pixel data is decoded whole,
    once: ``decoded`` keeps the last such file's frames for the next call.
    """
    pixels = _native_pixels(header, path, out.shape) if header is not None else None
    if pixels is not None:
        _rescale_into(out, pixels, header)
        return
    frame = getattr(header, "frame_index", None)
    if frame is None:
        pixels, dataset = _decoded_pixels(path)
    else:
        decoded = {} if decoded is None else decoded
        if path not in decoded:
            decoded.clear()  # one multi-frame file's frames at a time
            frames = _decoded_pixels(path)[0]
            decoded[path] = frames[None] if frames.ndim == 2 else frames  # pydicom drops a lone frame's axis
        frames, dataset = decoded[path], header
        if frame >= frames.shape[0]:
            raise SeriesError(
                f"pixel data has {frames.shape[0]} frame(s), the header describes {_frame_count(header)}",
                path)
        pixels = frames[frame]
    if pixels.shape != out.shape:
        raise SeriesError(
            f"pixel data is {pixels.shape}, expected {out.shape} (Rows x Columns)", path
        )
    _rescale_into(out, pixels, dataset)


def _rescale_into(out: np.ndarray, pixels: np.ndarray, dataset: Dataset) -> None:
    slope = float(dataset.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(dataset.get("RescaleIntercept", 0.0) or 0.0)
    # float32 operands keep numpy in a float32 loop, writing straight into the volume
    if slope == 1.0:
        np.add(pixels, np.float32(intercept), out=out, casting="unsafe")
    else:
        np.multiply(pixels, np.float32(slope), out=out, casting="unsafe")
        out += np.float32(intercept)


def image_stack(
    series: SourceSeries, label, selection: _Selection | None = None
) -> tuple[SourceSeries, list[tuple[Path, str]]]:
    """The series' cross-sectional slices sorted along the normal, and those left out.

    Localizers and slices whose orientation, matrix or pixel spacing differ from
    the stack's are left out with a reason; no pixel data is read.  A multi-frame
    instance gives one slice per frame (:func:`frame_headers`), so the stack may
    list one file several times.  ``selection`` is the series'
    :func:`_volume_slices`, when already known.

    Raises
    ------
    SeriesError
        No cross-sectional slices, or two at one position (``label`` names the input).
    """
    selection = selection or _volume_slices(series)
    slices, kept, skipped = selection.slices, selection.kept, selection.skipped
    if not kept:
        raise SeriesError(
            f"series {series.series_instance_uid} has no cross-sectional image slices "
            f"({len(series)} instance(s): {skipped[0][1] if skipped else 'none'})",
            label,
        )
    ordered = sort_along_normal(slices, kept, label)
    stack = SourceSeries(
        series.series_instance_uid,
        files=[slices.files[i] for i in ordered],
        datasets=[slices.datasets[i] for i in ordered],
    )
    return stack, skipped


def read_series_volume(
    paths: Sequence[str | os.PathLike] | str | os.PathLike,
    series_uid: str | None = None,
    *,
    progress: Progress | None = None,
    border: int = 0,
) -> SeriesVolume:
    """Read one CT/MR series into a float32 volume with exact slice geometry.

    Parameters
    ----------
    paths:
        A directory (searched recursively), a file of the series, or several.
    series_uid:
        Series Instance UID to use when the paths hold several image series.
    progress:
        Draws a bar while slices are decoded; ``None`` draws nothing.
    border:
        Allocate this many voxels of margin on every side and make ``voxels``
        the interior view of that array.  With ``border=1``,
        :func:`.surface.extract_surface_mesh` (``overwrite_border=True``)
        contours the volume in place, filling the margin, instead of copying it.

    Returns
    -------
    SeriesVolume
        Voxels ``[k, j, i]`` with rescale slope and intercept applied (HU for CT),
        the :class:`SliceGeometry` (voxel index -> LPS mm) and the sorted headers.

    Raises
    ------
    SeriesError
        No image series, several and none chosen (the message lists them), an
        unknown UID, slices at duplicate positions, or undecodable pixel data
        (the message names the file and transfer syntax).
    """
    label = paths if isinstance(paths, (str, os.PathLike)) else ", ".join(map(str, paths))
    selections: dict[int, _Selection] = {}

    def usable(candidate: SourceSeries) -> bool:
        selections[id(candidate)] = _volume_slices(candidate)
        return bool(selections[id(candidate)].kept)

    series = choose_series(
        scan_series(paths), series_uid, label, usable=usable,
        kind="CT or MR image series (cross-sectional slices)",
    )
    stack, skipped = image_stack(series, label, selections.get(id(series)))
    first = stack.first
    shape = (len(stack), int(first.Rows), int(first.Columns))
    if border:
        inner = slice(border, -border)
        voxels = np.empty(tuple(n + 2 * border for n in shape), dtype=np.float32)[inner, inner, inner]
    else:
        voxels = np.empty(shape, dtype=np.float32)
    smallest, largest = np.inf, -np.inf
    # file by file (in stack order of their first slice), so that the frames of a
    # compressed multi-frame file are decoded together, once
    first_slice = {}
    for k, path in enumerate(stack.files):
        first_slice.setdefault(path, k)
    order = sorted(range(len(stack)), key=lambda k: first_slice[stack.files[k]])
    decoded: dict = {}
    with task(progress, "Reading slices", len(stack)) as reading:
        for k in order:
            path, header = stack.files[k], stack.datasets[k]
            _decode_into(voxels[k], path, header, decoded)
            # the range is taken while the slice is in cache
            smallest = min(smallest, float(voxels[k].min()))
            largest = max(largest, float(voxels[k].max()))
            reading.advance()
    return SeriesVolume(
        voxels, SliceGeometry.from_datasets(stack.datasets), stack, skipped, (smallest, largest)
    )
