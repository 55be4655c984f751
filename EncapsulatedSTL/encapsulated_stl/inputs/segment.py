"""A segment of a segmentation, and what every segmentation reader shares.

A :class:`Segment` is one structure (an organ, a bone, a tumour) as a voxel volume
``[k, j, i]`` with its exact voxel-index -> LPS geometry: a binary mask, a fraction
(DICOM SEG FRACTIONAL, anti-aliased RTSTRUCT contours) or one value of a label map.
The readers (:mod:`.dicom_seg`, :mod:`.rtstruct`, :mod:`.labelmaps`) make them, with the
checks here (numbers, DICOM files, one-line messages); :mod:`.segments` chooses the
reader and meshes the segments.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom

from ..errors import EncapsulatedSTLError
from ..files import open_input
from ..series.slice_geometry import AffineGeometry, SliceGeometry

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"

#: Modalities that are never the image source of a segmentation.


#: The most segments one label map may hold and one run may export.  More
#: distinct values than this are an intensity image (a CT has thousands) or noise,
#: not structures to print one file each for; the largest atlases have about a
#: thousand.
MAX_SEGMENTS = 2000


class SegmentationError(EncapsulatedSTLError):
    """A segmentation file is unreadable, of an unknown kind, or does not fit its source."""


def one_line(text) -> str:
    """A third-party message on one line (pydicom and nibabel put newlines in theirs).

    An exception with no message is named by its type.
    """
    line = " ".join(str(text).split())
    if not line and isinstance(text, BaseException):
        return type(text).__name__
    return line


@contextlib.contextmanager
def quiet_reading():
    """Silence pydicom's, nibabel's and numpy's warnings while a file is read.

    They warn about invalid values (text in a DS, NaN in a matrix) that the
    readers here check themselves and report as one :class:`SegmentationError`
    naming the file and attribute; the warnings would only repeat that on stderr.
    """
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


#: A DICOM Decimal String or Integer String value, without what Python's float()
#: also takes (``1_000``, ``nan``, ``inf``).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


#: A whole DS or IS value: numbers as :data:`_DECIMAL` takes them, separated by backslashes,
#: with the spaces (only spaces: numpy takes no other white space) that the VRs allow.
_DECIMALS = re.compile(r"(?: *{0} *\\)* *{0} *".format(_DECIMAL.pattern))


def _raw_numbers(item, keyword: str):
    """The values of a DS or IS attribute pydicom has not decoded yet, parsed in one go,
    or ``None`` where the checked element-by-element path must decide.

    pydicom makes one Python object per number (a 16 MB RTSTRUCT's ContourData took
    17 s of a 19 s read); the same text, when every value is a DICOM number, is
    parsed here by numpy.
    """
    try:
        raw = item.get_item(keyword)
    except Exception:  # a malformed element: the checked path reports it
        return None
    value = getattr(raw, "value", None)
    if not isinstance(value, bytes) or not value or isinstance(raw, pydicom.DataElement):
        return None
    vr = raw.VR or pydicom.datadict.dictionary_VR(raw.tag)
    if vr not in ("DS", "IS"):
        return None
    try:
        text = value.decode("ascii").rstrip("\x00 ")
    except UnicodeDecodeError:
        return None
    if not _DECIMALS.fullmatch(text):
        return None
    return np.array(text.split("\\"), dtype=np.float64)


def _decimal(value) -> float:
    """One DS / IS / binary value as a float; ValueError for text that is no DICOM number."""
    text = getattr(value, "original_string", None)
    if text is None and isinstance(value, str):
        text = value
    if text is not None:
        text = str(text).strip()
        if not _DECIMAL.fullmatch(text):
            raise ValueError(text)
        return float(text)
    return float(value)


def dicom_numbers(item, keyword: str, path, where: str = "", count: int | None = None,
                  integer: bool = False, required: bool = True):
    """The values of the numeric attribute ``keyword`` of ``item``, checked.

    Parameters
    ----------
    item:
        A pydicom dataset or sequence item.
    keyword:
        The attribute (DS, IS, US...), e.g. ``"PixelSpacing"``.
    path, where:
        For messages: the file, and which item (``"frame 3"``, ``"ROI 'Liver'"``).
    count:
        The number of values it must have, if fixed.
    integer:
        The values must be whole numbers (returned as Python ints).
    required:
        When False a missing or empty attribute gives ``None``.

    Returns
    -------
    numpy.ndarray or list of int or None
        Finite float64 values (or ints with ``integer``).

    Raises
    ------
    SegmentationError
        Missing (when required), text, NaN or infinite values, non-whole numbers
        where integers belong, or the wrong number of values.
    """
    place = f"{where}: " if where else ""
    numbers = _raw_numbers(item, keyword) if keyword in item else None
    if numbers is not None:
        return _checked(numbers, keyword, place, path, count, integer)
    try:
        value = item[keyword].value if keyword in item else None
    except Exception as error:  # pydicom converts on access and raises what the text gives
        raise SegmentationError(f"{place}{keyword} is not valid: {one_line(error)}", path) from None
    if value is None or (isinstance(value, (str, bytes, list, tuple, pydicom.multival.MultiValue))
                         and len(value) == 0):
        if not required:
            return None
        raise SegmentationError(f"{place}{keyword} is missing", path)
    if isinstance(value, (bytes, bytearray)):
        raise SegmentationError(f"{place}{keyword} holds bytes, not numbers", path)
    values = list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    try:
        numbers = [_decimal(v) for v in values]
    except (TypeError, ValueError, OverflowError):
        shown = one_line("\\".join(str(v) for v in values))[:60]
        raise SegmentationError(f"{place}{keyword} '{shown}' is not a number", path) from None
    return _checked(np.asarray(numbers, dtype=np.float64), keyword, place, path, count, integer)


def _checked(numbers: np.ndarray, keyword: str, place: str, path, count: int | None, integer: bool):
    if count is not None and len(numbers) != count:
        raise SegmentationError(f"{place}{keyword} has {len(numbers)} values, not {count}", path)
    if not np.isfinite(numbers).all():
        raise SegmentationError(f"{place}{keyword} is not finite (NaN or infinite)", path)
    if integer:
        if (numbers != np.trunc(numbers)).any():
            raise SegmentationError(f"{place}{keyword} must be a whole number", path)
        return [int(v) for v in numbers]
    return numbers


@dataclass
class Segment:
    """One segment as voxels with their exact patient geometry.

    Attributes
    ----------
    number:
        Segment number (DICOM SEG), ROI Number (RTSTRUCT), label value (label maps)
        or 1-based position in a Slicer ``.seg.nrrd``.
    name:
        Segment label / ROI name / ``.seg.nrrd`` name.
    data:
        ``[k, j, i]`` voxels: a mask, raw fractional values or a label map.
    geometry:
        Voxel index ``(i, j, k)`` -> LPS mm (:class:`SliceGeometry` for DICOM
        stacks, :class:`AffineGeometry` for NIfTI / NRRD).
    label_value:
        When set, the segment is the voxels of ``data`` equal to it.
    scale:
        Factor from ``data`` to a fraction in 0..1 (``1 / MaximumFractionalValue``).
    level:
        Iso-level of :attr:`volume` at which the surface lies (0.5: half-way
        between inside and outside voxel centres).
    color:
        Display colour, sRGB components in 0..1, when the file gives one.
    description:
        What the file says the segment is beyond its name (property type, RT ROI
        interpreted type), if anything.
    path:
        The file the segment was read from (for messages).
    box:
        ``[k, j, i]`` slices of the smallest box holding every voxel inside, when
        the reader knows it (label maps find all labels' boxes in one pass, so
        the work per label is bounded by its own box, not the whole map); ``()``
        when it knows the segment is empty; ``None`` when it does not know.
    """

    number: int
    name: str
    data: np.ndarray
    geometry: object
    label_value: int | None = None
    scale: float = 1.0
    level: float = 0.5
    color: tuple[float, float, float] | None = None
    description: str | None = None
    path: Path | None = None
    box: tuple[slice, slice, slice] | None = None

    @property
    def volume(self) -> np.ndarray:
        """``[k, j, i]`` float32: 1 inside, 0 outside, or the fraction inside."""
        if self.label_value is not None:
            return (self.data == self.label_value).astype(np.float32)
        if self.data.dtype == np.float32 and self.scale == 1.0:
            return self.data
        return self.data.astype(np.float32) * np.float32(self.scale)

    def _inside(self) -> np.ndarray:
        if self.label_value is not None:
            return self.data == self.label_value
        return self.data * self.scale >= self.level

    @property
    def is_empty(self) -> bool:
        """True when no voxel reaches the level, so there is no surface to make."""
        if self.box is not None:
            return not self.box
        return not bool(np.any(self._inside()))

    @property
    def title(self) -> str:
        """``"<number> <name>"``, as listed and described."""
        return f"{self.number} {self.name}"

    def cropped(self, margin: int = 1) -> Segment:
        """The same segment on the smallest box holding it plus ``margin`` voxels.

        The geometry is shifted with the box, so ``lps_from_index`` of a voxel is
        unchanged; meshing the box is exact and much cheaper than the full grid.
        """
        if self.box == ():
            return self
        if self.box is not None:
            bounds = [(max(box.start - margin, 0), min(box.stop + margin, size))
                      for box, size in zip(self.box, self.data.shape)]
        else:
            inside = self._inside()
            if not inside.any():
                return self
            bounds = []
            for axis in range(3):
                others = tuple(a for a in range(3) if a != axis)
                hit = np.flatnonzero(inside.any(axis=others))
                bounds.append((max(hit[0] - margin, 0), min(hit[-1] + margin + 1, inside.shape[axis])))
        (k0, k1), (j0, j1), (i0, i1) = bounds
        return replace(
            self,
            data=np.ascontiguousarray(self.data[k0:k1, j0:j1, i0:i1]),
            geometry=shifted_geometry(self.geometry, i0, j0, k0, k1),
            box=None,
        )


def shifted_geometry(geometry, i0: int, j0: int, k0: int, k1: int | None = None):
    """Geometry of the sub-volume starting at voxel ``(i0, j0, k0)`` (up to slice ``k1``).

    Voxel ``(i, j, k)`` of the sub-volume maps to the LPS position of voxel
    ``(i + i0, j + j0, k + k0)`` of the whole: exact for sheared and unevenly
    spaced stacks, since each kept slice keeps its own ImagePositionPatient.
    """
    if isinstance(geometry, SliceGeometry):
        positions = geometry.positions[k0:k1]
        offset = geometry.in_plane_offsets(np.array([i0]), np.array([j0]))[0]
        return replace(geometry, positions=positions + offset)
    matrix = geometry.matrix.copy()
    matrix[:3, 3] = geometry.lps_from_index(np.array([[i0, j0, k0]]))[0]
    return AffineGeometry(matrix)


# --- file types -------------------------------------------------------------------

def read_dicom_header(path, **options):
    """The dataset of a DICOM file without its pixel data, or ``None`` if it is not DICOM.

    Raises
    ------
    SegmentationError
        The path is not a regular file that can be read.
    """
    with open_input(path, SegmentationError) as stream, quiet_reading():
        try:
            return pydicom.dcmread(stream, stop_before_pixels=True, **options)
        except Exception:  # pydicom raises many types for what is not DICOM
            return None


#: Value Representations pydicom decodes without parsing further structure.
_KNOWN_VRS = frozenset(
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SS ST SV TM UC UI UL UR US UT UV".split()
)


def read_dicom(path, what: str):
    """The whole dataset of a DICOM file; :class:`SegmentationError` if it cannot be read.

    The file is opened as :func:`.files.open_input` allows (no FIFO or device) and
    its values are decoded lazily: read them under :func:`quiet_reading`.
    """
    with open_input(path, SegmentationError) as stream, quiet_reading():
        try:
            dataset = pydicom.dcmread(stream)
            _parse_sequences(dataset)
        except Exception as error:  # pydicom raises many types for broken files
            raise SegmentationError(f"cannot read as {what}: {one_line(error)}", path) from None
    return dataset


def _parse_sequences(dataset) -> None:
    """Parse every sequence of ``dataset`` now, while a broken one is a reading error.

    pydicom parses a sequence (and an element of an unknown VR) only when it is
    first accessed, so a file truncated or damaged inside one would otherwise
    raise OSError, struct.error or NotImplementedError wherever it is read.  Leaf
    values are left undecoded: the readers check them and name the attribute.
    """
    from pydicom.datadict import dictionary_VR
    from pydicom.dataelem import RawDataElement

    for tag in list(dataset.keys()):
        raw = dataset.get_item(tag)
        if isinstance(raw, RawDataElement):
            vr = raw.VR
            if vr is None:  # implicit VR: the dictionary says which are sequences
                try:
                    vr = dictionary_VR(tag)
                except KeyError:
                    continue
            if vr not in ("SQ", "UN") and vr in _KNOWN_VRS:
                continue
        element = dataset[tag]
        if element.VR == "SQ":
            for item in element.value:
                _parse_sequences(item)


