"""Read a CT or MR series into a voxel volume with its exact slice geometry.

The slices are found with :func:`source_series.scan_series` (a directory is searched
recursively, headers grouped by Series Instance UID).  Within the chosen series,
localizers (scouts) and images whose orientation, matrix or pixel spacing differ
from the stack's are dropped, the rest are sorted by position along the slice
normal, and their pixels are decoded through pydicom's pixel handlers (so the
JPEG, JPEG 2000, JPEG-LS and RLE transfer syntaxes work with the pylibjpeg and
pyjpegls plugins) with each slice's rescale slope and intercept applied.

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


def _volume_slices(series: SourceSeries) -> tuple[list[int], list[tuple[Path, str]]]:
    """Indices (into ``series``) of the slices that form the stack, and the skipped."""
    skipped: list[tuple[Path, str]] = []
    usable: list[int] = []
    for index, (path, dataset) in enumerate(zip(series.files, series.datasets)):
        if _is_localizer(dataset):
            skipped.append((path, "localizer"))
        elif any(keyword not in dataset or dataset[keyword].value in (None, "") for keyword in _GEOMETRY_KEYWORDS):
            skipped.append((path, "no image plane geometry (not a cross-sectional image)"))
        elif int(dataset.get("NumberOfFrames", 1) or 1) > 1:
            skipped.append((path, "multi-frame image (enhanced CT/MR is not supported)"))
        else:
            usable.append(index)
    if not usable:
        return [], skipped
    keys = {index: _stack_key(series.datasets[index]) for index in usable}
    majority, _count = Counter(keys.values()).most_common(1)[0]
    kept = [index for index in usable if keys[index] == majority]
    for index in usable:
        if keys[index] != majority:
            skipped.append(
                (series.files[index], "orientation, matrix size or pixel spacing differs from the stack")
            )
    return kept, skipped


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
        a, b = (series.files[indices[order[at]]], series.files[indices[order[at + 1]]])
        raise SeriesError(
            f"two slices at the same position ({a.name} and {b.name}): the series mixes "
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
    not parsed a second time.  Bits above Bits Stored are handled as pydicom
    does: masked off (unsigned) or sign-extended (signed).  Everything else
    (compressed, big-endian, other depths) returns ``None`` and goes through
    pydicom's decoders.
    """
    meta = getattr(header, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    # pydicom's own element: get_item() would read a deferred value into the header
    raw = header._dict.get(_PIXEL_DATA_TAG)
    if (
        syntax not in _NATIVE_LITTLE_ENDIAN
        or raw is None
        or int(header.get("BitsAllocated", 0) or 0) != 16
        or int(header.get("SamplesPerPixel", 1) or 1) != 1
        or int(header.get("NumberOfFrames", 1) or 1) != 1
    ):
        return None
    count = shape[0] * shape[1]
    signed = int(header.get("PixelRepresentation", 0) or 0) == 1
    dtype = np.dtype("<i2" if signed else "<u2")
    value = raw.value
    if value is None:  # deferred: read from where the scan saw it start
        offset, length = getattr(raw, "value_tell", None), raw.length
        if offset is None or length != 2 * count:
            return None
        pixels = np.fromfile(path, dtype=dtype, count=count, offset=offset)
        if pixels.size != count:
            return None
    else:
        if len(value) != 2 * count:
            return None
        pixels = np.frombuffer(value, dtype=dtype, count=count).copy()
    stored = int(header.get("BitsStored", 16) or 16)
    if stored < 16:
        if signed:
            shift = 16 - stored
            np.left_shift(pixels, shift, out=pixels)
            np.right_shift(pixels, shift, out=pixels)
        else:
            np.bitwise_and(pixels, (1 << stored) - 1, out=pixels)
    return pixels.reshape(shape)


def _decode_into(out: np.ndarray, path: Path, header: Dataset | None = None) -> None:
    """Decode one slice into ``out`` as rescaled float32 (HU for CT)."""
    pixels = _native_pixels(header, path, out.shape) if header is not None else None
    if pixels is not None:
        _rescale_into(out, pixels, header)
        return
    try:
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom raises many types for undecodable pixel data
        syntax = ""
        try:
            syntax = f" (transfer syntax {dataset.file_meta.TransferSyntaxUID.name})"
        except Exception:
            pass
        raise SeriesError(f"cannot decode the pixel data{syntax}: {error}", path) from None
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
    series: SourceSeries, label, selection: tuple[list[int], list[tuple[Path, str]]] | None = None
) -> tuple[SourceSeries, list[tuple[Path, str]]]:
    """The series' cross-sectional slices sorted along the normal, and those left out.

    Localizers and slices whose orientation, matrix or pixel spacing differ from
    the stack's are left out with a reason; no pixel data is read.  ``selection``
    is the series' :func:`_volume_slices`, when already known.

    Raises
    ------
    SeriesError
        No cross-sectional slices, or two at one position (``label`` names the input).
    """
    kept, skipped = selection or _volume_slices(series)
    if not kept:
        raise SeriesError(
            f"series {series.series_instance_uid} has no cross-sectional image slices "
            f"({len(series)} instance(s): {skipped[0][1] if skipped else 'none'})",
            label,
        )
    ordered = sort_along_normal(series, kept, label)
    stack = SourceSeries(
        series.series_instance_uid,
        files=[series.files[i] for i in ordered],
        datasets=[series.datasets[i] for i in ordered],
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
    selections: dict[int, tuple[list[int], list[tuple[Path, str]]]] = {}

    def usable(candidate: SourceSeries) -> bool:
        selections[id(candidate)] = _volume_slices(candidate)
        return bool(selections[id(candidate)][0])

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
    with task(progress, "Reading slices", len(stack)) as reading:
        for k, (path, header) in enumerate(zip(stack.files, stack.datasets)):
            _decode_into(voxels[k], path, header)
            # the range is taken while the slice is in cache
            smallest = min(smallest, float(voxels[k].min()))
            largest = max(largest, float(voxels[k].max()))
            reading.advance()
    return SeriesVolume(
        voxels, SliceGeometry.from_datasets(stack.datasets), stack, skipped, (smallest, largest)
    )
