"""Read Encapsulated STL objects from any producer.

Producers differ: DCMTK's stl2dcm defaults to micrometres, old dcm4che to metres,
the Orthanc STL plugin writes an all-zero STL header and puts the document title
into the units' Code Meaning.  The reader trusts coded values (Code Value and
Coding Scheme Designator), never meanings, and reports what it could not find
instead of guessing silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from . import codes
from .color import rgb_from_dicom_lab
from .errors import NotEncapsulatedSTLError, StlFormatError
from .document import (
    ENCAPSULATED_DOCUMENT_TAG,
    ENCAPSULATED_STL_SOP_CLASS_UID,
    encapsulated_stl_bytes,
    set_streamed_document,
)
from .stl import MAP_THRESHOLD, StlMesh, map_whole_file, parse_binary_stl


@dataclass
class SourceSeriesReference:
    """A series the model was derived from, as far as the object tells."""

    series_instance_uid: str | None
    study_instance_uid: str | None
    sop_instance_uids: list[str] = field(default_factory=list)


@dataclass
class EncapsulatedModel:
    """An Encapsulated STL object, read and checked.

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
    """

    path: Path | None
    dataset: Dataset
    stl: memoryview
    mesh: StlMesh
    units: str | None
    units_problem: str | None

    # -- identity and links ---------------------------------------------------
    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

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
        items = self.dataset.get("ModelUsageCodeSequence") or []
        if not items:
            return None
        item = items[0]
        key = codes.usage_key(str(item.get("CodeValue", "")), str(item.get("CodingSchemeDesignator", "")))
        return key or _text(item, "CodeMeaning")

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
        value = self.dataset.get("RecommendedDisplayCIELabValue")
        return rgb_from_dicom_lab(value) if value is not None and len(value) == 3 else None

    @property
    def opacity(self) -> float | None:
        value = self.dataset.get("RecommendedPresentationOpacity")
        return float(value) if value is not None and value != "" else None

    @property
    def model_group_uid(self) -> str | None:
        return _text(self.dataset, "ModelGroupUID")

    @property
    def source_series(self) -> list[SourceSeriesReference]:
        """Source series with their instances, from Common Instance Reference.

        Instances listed only in Source Instance Sequence (producers that write no
        Common Instance Reference module) are gathered in one entry with an
        unknown series.
        """
        found: list[SourceSeriesReference] = []
        listed: set[str] = set()
        own_study = self.study_instance_uid
        groups = [(own_study, self.dataset.get("ReferencedSeriesSequence") or [])]
        for study in self.dataset.get("StudiesContainingOtherReferencedInstancesSequence") or []:
            groups.append((_text(study, "StudyInstanceUID"), study.get("ReferencedSeriesSequence") or []))
        for study_uid, series_items in groups:
            for series in series_items:
                uids = [
                    str(item.ReferencedSOPInstanceUID)
                    for item in series.get("ReferencedInstanceSequence") or []
                    if "ReferencedSOPInstanceUID" in item
                ]
                listed.update(uids)
                found.append(
                    SourceSeriesReference(_text(series, "SeriesInstanceUID"), study_uid, uids)
                )
        unlisted = [uid for uid in self.source_instance_uids if uid not in listed]
        if unlisted:
            found.append(SourceSeriesReference(None, None, unlisted))
        return found

    @property
    def source_instance_uids(self) -> list[str]:
        """SOP Instance UIDs in Source Instance Sequence, in order."""
        return [
            str(item.ReferencedSOPInstanceUID)
            for item in self.dataset.get("SourceInstanceSequence") or []
            if "ReferencedSOPInstanceUID" in item
        ]

    # -- geometry -------------------------------------------------------------
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


def _text(dataset: Dataset, keyword: str) -> str | None:
    value = dataset.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _declared_units(dataset: Dataset) -> tuple[str | None, str | None]:
    """(units, problem): the CID 7063 code, or None and what is wrong."""
    items = dataset.get("MeasurementUnitsCodeSequence") or []
    if not items:
        return None, "the object declares no units (Measurement Units Code Sequence missing)"
    item = items[0]
    value = str(item.get("CodeValue", "")).strip()
    scheme = str(item.get("CodingSchemeDesignator", "")).strip()
    if scheme == "UCUM" and value in codes.UNIT_MILLIMETRES:
        return value, None
    return None, f"the object declares units '{value}' ({scheme or 'no scheme'}), not one of m, cm, mm, um (UCUM)"


def read_dataset(path: str | os.PathLike) -> Dataset:
    """Read a DICOM file that must be an Encapsulated STL object.

    Raises
    ------
    NotEncapsulatedSTLError
        Missing file, not DICOM, or DICOM of another SOP class.
    """
    path = Path(path)
    if not path.exists():
        raise NotEncapsulatedSTLError("no such file", path)
    if path.is_dir():
        raise NotEncapsulatedSTLError("is a directory, not a DICOM file", path)
    try:
        dataset = pydicom.dcmread(path, defer_size=MAP_THRESHOLD)
        _map_deferred_document(dataset, path)
    except InvalidDicomError:
        raise NotEncapsulatedSTLError("not a DICOM file", path) from None
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError) as error:
        raise NotEncapsulatedSTLError(f"unreadable DICOM file ({error})", path) from None
    return check_dataset(dataset, path)


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
    mapped = map_whole_file(path)
    start, length = raw.value_tell, raw.length
    if length == 0xFFFFFFFF or start + length > len(mapped):
        return
    set_streamed_document(dataset, memoryview(mapped)[start:start + length])


def check_dataset(dataset: Dataset, path=None) -> Dataset:
    """Return ``dataset`` if it is an Encapsulated STL object with a document."""
    sop_class = str(dataset.get("SOPClassUID", "") or "")
    if sop_class != ENCAPSULATED_STL_SOP_CLASS_UID:
        name = pydicom.uid.UID(sop_class).name if sop_class else "no SOP Class UID"
        raise NotEncapsulatedSTLError(
            f"not an Encapsulated STL object (SOP Class {sop_class or '-'}: {name})", path
        )
    try:
        document = dataset.get("EncapsulatedDocument")
    except (ValueError, TypeError, KeyError) as error:
        raise NotEncapsulatedSTLError(f"unreadable Encapsulated Document ({error})", path) from None
    if not document:
        raise NotEncapsulatedSTLError("Encapsulated Document (0042,0011) is missing or empty", path)
    return dataset


def model_from_dataset(
    dataset: Dataset, path: str | os.PathLike | None = None, *, check_values: bool = True
) -> EncapsulatedModel:
    """Check and parse an Encapsulated STL dataset already in memory.

    ``check_values=False`` leaves the STL's NaN/Inf scan to the caller (see
    :class:`stl.ValueCheck`); everything else is checked.
    """
    path = Path(path) if path is not None else None
    check_dataset(dataset, path)
    stl = encapsulated_stl_bytes(dataset)
    try:
        mesh = parse_binary_stl(stl, path, check_values=check_values)
    except StlFormatError as error:
        raise StlFormatError(f"encapsulated STL is invalid: {error.reason}", path) from None
    units, problem = _declared_units(dataset)
    return EncapsulatedModel(path, dataset, stl, mesh, units, problem)


def read_encapsulated_model(path: str | os.PathLike, *, check_values: bool = True) -> EncapsulatedModel:
    """Read, check and parse an Encapsulated STL file from any producer.

    ``check_values``: see :func:`model_from_dataset`.

    Raises
    ------
    NotEncapsulatedSTLError
        The file is missing, not DICOM, or not an Encapsulated STL object.
    StlFormatError
        The encapsulated STL is truncated or malformed.
    """
    return model_from_dataset(read_dataset(path), path, check_values=check_values)
