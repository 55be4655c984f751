"""Read Encapsulated STL (and Encapsulated OBJ) objects from any producer.

Producers differ: DCMTK's stl2dcm defaults to micrometres, old dcm4che to metres,
the Orthanc STL plugin writes an all-zero STL header and puts the document title
into the units' Code Meaning.  The reader trusts coded values (Code Value and
Coding Scheme Designator), never meanings, and reports what it could not find
instead of guessing silently.

Hostile or damaged files end in the project's errors, never another exception: the
file's structure is checked before pydicom reads it (:mod:`~encapsulated_stl.iod.structure`), and
every attribute a caller reads is taken through a check of its value, so an
attribute with an unusable value reads as ``None`` and is named in
:attr:`EncapsulatedModel.problems`.
"""

from __future__ import annotations

import math
import mmap
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence

from ..errors import EncapsulatedSTLError, NotEncapsulatedSTLError, ObjFormatError, StlFormatError
from ..files import available_memory, open_input
from ..obj.format import document_problem as obj_document_problem
from ..obj.format import read_obj
from ..stl.format import (
    MAP_THRESHOLD,
    StlMesh,
    binary_stl_bytes,
    looks_like_ascii_stl,
    map_whole_file,
    parse_ascii_stl,
    parse_binary_stl,
    unit_normals,
)
from . import codes
from .color import rgb_from_dicom_lab
from .document import (
    ENCAPSULATED_DOCUMENT_TAG,
    ENCAPSULATED_MTL_SOP_CLASS_UID,
    ENCAPSULATED_OBJ_SOP_CLASS_UID,
    ENCAPSULATED_STL_SOP_CLASS_UID,
    OBJ_MIME_TYPE,
    DocumentReader,
    set_streamed_document,
    shown,
    stl_in_document,
    text_in_document,
)
from .structure import DEFLATED, StructureError, check_structure

#: The SOP classes whose objects hold a model: Encapsulated STL and Encapsulated OBJ.
MODEL_SOP_CLASSES = (ENCAPSULATED_STL_SOP_CLASS_UID, ENCAPSULATED_OBJ_SOP_CLASS_UID)
_CLASS_NAMES = {ENCAPSULATED_STL_SOP_CLASS_UID: "Encapsulated STL", ENCAPSULATED_OBJ_SOP_CLASS_UID: "Encapsulated OBJ",
                ENCAPSULATED_MTL_SOP_CLASS_UID: "Encapsulated MTL"}


@dataclass
class SourceSeriesReference:
    """A series the model was derived from, as far as the object tells."""

    series_instance_uid: str | None
    study_instance_uid: str | None
    sop_instance_uids: list[str] = field(default_factory=list)


@dataclass
class PredecessorReference:
    """An earlier model this one is a new version of (Predecessor Documents Sequence)."""

    sop_instance_uid: str
    sop_class_uid: str | None
    series_instance_uid: str | None
    study_instance_uid: str | None
    purpose: str | None
    """``edited``, ``component``, the Code Meaning of another purpose, or None."""


@dataclass
class EncapsulatedModel:
    """An Encapsulated STL (or Encapsulated OBJ: see :attr:`groups`) object, read and checked.

    Attributes
    ----------
    dataset:
        The DICOM dataset (Encapsulated Document included).
    stl:
        The STL bytes without padding (a view into the dataset's document).
    mesh:
        The parsed STL, coordinates in the object's own ``units``.
    units:
        UCUM code of the STL units (m, cm, mm, um), or ``None`` if the object
        does not say (or says something outside CID 7063: see ``units_problem``).
    problems:
        What the reader had to overlook, one line each: first the :attr:`notes`
        on how the document was stored, then attributes present with a value that
        cannot be used (a damaged or misencoded element), each read as ``None``.
    notes:
        How the STL was found where it was not stored as Supplement 205 says, with
        the bytes still unambiguous: an ASCII STL, bytes after the last triangle, a
        MIME type other than model/stl, an Encapsulated Document Length that
        disagrees.  Also in :attr:`problems`.
    """

    path: Path | None
    dataset: Dataset
    stl: memoryview
    mesh: StlMesh
    units: str | None
    units_problem: str | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    groups: tuple = ()
    """For an Encapsulated OBJ object, its groups (:class:`.obj.format.ObjGroup`), whose
    triangles :attr:`mesh` holds one after another; :attr:`stl` is then the OBJ text."""

    @property
    def file_format(self) -> str:
        """``STL`` or ``OBJ``: what the object encapsulates."""
        return "OBJ" if _text(self.dataset, "SOPClassUID") == ENCAPSULATED_OBJ_SOP_CLASS_UID else "STL"

    @property
    def referenced_documents(self) -> list[tuple[str | None, str | None, str | None]]:
        """``(SOP Class UID, SOP Instance UID, relative URI)`` of each object the document
        names (Referenced Instance Sequence (0008,114A) of the Encapsulated Document
        Module, PS3.3 C.24.2): an OBJ's MTL objects."""
        items, _problem = _items(self.dataset, "ReferencedInstanceSequence")
        return [(_text(item, "ReferencedSOPClassUID"), _text(item, "ReferencedSOPInstanceUID"),
                 _text(item, "RelativeURIReferenceWithinEncapsulatedDocument")) for item in items]

    # -- identity and links ---------------------------------------------------
    @property
    def sop_instance_uid(self) -> str | None:
        return _text(self.dataset, "SOPInstanceUID")

    @property
    def series_instance_uid(self) -> str | None:
        return _text(self.dataset, "SeriesInstanceUID")

    @property
    def study_instance_uid(self) -> str | None:
        return _text(self.dataset, "StudyInstanceUID")

    @property
    def frame_of_reference_uid(self) -> str | None:
        return _text(self.dataset, "FrameOfReferenceUID")

    @property
    def patient_name(self) -> str | None:
        return _text(self.dataset, "PatientName")

    @property
    def patient_id(self) -> str | None:
        return _text(self.dataset, "PatientID")

    @property
    def title(self) -> str | None:
        return _text(self.dataset, "DocumentTitle")

    @property
    def description(self) -> str | None:
        return _text(self.dataset, "ContentDescription")

    @property
    def series_description(self) -> str | None:
        return _text(self.dataset, "SeriesDescription")

    @property
    def name(self) -> str:
        """A display name: Content Description, else Series Description, else title."""
        return self.description or self.series_description or self.title or "Model"

    @property
    def usage(self) -> str | None:
        """Model usage key (``planning``...) or the code meaning if outside CID 7064."""
        return _usage(self.dataset)[0]

    @property
    def laterality(self) -> str | None:
        return _text(self.dataset, "ImageLaterality")

    @property
    def producer(self) -> str:
        """Manufacturer, model name and software versions of the equipment."""
        parts = [
            _text(self.dataset, "Manufacturer"),
            _text(self.dataset, "ManufacturerModelName"),
            _text(self.dataset, "SoftwareVersions"),
        ]
        return " ".join(p for p in parts if p) or "unknown"

    @property
    def color(self) -> tuple[float, float, float] | None:
        """Recommended display colour as sRGB 0..1, or None."""
        return _color(self.dataset)[0]

    @property
    def opacity(self) -> float | None:
        """Recommended presentation opacity in 0..1, or None."""
        return _opacity(self.dataset)[0]

    @property
    def model_group_uid(self) -> str | None:
        return _text(self.dataset, "ModelGroupUID")

    @property
    def source_series(self) -> list[SourceSeriesReference]:
        """Source series with their instances, from Common Instance Reference (where the
        earlier versions named in :attr:`predecessors` are listed too, and left out here).

        Instances listed only in Source Instance Sequence (producers that write no
        Common Instance Reference module) are gathered in one entry with an
        unknown series.
        """
        # versions and the files the document names, not sources
        earlier = {p.sop_instance_uid for p in self.predecessors} | {
            uid for _class, uid, _uri in self.referenced_documents}
        found = []
        for series in _referenced_instances_by_series(self.dataset):
            series.sop_instance_uids = [uid for uid in series.sop_instance_uids if uid not in earlier]
            if series.sop_instance_uids:
                found.append(series)
        listed = {uid for series in found for uid in series.sop_instance_uids}
        unlisted = [uid for uid in self.source_instance_uids if uid not in listed]
        if unlisted:
            found.append(SourceSeriesReference(None, None, unlisted))
        return found

    @property
    def predecessors(self) -> list[PredecessorReference]:
        """The earlier models named in Predecessor Documents Sequence (0040,A360), in order."""
        return predecessor_references(self.dataset)

    @property
    def source_instance_uids(self) -> list[str]:
        """SOP Instance UIDs in Source Instance Sequence, in order."""
        return _referenced_instances(self.dataset, "SourceInstanceSequence")

    # -- geometry -------------------------------------------------------------
    @property
    def is_ascii(self) -> bool:
        """True when the document is an ASCII STL (another producer's; ours are binary)."""
        return self.mesh.header is None and not self.groups

    @property
    def binary_stl(self) -> memoryview | bytearray:
        """The model as binary STL: :attr:`stl` itself, or an ASCII or OBJ document converted."""
        return binary_stl_bytes(self.mesh.triangles) if self.mesh.header is None else self.stl

    @property
    def millimetres_per_unit(self) -> float | None:
        return codes.UNIT_MILLIMETRES.get(self.units) if self.units else None

    def triangles_mm(self, assume_units: str | None = None) -> np.ndarray:
        """``(n, 3, 3)`` float64 vertices in millimetres, patient coordinates (LPS).

        Parameters
        ----------
        assume_units:
            Units to use when the object does not declare valid ones.

        Raises
        ------
        NotEncapsulatedSTLError
            If the units are unknown and ``assume_units`` is not given.
        """
        scale = self.millimetres_per_unit
        if scale is None:
            if assume_units is None:
                raise NotEncapsulatedSTLError(
                    f"{self.units_problem}; give the units explicitly (e.g. --units mm)",
                    self.path,
                )
            scale = codes.UNIT_MILLIMETRES[codes.units_key(assume_units)]
        return self.mesh.triangles.astype(np.float64) * scale

    def bounds_mm(self, assume_units: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Minimum and maximum corner in LPS millimetres."""
        low, high = self.mesh.bounds()
        scale = self.millimetres_per_unit
        if scale is None:
            scale = codes.UNIT_MILLIMETRES[codes.units_key(assume_units or "mm")]
        return low * scale, high * scale


# -- attribute values, checked --------------------------------------------------
# A damaged or misencoded element (a wrong VR, a value of the wrong length, bytes
# that do not decode) makes pydicom raise or warn when the value is first used.
# Every reading goes through these, which turn that into ``None`` and a problem.

_UNREADABLE = object()


def _get(dataset: Dataset, keyword: str):
    """The element's value, None when absent, or ``_UNREADABLE``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dataset.get(keyword)
    except Exception:  # pydicom's conversion of a damaged value: any type
        return _UNREADABLE


def _label(keyword: str) -> str:
    tag = pydicom.datadict.tag_for_keyword(keyword)
    return f"{pydicom.datadict.dictionary_description(tag)} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _text(dataset: Dataset, keyword: str) -> str | None:
    value = _get(dataset, keyword)
    if value is None or value is _UNREADABLE or isinstance(value, (bytes, Sequence)):
        return None
    text = str(value).strip()
    return text or None


def _text_problem(dataset: Dataset, keyword: str) -> str | None:
    value = _get(dataset, keyword)
    if value is _UNREADABLE:
        return f"{_label(keyword)} cannot be read; ignored"
    if isinstance(value, (bytes, Sequence)):
        return f"{_label(keyword)} is not text; ignored"
    return None


def _items(dataset: Dataset, keyword: str) -> tuple[list[Dataset], str | None]:
    """(items of a sequence, problem): a value that is not a sequence reads as none."""
    value = _get(dataset, keyword)
    if value is None or value == "" or value == b"":
        return [], None
    if value is _UNREADABLE or not isinstance(value, Sequence):
        return [], f"{_label(keyword)} is not a readable sequence; ignored"
    return [item for item in value if isinstance(item, Dataset)], None


def _referenced_instances(dataset: Dataset, keyword: str) -> list[str]:
    uids = (_text(item, "ReferencedSOPInstanceUID") for item in _items(dataset, keyword)[0])
    return [uid for uid in uids if uid]


def common_instance_references(dataset: Dataset) -> list[tuple[str | None, str | None, list[tuple[str | None, str]]]]:
    """The Common Instance Reference module of any dataset: ``(study UID, series UID,
    [(SOP Class UID, SOP Instance UID), ...])`` per series item, in order; instance items
    without an instance UID and unreadable items are passed over."""
    groups = [(_text(dataset, "StudyInstanceUID"), _items(dataset, "ReferencedSeriesSequence")[0])]
    for study in _items(dataset, "StudiesContainingOtherReferencedInstancesSequence")[0]:
        groups.append((_text(study, "StudyInstanceUID"), _items(study, "ReferencedSeriesSequence")[0]))
    found = []
    for study_uid, series_items in groups:
        for series in series_items:
            instances = [(_text(item, "ReferencedSOPClassUID"), _text(item, "ReferencedSOPInstanceUID"))
                         for item in _items(series, "ReferencedInstanceSequence")[0]]
            found.append((study_uid, _text(series, "SeriesInstanceUID"),
                          [(sop_class, uid) for sop_class, uid in instances if uid]))
    return found


def _referenced_instances_by_series(dataset: Dataset) -> list[SourceSeriesReference]:
    """The series and instances of the Common Instance Reference module."""
    return [SourceSeriesReference(series_uid, study_uid, [uid for _class, uid in instances])
            for study_uid, series_uid, instances in common_instance_references(dataset)]


def _code(dataset: Dataset, keyword: str) -> tuple[tuple[str, str, str] | None, str | None]:
    """((value, scheme, meaning) of a code sequence's first item, or None; problem)."""
    items, problem = _items(dataset, keyword)
    if not items:
        return None, problem
    item = items[0]
    return (_text(item, "CodeValue") or "", _text(item, "CodingSchemeDesignator") or "",
            _text(item, "CodeMeaning") or ""), None


def predecessor_references(dataset: Dataset) -> list[PredecessorReference]:
    """The instances any dataset names in Predecessor Documents Sequence (0040,A360),
    in order; unreadable items are passed over."""
    found = []
    for study in _items(dataset, "PredecessorDocumentsSequence")[0]:
        for series in _items(study, "ReferencedSeriesSequence")[0]:
            for item in _items(series, "ReferencedSOPSequence")[0]:
                uid = _text(item, "ReferencedSOPInstanceUID")
                if uid:
                    found.append(PredecessorReference(
                        uid, _text(item, "ReferencedSOPClassUID"), _text(series, "SeriesInstanceUID"),
                        _text(study, "StudyInstanceUID"), predecessor_purpose_key(item)))
    return found


def predecessor_purpose_key(item: Dataset) -> str | None:
    """``edited`` or ``component`` for a CID 7062 purpose, another purpose's Code Meaning, or None."""
    code, _problem = _code(item, "PurposeOfReferenceCodeSequence")
    if code is None:
        return None
    for key, known in codes.PREDECESSOR_PURPOSES.items():
        if (known.value, known.scheme_designator) == code[:2]:
            return key
    return code[2] or None


def _usage(dataset: Dataset) -> tuple[str | None, str | None]:
    code, problem = _code(dataset, "ModelUsageCodeSequence")
    if code is None:
        return None, problem
    value, scheme, meaning = code
    return codes.usage_key(value, scheme) or meaning or None, None


def _numbers(value, count: int) -> list[float] | None:
    """``count`` finite numbers from a numeric element's value, else None."""
    values = list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    if len(values) != count:
        return None
    numbers = []
    for item in values:
        if isinstance(item, (bool, str, bytes)) or not isinstance(item, (int, float)):
            return None
        number = float(item)
        if not math.isfinite(number):
            return None
        numbers.append(number)
    return numbers


def _color(dataset: Dataset) -> tuple[tuple[float, float, float] | None, str | None]:
    value = _get(dataset, "RecommendedDisplayCIELabValue")
    if value is None or value == "":
        return None, None
    lab = None if value is _UNREADABLE else _numbers(value, 3)
    if lab is None or not all(0 <= v <= 65535 for v in lab):
        return None, (f"{_label('RecommendedDisplayCIELabValue')} is "
                      f"{'unreadable' if value is _UNREADABLE else shown(value)}, not three "
                      "integers in 0..65535; ignored")
    return rgb_from_dicom_lab(lab), None


def _opacity(dataset: Dataset) -> tuple[float | None, str | None]:
    value = _get(dataset, "RecommendedPresentationOpacity")
    if value is None or value == "":
        return None, None
    number = None if value is _UNREADABLE else _numbers(value, 1)
    if number is None or not 0.0 <= number[0] <= 1.0:
        return None, (f"{_label('RecommendedPresentationOpacity')} is "
                      f"{'unreadable' if value is _UNREADABLE else shown(value)}, not a number in 0..1; ignored")
    return number[0], None


_TEXT_KEYWORDS = (
    "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID", "PatientName",
    "PatientID", "DocumentTitle", "ContentDescription", "SeriesDescription", "ImageLaterality",
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ModelGroupUID",
)
_SEQUENCE_KEYWORDS = (
    "SourceInstanceSequence", "ReferencedSeriesSequence", "StudiesContainingOtherReferencedInstancesSequence",
)


def _attribute_problems(dataset: Dataset) -> list[str]:
    """What the model's properties could not use, one line each."""
    found = [_text_problem(dataset, keyword) for keyword in _TEXT_KEYWORDS]
    found += [_items(dataset, keyword)[1] for keyword in _SEQUENCE_KEYWORDS]
    found += [_usage(dataset)[1], _color(dataset)[1], _opacity(dataset)[1]]
    return [problem for problem in found if problem]


def _declared_units(dataset: Dataset) -> tuple[str | None, str | None]:
    """(units, problem): the CID 7063 code, or None and what is wrong."""
    code, problem = _code(dataset, "MeasurementUnitsCodeSequence")
    if problem:
        return None, f"the object's units cannot be read ({problem})"
    if code is None:
        return None, "the object declares no units (Measurement Units Code Sequence missing)"
    value, scheme, _meaning = code
    if scheme == "UCUM" and value in codes.UNIT_MILLIMETRES:
        return value, None
    return None, (f"the object declares units {shown(value)} ({shown(scheme) if scheme else 'no scheme'}), "
                  "not one of m, cm, mm, um (UCUM)")


# -- reading -------------------------------------------------------------------


def read_dataset(path: str | os.PathLike, sop_classes: tuple[str, ...] = MODEL_SOP_CLASSES) -> Dataset:
    """Read a DICOM file that must be an Encapsulated STL or OBJ object (or of ``sop_classes``).

    The file must be a regular file (a FIFO, device or directory is refused at
    once) and whole: it must end exactly where its last element does, with every
    value, sequence and item complete (:func:`~encapsulated_stl.iod.structure.check_structure`),
    checked before pydicom reads it, so a declared length beyond the file is never
    allocated.

    Raises
    ------
    NotEncapsulatedSTLError
        Missing, special or truncated file, not DICOM, or DICOM of another SOP class.
    """
    path = Path(path)
    with open_input(path, NotEncapsulatedSTLError) as stream:
        syntax = _check_whole(stream, path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom's warnings about producers' quirks
                # deflated data sets are read from memory, where pydicom cannot defer
                # by name: pydicom reopens the file to read a deferred value
                dataset = pydicom.dcmread(str(path), defer_size=None if syntax == DEFLATED else MAP_THRESHOLD)
                _map_deferred_document(dataset, path)
        except InvalidDicomError:
            raise NotEncapsulatedSTLError("not a DICOM file", path) from None
        except EncapsulatedSTLError:
            raise
        except Exception as error:  # pydicom on a damaged file: any type
            raise NotEncapsulatedSTLError(f"unreadable DICOM file ({_one_line(error)})", path) from None
    return check_dataset(dataset, path, sop_classes)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _check_whole(stream, path: Path) -> str | None:
    """The file's transfer syntax, once its structure is known to be whole."""
    size = os.fstat(stream.fileno()).st_size
    if size == 0:
        raise NotEncapsulatedSTLError("not a DICOM file (the file is empty)", path)
    try:
        with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            # A deflated data set is inflated by this check and again by pydicom, beside the
            # file: a quarter of the memory available each, at most, and no more than a
            # real object inflates to (DICOM text ~10:1, STL floats ~3:1); beyond that it
            # is a deflate bomb.
            limit = max(_INFLATED_FLOOR, _INFLATION_RATIO * size)
            memory = available_memory()
            return check_structure(mapped, decompress_limit=min(limit, memory // 4) if memory else limit)
    except StructureError as error:
        raise NotEncapsulatedSTLError(str(error), path) from None
    except (OSError, ValueError) as error:
        raise NotEncapsulatedSTLError(f"cannot read: {_one_line(error)}", path) from None


#: The most a deflated object may inflate to: this many times its file size, or the floor.
_INFLATION_RATIO = 64
_INFLATED_FLOOR = 64 * 1024 * 1024


def _map_deferred_document(dataset: Dataset, path: Path) -> None:
    """Memory-map a large Encapsulated Document instead of reading it.

    pydicom defers reading values above ``defer_size`` and remembers where they
    start.  A 100 MB model is then mapped, checked and written out without a copy
    in memory.  Only for plain (not deflated) transfer syntaxes, where the value
    lies in the file as it is; otherwise pydicom reads it on first access.
    """
    raw = dataset._dict.get(ENCAPSULATED_DOCUMENT_TAG)  # pydicom's own, unconverted element
    if raw is None or getattr(raw, "value", b"") is not None or not hasattr(raw, "value_tell"):
        return
    syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    if syntax is None or syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
        return
    if raw.VR not in _DOCUMENT_VRS + (None,):  # None: implicit VR, the dictionary's OB
        return  # check_dataset refuses it
    mapped = map_whole_file(path)
    start, length = raw.value_tell, raw.length
    if length == 0xFFFFFFFF or start + length > len(mapped):
        return
    set_streamed_document(dataset, memoryview(mapped)[start:start + length])


#: Value representations under which Encapsulated Document's value is its bytes as stored.
_DOCUMENT_VRS = ("OB", "OW", "UN", "OB or OW")


def check_dataset(dataset: Dataset, path=None, sop_classes: tuple[str, ...] = MODEL_SOP_CLASSES) -> Dataset:
    """Return ``dataset`` if it is an Encapsulated STL or OBJ object (or of
    ``sop_classes``) with a document.

    Raises
    ------
    NotEncapsulatedSTLError
        Another SOP class, or no Encapsulated Document (0042,0011) that holds bytes.
    """
    sop_class = _text(dataset, "SOPClassUID") or ""
    if sop_class == ENCAPSULATED_MTL_SOP_CLASS_UID and sop_class not in sop_classes:
        raise NotEncapsulatedSTLError(
            "an Encapsulated MTL object: the material library of an OBJ model (its colours), not a "
            "surface; read the Encapsulated OBJ object that references it", path)
    if sop_class not in sop_classes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom validates the (damaged) UID it is given
            name = pydicom.uid.UID(sop_class).name if sop_class else "no SOP Class UID"
        name = _OTHER_DOCUMENT_CLASSES.get(sop_class, name)
        holding = _text(dataset, "MIMETypeOfEncapsulatedDocument") if sop_class in _OTHER_DOCUMENT_CLASSES else None
        raise NotEncapsulatedSTLError(
            f"not an {' or '.join(_CLASS_NAMES[c] for c in sop_classes)} object (SOP Class "
            f"{shown(sop_class) if sop_class else '-'}: {shown(name, 80)}"
            + (f", holding {shown(holding)}" if holding else "") + "); it is not read as one",
            path,
        )
    label = "Encapsulated Document (0042,0011)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            element = dataset[ENCAPSULATED_DOCUMENT_TAG] if ENCAPSULATED_DOCUMENT_TAG in dataset else None
            document = None if element is None else element.value
    except Exception as error:  # pydicom's conversion of a damaged value: any type
        raise NotEncapsulatedSTLError(f"{label} cannot be read ({_one_line(error)})", path) from None
    if element is not None and element.VR not in _DOCUMENT_VRS:
        raise NotEncapsulatedSTLError(
            f"{label} has value representation {shown(element.VR)}, not OB: it does not hold the "
            "STL's bytes; the object is damaged", path,
        )
    if element is not None and element.is_undefined_length:
        raise NotEncapsulatedSTLError(
            f"{label} is stored in fragments (undefined length), not as one value; the object is damaged",
            path,
        )
    if document is None or not isinstance(document, (bytes, bytearray, memoryview, DocumentReader)):
        raise NotEncapsulatedSTLError(f"{label} is missing: the object holds no model", path)
    if len(document.view if isinstance(document, DocumentReader) else document) == 0:
        raise NotEncapsulatedSTLError(f"{label} is empty (0 bytes): the object holds no model", path)
    _check_complete(dataset, path)
    return dataset


def _check_complete(dataset: Dataset, path) -> None:
    """Refuse an object that lacks what follows its document in every complete one.

    A file cut exactly between two elements has a whole structure; what betrays
    it is a missing attribute the IOD requires: MIME Type of Encapsulated Document
    (Type 1, right after the document), or a Source Instance Sequence (Type 1C:
    required when the model was derived from DICOM instances, which its Common
    Instance Reference then lists).
    """
    cut = "the file was probably cut short after its Encapsulated Document; copy or send it again"
    if _get(dataset, "MIMETypeOfEncapsulatedDocument") is None:
        raise NotEncapsulatedSTLError(
            f"MIME Type of Encapsulated Document (0042,0012) is missing: {cut}", path
        )
    if "SourceInstanceSequence" not in dataset:
        named = set(_referenced_instances(dataset, "ReferencedInstanceSequence"))  # an OBJ's MTL
        listed = sum(len(set(series.sop_instance_uids) - named) for series in _referenced_instances_by_series(dataset))
        if listed:
            raise NotEncapsulatedSTLError(
                f"Source Instance Sequence (0042,0013) is missing, though Common Instance Reference lists "
                f"{listed} source instances: {cut}", path,
            )


def model_from_dataset(
    dataset: Dataset, path: str | os.PathLike | None = None, *, check_values: bool = True
) -> EncapsulatedModel:
    """Check and parse an Encapsulated STL dataset already in memory.

    ``check_values=False`` leaves the STL's NaN/Inf scan to the caller (see
    :class:`stl.ValueCheck`); everything else is checked.

    Raises
    ------
    NotEncapsulatedSTLError
        Not an Encapsulated STL object, or no document (see :func:`check_dataset`).
    StlFormatError
        The encapsulated STL is truncated or malformed.
    """
    path = Path(path) if path is not None else None
    check_dataset(dataset, path)
    if _text(dataset, "SOPClassUID") == ENCAPSULATED_OBJ_SOP_CLASS_UID:
        return _obj_model(dataset, path)
    mime, mime_problem = _mime_type(dataset, path)
    stl, length_problem = stl_in_document(dataset)
    notes = [length_problem] if length_problem else []
    try:
        if looks_like_ascii_stl(stl):
            stl = _without_padding(stl)
            mesh = parse_ascii_stl(stl, path)
            notes.append("the document is an ASCII STL (Supplement 205 stores binary STL); read as ASCII")
        else:
            mesh = parse_binary_stl(stl, path, check_values=check_values)
    except StlFormatError as error:
        if mime_problem:  # a type that does not say STL, and bytes that are not one
            raise StlFormatError(f"{mime_problem}, and the document is not a valid STL ({error.reason})",
                                 path) from None
        raise StlFormatError(f"encapsulated STL is invalid: {error.reason}", path) from None
    if mime_problem:
        notes.append(f"{mime_problem}; the document is a valid STL and was read as one")
    units, problem = _declared_units(dataset)
    problems = notes + _attribute_problems(dataset)
    return EncapsulatedModel(path, dataset, stl, mesh, units, problem, problems, notes)


#: The MIME type Supplement 205 gives Encapsulated STL.
STL_MIME_TYPE = "model/stl"
#: Names an STL went by before model/stl was registered (2018), still seen in PACS.
LEGACY_STL_MIME_TYPES = ("application/sla", "application/vnd.ms-pki.stl", "model/x.stl-binary",
                         "model/x.stl-ascii", "application/x-stl")
#: Types that say nothing about the format.
_GENERIC_MIME_TYPES = ("application/octet-stream", "binary/octet-stream", "text/plain", "application/unknown")
#: Other encapsulated document classes, named even where pydicom's dictionary is older.
_OTHER_DOCUMENT_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF Storage",
    "1.2.840.10008.5.1.4.1.1.104.2": "Encapsulated CDA Storage",
    "1.2.840.10008.5.1.4.1.1.104.4": "Encapsulated OBJ Storage",
    "1.2.840.10008.5.1.4.1.1.104.5": "Encapsulated MTL Storage",
}


def _mime_type(dataset: Dataset, path) -> tuple[str, str | None]:
    """(MIME type, why it does not say STL, or None).

    model/stl and its legacy names are STL; a type with no format in it (text/plain,
    application/octet-stream) leaves the bytes to decide; any other type names another
    format, and the object is refused, never parsed as STL.
    """
    label = _label("MIMETypeOfEncapsulatedDocument")
    value = _text(dataset, "MIMETypeOfEncapsulatedDocument") or ""
    mime = value.split(";")[0].strip().lower()
    if mime == STL_MIME_TYPE:
        return mime, None
    if mime in LEGACY_STL_MIME_TYPES:
        return mime, f"{label} is {shown(value)}, an older name of model/stl"
    if mime in _GENERIC_MIME_TYPES or not mime:
        return mime, f"{label} is {shown(value)}, not model/stl"
    raise NotEncapsulatedSTLError(
        f"{label} is {shown(value)}: the document is in another format, not STL, and is not read as STL", path)


def _obj_model(dataset: Dataset, path) -> EncapsulatedModel:
    """An Encapsulated OBJ object read: its groups, and all their triangles as one mesh.

    The bytes decide only where the MIME type says nothing of the format; an object
    whose type or bytes are another format (Sonador's OHIF fork and its writer store
    glTF under this SOP class) is refused, never parsed as OBJ.
    """
    label = _label("MIMETypeOfEncapsulatedDocument")
    value = _text(dataset, "MIMETypeOfEncapsulatedDocument") or ""
    mime = value.split(";")[0].strip().lower()
    document, length_problem = text_in_document(dataset)
    notes = [length_problem] if length_problem else []
    problem = obj_document_problem(document)
    if mime not in (OBJ_MIME_TYPE, *_GENERIC_MIME_TYPES, ""):
        raise NotEncapsulatedSTLError(
            f"an Encapsulated OBJ object, but its {label} is {shown(value)}"
            + (f" and {problem}" if problem else "") + ": it is not read as OBJ", path)
    if problem:
        raise NotEncapsulatedSTLError(f"an Encapsulated OBJ object, but {problem}: it is not read as OBJ", path)
    try:
        parsed = read_obj(document, path)
    except ObjFormatError as error:
        raise ObjFormatError(f"encapsulated OBJ is invalid: {error.reason}", path) from None
    if mime != OBJ_MIME_TYPE:
        notes.append(f"{label} is {shown(value)}, not model/obj; the document is a valid OBJ and was read as one")
    triangles = parsed.triangles()
    mesh = StlMesh(triangles, unit_normals(triangles), np.zeros(len(triangles), np.uint16), None)
    units, units_problem = _declared_units(dataset)
    return EncapsulatedModel(path, dataset, document, mesh, units, units_problem,
                             notes + _attribute_problems(dataset), notes, parsed.groups)


def _without_padding(text: memoryview) -> memoryview:
    """An ASCII document without the NUL a producer padded it to even length with."""
    return text[:-1] if len(text) and text[-1] == 0 else text


def read_encapsulated_model(path: str | os.PathLike, *, check_values: bool = True) -> EncapsulatedModel:
    """Read, check and parse an Encapsulated STL file from any producer.

    ``check_values``: see :func:`model_from_dataset`.

    Raises
    ------
    NotEncapsulatedSTLError
        The file is missing, special (FIFO, device, directory), truncated, not
        DICOM, or not an Encapsulated STL object.
    StlFormatError
        The encapsulated STL is truncated or malformed.
    """
    return model_from_dataset(read_dataset(path), path, check_values=check_values)


#: How the units of :func:`model_triangles_mm` were known.
UNITS_DECLARED, UNITS_GIVEN, UNITS_ASSUMED = "declared", "given", "assumed"


def model_triangles_mm(path: str | os.PathLike, units: str | None = None) -> tuple[np.ndarray, str, str]:
    """The ``(n, 3, 3)`` float64 triangles in millimetres of any model file: an
    Encapsulated STL object of any producer, or an STL file.

    Returns
    -------
    (triangles, units, how)
        ``how`` is :data:`UNITS_DECLARED` (the object says), :data:`UNITS_GIVEN`
        (``units``, for an STL file or an object that declares none) or
        :data:`UNITS_ASSUMED` (millimetres: neither says).

    Raises
    ------
    NotEncapsulatedSTLError, StlFormatError
        A file that is neither, or a broken one.
    """
    from ..stl.format import parse_stl, read_stl_file

    with open_input(path, NotEncapsulatedSTLError) as stream:
        head = stream.read(132)
    if len(head) == 132 and head[128:132] == b"DICM":
        model = read_encapsulated_model(path)
        if model.units is not None:
            return model.triangles_mm(), model.units, UNITS_DECLARED
        chosen = units or "mm"
        return model.triangles_mm(assume_units=chosen), chosen, UNITS_GIVEN if units else UNITS_ASSUMED
    mesh = parse_stl(read_stl_file(path), path)
    chosen = units or "mm"
    scale = codes.UNIT_MILLIMETRES[codes.units_key(chosen)]
    return mesh.triangles.astype(np.float64) * scale, chosen, UNITS_GIVEN if units else UNITS_ASSUMED
