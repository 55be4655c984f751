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

Every header is checked before any pixel is read or any memory allocated, and a
series with a slice that cannot be used is refused (:class:`SeriesError` naming
the first such file and counting them), never read with a hole:

* image plane: ImageOrientationPatient orthonormal, ImagePositionPatient and
  PixelSpacing finite and within sane bounds (:mod:`.slice_geometry`); a slice
  with only part of the three is damaged, one with none is not a cross-sectional
  image and is skipped (reported in :attr:`SeriesVolume.skipped`);
* image pixel module: Rows and Columns 1..65535, Bits Allocated 1, 8, 16, 32 or
  64, Bits Stored up to it, one sample per pixel, Pixel Representation 0 or 1,
  Number of Frames a positive integer, Pixel Data present; for uncompressed
  transfer syntaxes Pixel Data must hold the bytes the header declares (a header
  promising 65535 x 65535 pixels in a small file is refused at once);
* rescale: slope and intercept finite, slope not zero, rescaled values within
  +-:data:`RESCALED_LIMIT` (float32 keeps them finite);
* the whole volume must fit in the memory available (:func:`.files.check_memory`).
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from ..errors import SeriesError
from ..files import check_memory, open_input
from ..progress import Progress, task
from .slice_geometry import (
    SliceGeometry,
    attribute_name,
    header_numbers,
    header_values,
    image_orientation,
    image_position,
    pixel_spacing,
    shown,
)
from .source_series import SourceSeries, choose_series, one_line, scan_series

#: Two orientations are "the same" when their direction cosines differ by less.
ORIENTATION_TOLERANCE = 1e-4
#: Two slices closer than this along the normal (mm) are duplicates.
DUPLICATE_POSITION_MM = 1e-3
#: Largest angle (degrees) between the stack's direction and the slice normal:
#: twice the largest gantry tilt, so tilted CT passes and damaged positions do not.
MAX_SHEAR_DEGREES = 60
MAX_SHEAR_RATIO = float(np.tan(np.radians(MAX_SHEAR_DEGREES)))

#: The image plane: a slice with none of them is no cross-sectional image, one
#: with only some is damaged.
_PLANE_KEYWORDS = ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing")
#: Rescaled values (slope x stored + intercept) must stay within this, far inside
#: float32's 3.4e38, so that the volume and every sum over it stay finite.
RESCALED_LIMIT = 1e30
#: Bits Allocated values pydicom's pixel handlers decode.
_BITS_ALLOCATED = (1, 8, 16, 32, 64)


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
    return any(str(value).strip().upper() == "LOCALIZER" for value in header_values(dataset, "ImageType") or [])


def _stack_key(orientation: tuple, spacing: tuple, size: tuple[int, int]) -> tuple:
    # plain floats (checked finite): numpy's per-call cost would dominate for six
    # numbers per slice
    return (
        tuple(round(v / ORIENTATION_TOLERANCE) for v in orientation),
        tuple(round(v / 1e-4) for v in spacing),
        size,
    )


def _integer(dataset: Dataset, keyword: str, path, low: int, high: int, default: int | None = None) -> int:
    """An integer attribute within ``low..high`` (``default`` when absent), else SeriesError."""
    values, numbers = header_numbers(dataset, keyword)
    if values is None and default is not None:
        return default
    if numbers is None or len(numbers) != 1 or numbers[0] != int(numbers[0]) or not low <= numbers[0] <= high:
        raise SeriesError(
            f"{attribute_name(keyword)} must be an integer from {low} to {high}, found {shown(values)}", path)
    return int(numbers[0])


def image_size(dataset: Dataset, path=None) -> tuple[int, int]:
    """``(Rows, Columns)``, checked to be 1..65535.

    Raises
    ------
    SeriesError
        Either is missing or not such an integer (the message names the file).
    """
    return _integer(dataset, "Rows", path, 1, 65535), _integer(dataset, "Columns", path, 1, 65535)


def rescale(dataset: Dataset, path=None) -> tuple[float, float]:
    """``(RescaleSlope, RescaleIntercept)``, ``(1, 0)`` where absent, checked.

    Raises
    ------
    SeriesError
        A value that is not one finite number, or a slope of 0.
    """
    result = []
    for keyword, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        values, numbers = header_numbers(dataset, keyword)
        if values is None:
            result.append(default)
            continue
        if numbers is None or len(numbers) != 1 or (keyword == "RescaleSlope" and numbers[0] == 0):
            what = "one finite number other than 0" if keyword == "RescaleSlope" else "one finite number"
            raise SeriesError(f"{attribute_name(keyword)} must be {what}, found {shown(values)}", path)
        result.append(numbers[0])
    return result[0], result[1]


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
    """Number of Frames of a header already checked by :func:`_check_pixels`."""
    numbers = header_numbers(dataset, "NumberOfFrames")[1]
    return int(numbers[0]) if numbers else 1


def _items(dataset: Dataset, keyword: str, path) -> list[Dataset]:
    """The items of sequence ``keyword`` (none when absent), else SeriesError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if keyword not in dataset:
                return []
            value = dataset[keyword].value
        except Exception as error:  # pydicom raises many types for damaged sequences
            raise SeriesError(f"{attribute_name(keyword)} cannot be read ({one_line(error)[:120]})", path) from None
    if value is None or value == b"" or value == "":
        return []
    if not isinstance(value, DicomSequence) or not all(isinstance(item, Dataset) for item in value):
        raise SeriesError(f"{attribute_name(keyword)} is not a sequence of items", path)
    return list(value)


def _group_item(groups, keyword: str, path) -> Dataset | None:
    """The first item of functional group ``keyword`` in a groups item, if present."""
    if groups is None:
        return None
    items = _items(groups, keyword, path)
    return items[0] if items else None


def frame_headers(dataset: Dataset, path=None) -> list[Dataset]:
    """One header per frame of an enhanced (multi-frame) image, in frame order.

    Each is the image's top-level attributes (patient, study, series, SOP
    instance...) without its functional groups and pixel data, plus what the
    frame's per-frame group, or else the shared group, says of its plane position
    and orientation, pixel spacing, rescale and frame type, under the
    single-frame keywords (ImagePositionPatient, RescaleSlope, ImageType...).
    Two plain attributes say where it came from: ``frame_index`` (0-based) and
    ``multi_frame``, the image's own header.  A frame no group describes simply
    lacks those attributes.  Nothing is read from the file.

    Raises
    ------
    SeriesError
        Number of Frames is not a positive integer, or a functional group is not
        a sequence of items (``path`` names the file).
    """
    count = _integer(dataset, "NumberOfFrames", path, 1, 2**31 - 1, default=1)
    shared_items = _items(dataset, _SHARED, path)
    shared = shared_items[0] if shared_items else None
    per_frame = _items(dataset, _PER_FRAME, path)
    with warnings.catch_warnings():
        # pydicom warns of odd values as it converts them; the checks that
        # follow say what is wrong where it matters
        warnings.simplefilter("ignore")
        try:
            return _frame_headers(dataset, path, count, shared, per_frame)
        except SeriesError:
            raise
        except Exception as error:  # pydicom raises many types for damaged items
            raise SeriesError(
                f"the functional groups cannot be read ({type(error).__name__}: {one_line(error)[:120]})",
                path) from None


def _frame_headers(dataset: Dataset, path, count: int, shared, per_frame) -> list[Dataset]:
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
            item = _group_item(own, group, path) or _group_item(shared, group, path)
            for keyword in keywords:
                # as read, unconverted: a value pydicom cannot convert is
                # reported by the checks, not raised here
                element = item._dict.get(tag_for_keyword(keyword)) if item is not None else None
                if element is not None:
                    frame[element.tag] = element
        for group in _FRAME_TYPE_GROUPS:
            item = _group_item(own, group, path) or _group_item(shared, group, path)
            frame_type = header_values(item, "FrameType") if item is not None else None
            if frame_type:
                frame.ImageType = frame_type
        frame.frame_index = index
        frame.multi_frame = dataset
        headers.append(frame)
    return headers


def _is_enhanced(dataset: Dataset) -> bool:
    """An enhanced image: its geometry lives in functional groups (even for one frame)."""
    return _PER_FRAME in dataset or _SHARED in dataset


def _where(path: Path, dataset: Dataset) -> str:
    """A slice's file, and its frame when it is one of several."""
    index = getattr(dataset, "frame_index", None)
    return f"{path.name} frame {index + 1}" if index is not None else path.name


#: Transfer syntaxes whose pixel data lies in the file uncompressed, so that its
#: size is known from the header (deflate compresses the whole dataset, which is
#: inflated as it is read).
_UNCOMPRESSED = {ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
                 "1.2.840.10008.1.2.1.99"}
_PIXEL_DATA_TAG = 0x7FE00010
_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class _Pixels:
    """What an image's header declares of its pixels (checked)."""

    rows: int
    columns: int
    frames: int
    bits_allocated: int
    bits_stored: int

    @property
    def frame_bytes(self) -> int:
        return (self.rows * self.columns * self.bits_allocated + 7) // 8


def _transfer_syntax(dataset: Dataset) -> str | None:
    """The Transfer Syntax UID of the file ``dataset`` was read from, if it names one."""
    meta = getattr(dataset, "file_meta", None)
    values = header_values(meta, "TransferSyntaxUID") if meta is not None else None
    return str(values[0]) if values is not None and len(values) == 1 and isinstance(values[0], str) else None


def _pixel_data_length(element) -> int | None:
    """Bytes of Pixel Data as stored, ``None`` when encapsulated and not yet read."""
    value = element.value
    if value is None:
        length = getattr(element, "length", _UNDEFINED_LENGTH)
        return None if length == _UNDEFINED_LENGTH else int(length)
    return len(value) if isinstance(value, (bytes, bytearray)) else None


def _check_pixels(dataset: Dataset, path) -> _Pixels:
    """The Image Pixel module of an image instance, checked before any pixel is read.

    Raises
    ------
    SeriesError
        An attribute out of range, no Pixel Data, uncompressed Pixel Data shorter
        than Rows x Columns x Number of Frames x Bits Allocated declare, or more
        frames than compressed Pixel Data can hold (each at least one 8-byte item).
    """
    rows, columns = image_size(dataset, path)
    bits = _integer(dataset, "BitsAllocated", path, 1, 64)
    if bits not in _BITS_ALLOCATED:
        raise SeriesError(
            f"{attribute_name('BitsAllocated')} must be one of {', '.join(map(str, _BITS_ALLOCATED))}, "
            f"found {bits}", path)
    stored = _integer(dataset, "BitsStored", path, 1, bits, default=bits)
    samples = _integer(dataset, "SamplesPerPixel", path, 1, 4, default=1)
    if samples != 1:
        raise SeriesError(
            f"{attribute_name('SamplesPerPixel')} is {samples}: only grayscale images (one sample "
            "per pixel) form a volume", path)
    _integer(dataset, "PixelRepresentation", path, 0, 1, default=0)
    frames = _integer(dataset, "NumberOfFrames", path, 1, 2**31 - 1, default=1)
    pixels = _Pixels(rows, columns, frames, bits, stored)
    element = dataset._dict.get(_PIXEL_DATA_TAG)  # the element as read: never loads a deferred value
    if element is None:
        raise SeriesError("no Pixel Data (7FE0,0010)", path)
    syntax = _transfer_syntax(dataset)
    length = _pixel_data_length(element)
    declared = f"{rows} x {columns} x {frames} frame(s) x {bits} bits"
    if syntax in _UNCOMPRESSED:
        needed = (rows * columns * frames * bits + 7) // 8
        if length is None or length < needed:
            found = "an undefined length" if length is None else f"{length} bytes"
            raise SeriesError(
                f"Pixel Data (7FE0,0010) holds {found}, but Rows x Columns x Number of Frames x "
                f"Bits Allocated ({declared}) need {needed} bytes: the file is cut short or its "
                "header is wrong", path)
    elif length is not None and frames > max(1, length // 8):
        raise SeriesError(
            f"{attribute_name('NumberOfFrames')} is {frames}, more than {length} bytes of "
            "compressed Pixel Data can hold", path)
    return pixels


def _plane(dataset: Dataset, path) -> tuple[tuple, tuple, tuple] | None:
    """``(orientation, position, spacing)`` of a slice, checked; ``None`` when it has
    none of them (not a cross-sectional image)."""
    present = [keyword for keyword in _PLANE_KEYWORDS if header_values(dataset, keyword) is not None]
    if not present:
        return None
    if len(present) < len(_PLANE_KEYWORDS):
        missing = next(keyword for keyword in _PLANE_KEYWORDS if keyword not in present)
        raise SeriesError(f"no {attribute_name(missing)}, though the image has {' and '.join(present)}", path)
    return image_orientation(dataset, path), image_position(dataset, path), pixel_spacing(dataset, path)


def _check_rescale(dataset: Dataset, path, pixels: _Pixels) -> None:
    slope, intercept = rescale(dataset, path)
    largest = abs(slope) * 2.0 ** pixels.bits_stored + abs(intercept)
    if largest > RESCALED_LIMIT or abs(slope) < 1 / RESCALED_LIMIT:
        raise SeriesError(
            f"RescaleSlope {slope:g} and RescaleIntercept {intercept:g} would give values up to "
            f"{largest:.3g}; they must stay within +-{RESCALED_LIMIT:g} (slope at least "
            f"{1 / RESCALED_LIMIT:g})", path)


@dataclass
class _Selection:
    """A series' slices (one per frame of a multi-frame instance): those that form
    the stack (indices into ``slices``), those left out with the reason, those
    that cannot be used with the reason, and each usable slice's checked
    ``(orientation, position, spacing)``."""

    slices: SourceSeries
    kept: list[int]
    skipped: list[tuple[Path, str]]
    errors: list[tuple[Path, str]] = field(default_factory=list)
    planes: dict[int, tuple] = field(default_factory=dict)
    pixels: dict[Path, _Pixels] = field(default_factory=dict)


def _volume_slices(series: SourceSeries) -> _Selection:
    """The slices of ``series`` that form the stack, the skipped and the unusable."""
    skipped: list[tuple[Path, str]] = []
    errors: list[tuple[Path, str]] = list(series.unreadable)
    files: list[Path] = []
    datasets: list[Dataset] = []
    declared: dict[Path, _Pixels] = {}
    for path, dataset in zip(series.files, series.datasets):
        if _is_localizer(dataset):
            skipped.append((path, "localizer"))
            continue
        enhanced = _is_enhanced(dataset)
        if not enhanced and all(header_values(dataset, keyword) is None for keyword in _PLANE_KEYWORDS):
            skipped.append((path, "no image plane geometry (not a cross-sectional image)"))
            continue
        try:
            # the frame count is checked against the pixel data before a header
            # is made for each frame
            declared[path] = pixels = _check_pixels(dataset, path)
            headers = frame_headers(dataset, path) if enhanced or pixels.frames > 1 else [dataset]
        except SeriesError as error:
            errors.append((path, error.reason))
            continue
        files.extend([path] * len(headers))
        datasets.extend(headers)
    slices = SourceSeries(series.series_instance_uid, files=files, datasets=datasets)
    usable: list[int] = []
    planes: dict[int, tuple] = {}

    def frame_note(index: int, reason: str) -> tuple[Path, str]:
        frame = getattr(slices.datasets[index], "frame_index", None)
        return slices.files[index], reason if frame is None else f"frame {frame + 1}: {reason}"

    for index, dataset in enumerate(datasets):
        path = files[index]
        if _is_localizer(dataset):
            skipped.append(frame_note(index, "localizer"))
            continue
        try:
            plane = _plane(dataset, path)
            if plane is not None:
                _check_rescale(dataset, path, declared[path])
        except SeriesError as error:
            errors.append(frame_note(index, error.reason))
            continue
        if plane is None:
            skipped.append(frame_note(index, "no image plane geometry (not a cross-sectional image)"))
            continue
        planes[index] = plane
        usable.append(index)
    if not usable:
        return _Selection(slices, [], skipped, errors, planes, declared)
    keys = {}
    for index in usable:
        orientation, _position, spacing = planes[index]
        size = declared[files[index]]
        keys[index] = _stack_key(orientation, spacing, (size.rows, size.columns))
    majority, _count = Counter(keys.values()).most_common(1)[0]
    kept = [index for index in usable if keys[index] == majority]
    for index in usable:
        if keys[index] != majority:
            skipped.append(frame_note(index, "orientation, matrix size or pixel spacing differs from the stack"))
    return _Selection(slices, kept, skipped, errors, planes, declared)


def sort_along_normal(
    series: SourceSeries, indices: Sequence[int], label, planes: dict[int, tuple] | None = None
) -> list[int]:
    """``indices`` of ``series`` sorted by slice position along the normal (ascending).

    ``planes`` holds each slice's checked ``(orientation, position, spacing)``
    when already known; otherwise the headers are read and checked here.

    Raises
    ------
    SeriesError
        If two slices lie at the same position (several phases or echoes mixed
        in one series, positions collapsed into one, or one instance twice), or
        two neighbours are sheared more than :data:`MAX_SHEAR_DEGREES` apart,
        naming both files; or a slice's ImageOrientationPatient or
        ImagePositionPatient is unusable.
    """
    if not indices:
        raise SeriesError("no slices to sort", label)
    if planes is None:
        orientation = image_orientation(series.datasets[indices[0]], series.files[indices[0]])
        positions = [image_position(series.datasets[i], series.files[i]) for i in indices]
    else:
        orientation = planes[indices[0]][0]
        positions = [planes[i][1] for i in indices]
    orientation = np.asarray(orientation, dtype=np.float64)
    normal = np.cross(orientation[:3], orientation[3:])
    normal /= np.linalg.norm(normal)
    positions = np.array(positions, dtype=np.float64)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    gaps = np.diff(along[order])

    def pair(at: int) -> tuple[int, int]:
        return indices[order[at]], indices[order[at + 1]]

    if gaps.size and gaps.min() < DUPLICATE_POSITION_MM:
        first, second = pair(int(np.argmin(gaps)))
        a, b = (_where(series.files[i], series.datasets[i]) for i in (first, second))
        same = (header_values(series.datasets[first], "SOPInstanceUID")
                == header_values(series.datasets[second], "SOPInstanceUID"))
        if same and getattr(series.datasets[first], "frame_index", None) is None:
            raise SeriesError(f"the same instance twice ({a} and {b}): remove one copy", label)
        raise SeriesError(
            f"two slices at the same position ({a} and {b}): the series mixes "
            "several phases, echoes or acquisitions; split it before meshing",
            label,
        )
    if gaps.size:
        # a gantry tilts 30 degrees at most: a stack sheared further has a slice
        # whose position is damaged, and would be meshed into a spike
        steps = np.diff(positions[order], axis=0)
        sideways = np.linalg.norm(steps - gaps[:, None] * normal, axis=1)
        ratio = sideways / gaps
        if ratio.max() > MAX_SHEAR_RATIO:
            at = int(np.argmax(ratio))
            a, b = (_where(series.files[i], series.datasets[i]) for i in pair(at))
            raise SeriesError(
                f"slices {a} and {b} are {gaps[at]:.3g} mm apart along the slice normal but "
                f"{sideways[at]:.3g} mm apart within the slice plane (sheared "
                f"{np.degrees(np.arctan(ratio[at])):.0f} degrees, more than {MAX_SHEAR_DEGREES} "
                "degrees): an ImagePositionPatient is damaged",
                label,
            )
    return [indices[o] for o in order]


#: Transfer syntaxes whose 16-bit pixel data lies in the file as little-endian words.
_NATIVE_LITTLE_ENDIAN = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}


def _native_pixels(header: Dataset, path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """A slice's stored values read straight from the file, or ``None``.

    For the common case, 16-bit single-sample uncompressed little-endian pixels,
    the header scan already knows where the pixel data starts, so the file is
    not parsed a second time.  Bits above Bits Stored are handled as on every
    path (:func:`_stored_values`): masked off or sign-extended.  Everything else
    (compressed, big-endian, other depths) returns ``None`` and goes through
    pydicom's decoders.
    """
    syntax = _transfer_syntax(header)
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


def decoded_pixels(path: Path) -> tuple[np.ndarray, Dataset]:
    """Every frame of a file decoded by pydicom's handlers, and its dataset.

    Stored values, with the bits above Bits Stored masked off or sign-extended.

    Raises
    ------
    SeriesError
        The file is not a regular file, or its pixel data cannot be decoded
        (the message names the transfer syntax and the decoder's complaint).
    """
    dataset = None
    try:
        with open_input(path, SeriesError) as stream, warnings.catch_warnings():
            # pydicom warns of padding and unusual values; the headers were checked
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(stream)
            if _transfer_syntax(dataset) == RLELossless:
                # pydicom would pick pylibjpeg-rle where installed, whose Rust code
                # panics on a damaged segment (printing to stderr); pydicom's own
                # decoder raises
                if hasattr(dataset, "pixel_array_options"):  # pydicom 3
                    dataset.pixel_array_options(decoding_plugin="pydicom")
                else:
                    dataset.convert_pixel_data(handler_name="rle")
            bits_stored = int(dataset.get("BitsStored", 0) or 0)
            return _stored_values(dataset.pixel_array, bits_stored), dataset
    except SeriesError:
        raise
    except BaseException as error:  # pydicom raises many types for undecodable pixel data
        if not isinstance(error, Exception) and type(error).__name__ != "PanicException":
            raise  # KeyboardInterrupt, SystemExit: not the data's fault
        syntax = ""
        try:
            syntax = f" (transfer syntax {dataset.file_meta.TransferSyntaxUID.name})"
        except Exception:
            pass
        detail = one_line(error)[:200] or type(error).__name__
        raise SeriesError(f"cannot decode the pixel data{syntax}: {detail}", path) from None


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
        _rescale_into(out, pixels, header, path)
        return
    frame = getattr(header, "frame_index", None)
    if frame is None:
        pixels, dataset = decoded_pixels(path)
    else:
        decoded = {} if decoded is None else decoded
        if path not in decoded:
            decoded.clear()  # one multi-frame file's frames at a time
            frames = decoded_pixels(path)[0]
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
    _rescale_into(out, pixels, header if header is not None else dataset, path)


def _rescale_into(out: np.ndarray, pixels: np.ndarray, dataset: Dataset, path=None) -> None:
    slope, intercept = rescale(dataset, path)
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
        A file of the series cannot be used (damaged or unusable headers, see
        the module's notes: the message names the first and counts them), no
        cross-sectional slices, or two at one position (``label`` names the
        input).
    """
    selection = selection or _volume_slices(series)
    slices, kept, skipped = selection.slices, selection.kept, selection.skipped
    if selection.errors:
        series.check_usable(selection.errors)
    if not kept:
        raise SeriesError(
            f"series {one_line(series.series_instance_uid)} has no cross-sectional image slices "
            f"({len(series)} instance(s): {skipped[0][1] if skipped else 'none'})",
            label,
        )
    ordered = sort_along_normal(slices, kept, label, selection.planes)
    stack = SourceSeries(
        series.series_instance_uid,
        files=[slices.files[i] for i in ordered],
        datasets=[slices.datasets[i] for i in ordered],
        study_series_numbers=series.study_series_numbers,
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
        :func:`~encapsulated_stl.mesh.surface.extract_surface_mesh` (``overwrite_border=True``)
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
        unknown UID, a file of the series that cannot be used (damaged, cut
        short, unusable geometry or pixel headers: the message names the first
        and counts them), slices at duplicate positions, a volume larger than
        the memory available, or undecodable pixel data (the message names the
        file and transfer syntax).
    """
    label = paths if isinstance(paths, (str, os.PathLike)) else ", ".join(map(str, paths))
    selections: dict[int, _Selection] = {}

    def usable(candidate: SourceSeries) -> bool:
        # a series with damaged slices stays a candidate, so that choosing it
        # says what is wrong with it
        selection = selections[id(candidate)] = _volume_slices(candidate)
        return bool(selection.kept or selection.errors)

    series = choose_series(
        scan_series(paths), series_uid, label, usable=usable,
        kind="CT or MR image series (cross-sectional slices)",
    )
    selection = selections.get(id(series)) or _volume_slices(series)
    stack, skipped = image_stack(series, label, selection)
    geometry = SliceGeometry.from_datasets(stack.datasets)
    declared = [selection.pixels[path] for path in dict.fromkeys(stack.files)]
    shape = (len(stack), declared[0].rows, declared[0].columns)
    # before any allocation: the volume, plus the largest file decoded whole
    voxels_needed = 4 * int(np.prod([n + 2 * border for n in shape], dtype=object))
    decoding = max(2 * pixels.frame_bytes * pixels.frames for pixels in declared)
    check_memory(voxels_needed + decoding,
                 f"a volume of {shape[0]} slices of {shape[1]} x {shape[2]} voxels", label, SeriesError)
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
    return SeriesVolume(voxels, geometry, stack, skipped, (smallest, largest))
