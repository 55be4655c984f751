"""Build Encapsulated STL objects from STL bytes, a source series and metadata.

This is the one entry point every producer uses (``wrap``, ``from-ct``,
``from-seg``, the Slicer exporter), so every object this project makes describes
the same equipment and follows the same defaults.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import struct
import warnings
from collections.abc import Callable, Iterable
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import pydicom
from pydicom.charset import default_encoding
from pydicom.dataset import Dataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian

from ..errors import EncapsulatedSTLError
from ..files import write_all_atomically, write_atomically
from ..mesh.render import CannotDraw, icon_pixels
from ..series.source_series import SourceSeries, series_numbers
from ..version import __version__
from . import codes
from .color import dicom_lab_from_rgb
from .document import ENCAPSULATED_DOCUMENT_TAG, DocumentReader
from .file_format import write_file_format
from .sop import Encapsulated3DModel, EncapsulatedSTL
from .values import IS_RANGE, check_value, person_name

#: Equipment written into every object: this software, not the scanner.
MANUFACTURER = "encapsulated-stl project"
MODEL_NAME = "encapsulated-stl"
DEVICE_SERIAL_NUMBER = "ESTL-0001"


@dataclass
class ModelMetadata:
    """What the user says about a model; every field has a safe default.

    Attributes
    ----------
    units:
        Units of the STL coordinates (m, cm, mm, um); millimetres by default.
    content_description:
        Content Description (0070,0081): what the model shows.
    usage:
        Key of :data:`codes.MODEL_USAGES` (``planning``, ``implant``...).
    laterality:
        Image Laterality: intended placement, R, L, U or B.
    burned_in_annotation:
        True when identity is embossed or engraved on the model.
    color:
        Display colour as sRGB in 0..1; stored as Recommended Display CIELab Value.
    opacity:
        Recommended Presentation Opacity in 0..1.
    model_group_uid:
        Model Group UID shared by models made together (segments of one
        segmentation).
    series_number:
        Series Number; by default one above the highest of the study's series
        that the source shows (:func:`free_series_number`).
    deidentification_method:
        De-identification Method, written only where the source images claim
        Patient Identity Removed YES without naming one (see :class:`.sop.EncapsulatedSTL`).
    icon:
        Store a picture of the model, its anterior view, as Icon Image Sequence
        (:func:`.mesh.render.icon_pixels`); on by default.

    Every text, number and UID must fit its attribute (:func:`check_metadata`):
    values are refused, never cut.
    """

    units: str = "mm"
    content_description: str | None = None
    usage: str | None = None
    laterality: str | None = None
    series_description: str | None = None
    series_number: int | None = None
    instance_number: int = 1
    burned_in_annotation: bool = False
    recognizable_visual_features: bool | None = None
    model_modification: bool | None = None
    model_mirroring: bool | None = None
    color: tuple[float, float, float] | None = None
    opacity: float | None = None
    model_group_uid: str | None = None
    document_title: str | None = None
    series_instance_uid: str | None = None
    deidentification_method: str | None = None
    icon: bool = True

    def replace(self, **changes) -> ModelMetadata:
        return dataclasses.replace(self, **changes)


#: The attribute each user-given field is written to, for :func:`check_metadata`.
METADATA_ATTRIBUTES = {
    "content_description": "ContentDescription",
    "series_description": "SeriesDescription",
    "series_number": "SeriesNumber",
    "instance_number": "InstanceNumber",
    "model_group_uid": "ModelGroupUID",
    "document_title": "DocumentTitle",
    "series_instance_uid": "SeriesInstanceUID",
    "deidentification_method": "DeidentificationMethod",
}
NEW_STUDY_ATTRIBUTES = {
    "patient_name": "PatientName",
    "patient_id": "PatientID",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "study_description": "StudyDescription",
    "accession_number": "AccessionNumber",
    "study_id": "StudyID",
    "study_instance_uid": "StudyInstanceUID",
    "frame_of_reference_uid": "FrameOfReferenceUID",
}


def check_metadata(values, attributes: dict[str, str] = METADATA_ATTRIBUTES, path=None) -> None:
    """Refuse a :class:`ModelMetadata` (or :class:`NewStudy`, with
    :data:`NEW_STUDY_ATTRIBUTES`) value its attribute cannot hold.

    Raises
    ------
    EncapsulatedSTLError
        Naming the attribute, the problem and the limit (see :mod:`~encapsulated_stl.iod.values`).
    """
    for field_name, keyword in attributes.items():
        value = getattr(values, field_name)
        if value is not None:
            check_value(value, keyword, path)


def free_series_number(used: Iterable[int]) -> int:
    """A Series Number no series in ``used`` has: one above the highest (1 for none),
    or, past the top of the IS range, the lowest free positive number."""
    used = set(used)
    highest = max(used, default=0)
    if highest < IS_RANGE[1]:
        return max(highest, 0) + 1
    return min(set(range(1, len(used) + 2)) - used)


@dataclass
class NewStudy:
    """Patient and study of a model with no DICOM source (like DCMTK's stl2dcm).

    A new Study Instance UID and Frame of Reference UID are made unless given.
    """

    patient_name: str | None = None
    patient_id: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    study_description: str | None = None
    accession_number: str | None = None
    study_id: str | None = None
    study_instance_uid: str | None = None
    frame_of_reference_uid: str | None = None


#: The patient and study fields of :class:`NewStudy` a source series decides, with their
#: attributes and labels.
SOURCE_STUDY_FIELDS = (
    ("patient_name", "PatientName", "Patient Name"),
    ("patient_id", "PatientID", "Patient ID"),
    ("patient_birth_date", "PatientBirthDate", "Patient Birth Date"),
    ("patient_sex", "PatientSex", "Patient Sex"),
    ("study_instance_uid", "StudyInstanceUID", "Study Instance UID"),
    ("study_id", "StudyID", "Study ID"),
    ("study_description", "StudyDescription", "Study Description"),
)


def study_differences(study: NewStudy, header: Dataset, empty_words: Iterable[str] = ()) -> list[str]:
    """What ``study`` says otherwise than the source image ``header`` it is ignored for.

    A model made from a series keeps the series' patient and study (:func:`encapsulate_stl`);
    each value given that differs is listed as "Label 'kept' (not 'given')".  A given
    value in ``empty_words`` (a viewer's word for an empty value, such as Slicer's "No
    name") against an empty value in the header is no difference.
    """
    empty_words = set(empty_words)
    different = []
    for field_name, keyword, label in SOURCE_STUDY_FIELDS:
        given = (getattr(study, field_name) or "").strip()
        kept = str(header.get(keyword, "") or "").strip()
        if given and given != kept and not (not kept and given in empty_words):
            different.append(f"{label} '{kept}' (not '{given}')")
    return different


def encapsulate_stl(
    stl: bytes,
    source: SourceSeries | list[Dataset] | None = None,
    metadata: ModelMetadata | None = None,
    new_study: NewStudy | None = None,
    *,
    algorithm_parameters: dict[str, str] | None = None,
    algorithm_family: codes.Code | None = None,
    path: str | os.PathLike | None = None,
    check_values: bool = True,
    other_sources: Iterable[tuple[Dataset, codes.Code]] = (),
    used_series_numbers: Iterable[int] = (),
    notice: Callable[[str], None] | None = None,
    predecessors: Iterable[tuple[Dataset, codes.Code]] = (),
    iod: type[Encapsulated3DModel] = EncapsulatedSTL,
    referenced_documents: Iterable[tuple[Dataset, str]] = (),
) -> Encapsulated3DModel:
    """Wrap binary STL bytes as an Encapsulated STL object (or, given ``iod``, another
    model file as an object of that IOD: :class:`.obj.sop.EncapsulatedOBJ`...).

    Parameters
    ----------
    stl:
        Binary STL bytes (see :func:`stl.binary_stl_for_encapsulation` for ASCII), or
        the bytes of the file ``iod`` encapsulates.
    source:
        The series the model was made from (headers only), or ``None``.
    metadata:
        Units, description, usage and the rest; defaults when ``None``.
    new_study:
        Patient and study for a model without a source; ignored with a source.
    algorithm_parameters:
        Parameters written into Derivation Algorithm Sequence (e.g. threshold).
    algorithm_family:
        How this software made the model (CID 7162), for Derivation Algorithm
        Sequence; ``None`` (the default) for a model made elsewhere and wrapped as
        given, which gets none: this software did not derive it.
    other_sources:
        Non-image instances the model was made from, with their purpose of
        reference (a SEG or RTSTRUCT header and :data:`codes.SOURCE_IMAGE_PURPOSE`
        or :data:`codes.SOURCE_DOCUMENT_PURPOSE`).
    used_series_numbers:
        Series Numbers of the study's series the caller can see beyond the
        source series, avoided by the default Series Number.
    notice:
        Told what was left out rather than invented (see
        :attr:`ModelMetadata.deidentification_method`).
    predecessors:
        Earlier models this one is a new version of, with their CID 7062 purpose
        (see :func:`revise_stl`).  Without a source they give patient, study and
        Frame of Reference.
    path:
        The STL's file name, used in error messages only.
    check_values:
        ``False`` when the caller runs the STL's NaN/Inf scan itself, alongside
        writing (:class:`stl.ValueCheck`, waited for through ``save_dataset``'s
        ``verify``).
    iod:
        The IOD class, :class:`.sop.EncapsulatedSTL` by default.
    referenced_documents:
        Objects the file names by relative URI, with that URI (an OBJ's MTL object
        and its ``mtllib`` name): see :class:`.sop.Encapsulated3DModel`.

    Raises
    ------
    EncapsulatedSTLError
        For invalid STL bytes or metadata (unknown units, usage, laterality, a
        value its attribute cannot hold), or no Patient ID for a model without a
        source: DICOM archives file objects by it, and none is ever invented.
    """
    metadata = metadata or ModelMetadata()
    datasets = list(source.datasets if isinstance(source, SourceSeries) else source or [])
    study = new_study or NewStudy()
    check_metadata(metadata)
    predecessors = list(predecessors)
    carrier = datasets[0] if datasets else predecessors[0][0] if predecessors else None  # patient, study
    source_patient_id = str(carrier.get("PatientID", "") or "").strip() if carrier is not None else ""
    if carrier is None:
        check_metadata(study, NEW_STUDY_ATTRIBUTES)
        if not (study.patient_id or "").strip():
            raise EncapsulatedSTLError(
                "a model without source images needs a Patient ID (--patient-id, or --reference to "
                "take the source's): archives file objects by it, and none is invented", path)
    elif not source_patient_id:
        if not (study.patient_id or "").strip():
            raise EncapsulatedSTLError(
                f"{'the source images have' if datasets else 'the earlier model has'} no Patient ID, and the "
                "model's is never empty: archives file objects by it; give the patient's with --patient-id", path)
        check_value(study.patient_id, "PatientID", path)
    series_number = metadata.series_number
    if series_number is None:
        seen = getattr(source, "study_series_numbers", set()) if isinstance(source, SourceSeries) else set()
        series_number = free_series_number(series_numbers(datasets) | set(seen) | set(used_series_numbers)
                                           | series_numbers(ds for ds, _purpose in predecessors))
    usage = codes.usage_code(metadata.usage) if metadata.usage else None
    arguments = dict(
        measurement_units=metadata.units,
        document_title=metadata.document_title,
        content_description=metadata.content_description,
        model_usage=usage,
        image_laterality=metadata.laterality,
        burned_in_annotation=metadata.burned_in_annotation,
        recognizable_visual_features=metadata.recognizable_visual_features,
        model_modification=metadata.model_modification,
        model_mirroring=metadata.model_mirroring,
        algorithm_name=MODEL_NAME if algorithm_family is not None else None,
        algorithm_version=__version__,
        algorithm_parameters=algorithm_parameters,
        algorithm_family=algorithm_family,
        model_group_uid=metadata.model_group_uid,
        recommended_display_cielab_value=(
            dicom_lab_from_rgb(metadata.color) if metadata.color is not None else None
        ),
        recommended_presentation_opacity=metadata.opacity,
        series_description=metadata.series_description,
    )
    if carrier is None:
        arguments.update(
            study_instance_uid=study.study_instance_uid or hd.UID(),
            frame_of_reference_uid=study.frame_of_reference_uid or hd.UID(),
            patient_name=person_name(study.patient_name) if study.patient_name else None,
            patient_id=study.patient_id,
            patient_birth_date=study.patient_birth_date,
            patient_sex=study.patient_sex,
            accession_number=study.accession_number,
            study_id=study.study_id or "1",
            study_description=study.study_description,
            study_date=datetime.date.today(),
            study_time=datetime.datetime.now().time(),
        )
        # No source modality to choose a CID 7061 title from: name it in words.
        arguments["document_title"] = (
            metadata.document_title or metadata.content_description or "3D CAM model"
        )
    try:
        icon = model_icon(stl, notice, iod) if metadata.icon else None
        dataset = iod(
            stl,
            datasets,
            series_instance_uid=metadata.series_instance_uid or hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=metadata.instance_number,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL_NAME,
            software_versions=__version__,
            device_serial_number=DEVICE_SERIAL_NUMBER,
            check_values=check_values,
            other_sources=list(other_sources),
            predecessors=predecessors,
            icon=icon,
            deidentification_method=metadata.deidentification_method,
            notice=notice,
            referenced_documents=list(referenced_documents),
            **arguments,
        )
    except EncapsulatedSTLError as error:
        if path is not None and error.path is None:
            raise type(error)(error.reason, path) from None
        raise
    except (ValueError, TypeError) as error:
        raise EncapsulatedSTLError(str(error), path) from None
    if carrier is not None and not source_patient_id:
        dataset.PatientID = study.patient_id.strip()  # the user's, for sources that have none
    return dataset


def model_icon(stl, notice: Callable[[str], None] | None = None,
               iod: type[Encapsulated3DModel] = EncapsulatedSTL):
    """The Icon Image Sequence picture of binary STL bytes (or of the bytes ``iod``
    encapsulates: :func:`.mesh.render.icon_pixels`), or ``None`` for a file with no
    geometry, or where this machine cannot render or the triangles are no surface to
    draw (:class:`.mesh.render.CannotDraw`), ``notice`` told why: the object is whole
    without it (the sequence is optional)."""
    # The values are checked first (StlFormatError for a NaN): a damaged STL is refused
    # for what it is, never drawn, nor told as a picture it could not have.
    triangles = iod.document_triangles(stl)
    if triangles is None:
        return None
    try:
        return icon_pixels(triangles)
    except CannotDraw as error:
        if notice is not None:
            notice(f"the model is stored without an icon: {error.reason}")
        return None


def _check_copyable(dataset: Dataset, path=None) -> None:
    """Refuse an earlier model with an attribute pydicom cannot read cleanly: a new
    version copies its patient, study and references, and must not copy damage."""

    def first_damaged(items: Dataset, where: str) -> str | None:
        for tag in list(items.keys()):
            if tag == ENCAPSULATED_DOCUMENT_TAG:
                continue
            name = where + (pydicom.datadict.keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    element = items[tag]
                    items_of_sequence = list(element.value or []) if element.VR == "SQ" else []
                    if not items_of_sequence:
                        deepcopy(element)  # as the new version copies it: its value checked again
            except Exception as error:  # pydicom's conversion of a damaged value: any type, or a warning
                return f"{name} ({str(error).splitlines()[0][:100] if str(error) else type(error).__name__})"
            if pydicom.datadict.dictionary_has_tag(tag):
                expected = pydicom.datadict.dictionary_VR(tag)
                if element.VR not in expected.split(" or "):  # copied into an element of the right VR
                    return f"{name} (VR {element.VR} where the standard has {expected})"
                if element.VR != "SQ" and pydicom.datadict.dictionary_VM(tag) == "1" and element.VM > 1:
                    return f"{name} ({element.VM} values where the standard has 1)"
            for number, item in enumerate(items_of_sequence, start=1):
                found = first_damaged(item, f"{name} item {number} > ")
                if found:
                    return found
        return None

    damaged = first_damaged(dataset, "")
    if damaged:
        where = getattr(dataset, "filename", None)
        raise EncapsulatedSTLError(
            f"the earlier model's {damaged} cannot be read cleanly: a new version would copy it",
            where if isinstance(where, (str, os.PathLike)) else path)


def revise_stl(
    stl: bytes,
    earlier: Iterable[Dataset],
    purpose: str = "edited",
    metadata: ModelMetadata | None = None,
    new_study: NewStudy | None = None,
    *,
    path: str | os.PathLike | None = None,
    used_series_numbers: Iterable[int] = (),
    notice: Callable[[str], None] | None = None,
) -> EncapsulatedSTL:
    """A new version of earlier models: an object in their study and Frame of Reference
    that names them in Predecessor Documents Sequence (0040,A360).

    Supplement 205: "Updates to models are addressed by storing new instances, with
    reference back to earlier instances".  The new instance is in a new series (the
    series' equipment is this software's), references the source instances the
    earlier ones reference, and gives each earlier one the CID 7062 purpose
    ``edited`` (129010 "Edited Model") or ``component`` (129011 "Component Model").

    Parameters
    ----------
    stl:
        Binary STL bytes in the earlier models' Frame of Reference (LPS).
    earlier:
        The Encapsulated STL datasets revised, of one patient, study and Frame of
        Reference; the first gives patient, study and document title.
    metadata, new_study:
        As for :func:`encapsulate_stl` (``new_study.patient_id`` only for earlier
        models without a Patient ID).  See :func:`revision_metadata` for what to
        carry over.

    Raises
    ------
    EncapsulatedSTLError
        Unknown purpose, earlier models of different patients, studies or Frames of
        Reference, or one without a Study Instance or Frame of Reference UID.
    """
    code = codes.predecessor_purpose(purpose)
    earlier = list(earlier)
    if not earlier:
        raise EncapsulatedSTLError("no earlier model to revise", path)
    for dataset in earlier:
        _check_copyable(dataset, path)
        for keyword in ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID"):
            if not str(dataset.get(keyword, "") or "").strip():
                raise EncapsulatedSTLError(
                    f"an earlier model has no {pydicom.datadict.dictionary_description(keyword)}: "
                    "a new version could not name it", path)
    for keyword, what, whats in (("StudyInstanceUID", "study", "studies"),
                                 ("FrameOfReferenceUID", "Frame of Reference", "Frames of Reference"),
                                 ("PatientID", "patient", "patients")):
        values = {str(ds.get(keyword, "") or "").strip() for ds in earlier}
        if keyword != "PatientID" and "" in values:
            raise EncapsulatedSTLError(
                f"an earlier model has no {what} UID ({keyword}): a new version could not be placed "
                "where it was", path)
        if len(values) > 1:
            raise EncapsulatedSTLError(
                f"the earlier models belong to {len(values)} different {whats}; a new version stays in "
                f"its predecessors' {what}", path)
    return encapsulate_stl(stl, None, metadata, new_study, path=path, used_series_numbers=used_series_numbers,
                           notice=notice, predecessors=[(ds, code) for ds in earlier])


def save_dataset(
    dataset: Dataset, path: str | os.PathLike, force: bool = False, verify=None, inputs=()
) -> Path:
    """Write a DICOM dataset to ``path`` atomically (see :func:`write_atomically`).

    An Encapsulated Document is written by :func:`write_dataset_spliced` where it
    can be: straight from its buffer (a mapped file, often) in one write.
    ``verify`` and ``inputs`` (files it must never replace) are passed to
    :func:`write_atomically`.
    """

    return write_atomically(path, lambda stream: _write_dataset(stream, dataset), force, verify, inputs)


def _write_dataset(stream, dataset: Dataset) -> None:
    if not write_dataset_spliced(dataset, stream):
        write_file_format(dataset, stream)


def save_datasets(
    datasets_and_paths: Iterable[tuple[Dataset, str | os.PathLike]], force: bool = False, inputs=()
) -> list[Path]:
    """Write each dataset to its path (:func:`save_dataset`), all or none.

    When one cannot be written, the files this call created are removed again before
    the error is raised, so a run never leaves part of a series behind.  (A file that
    ``force`` replaced cannot be given back; it keeps the new object.)

    Returns the paths written, in order.
    """
    return write_all_atomically(((path, dataset) for dataset, path in datasets_and_paths), force, inputs,
                                _write_dataset)


def write_dataset_spliced(dataset: Dataset, stream) -> bool:
    """Write ``dataset`` as a DICOM file with its Encapsulated Document spliced in.

    The elements before (0042,0011) are written by pydicom, then the document's
    element header, the document itself straight from its buffer (never copied
    in memory, where pydicom would copy it into a buffer or write it in 8 kB
    pieces), its pad byte, and the elements after it, again by pydicom.  The
    bytes are exactly those of pydicom writing the whole dataset.

    Returns ``False``, having written nothing, where this does not apply: no
    document, pydicom 2 (no streamed values) or a transfer syntax other than
    Explicit VR Little Endian.
    """
    element = dataset.get(ENCAPSULATED_DOCUMENT_TAG)
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if element is None or not hasattr(element, "is_buffered") or syntax != ExplicitVRLittleEndian:
        return False
    value = element.value
    view = value.view if isinstance(value, DocumentReader) else memoryview(value).cast("B")
    head, tail = Dataset(), Dataset()
    for item in dataset:
        if item.tag < ENCAPSULATED_DOCUMENT_TAG:
            head.add(item)
        elif item.tag > ENCAPSULATED_DOCUMENT_TAG:
            tail.add(item)
    head.file_meta = meta
    head.preamble = dataset.preamble
    write_file_format(head, stream)
    padding = len(view) % 2
    stream.write(struct.pack("<HH2sHI", 0x0042, 0x0011, b"OB", 0, len(view) + padding))
    stream.write(view)
    if padding:
        stream.write(b"\x00")
    encoded = DicomFileLike(stream)
    encoded.is_little_endian, encoded.is_implicit_VR = True, False
    write_dataset(encoded, tail, parent_encoding=dataset.get("SpecificCharacterSet") or default_encoding)
    return True
