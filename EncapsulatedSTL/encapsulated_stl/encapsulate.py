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
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
from pydicom.charset import default_encoding
from pydicom.dataset import Dataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian

from . import __version__, codes
from .color import dicom_lab_from_rgb
from .errors import EncapsulatedSTLError
from .file_format import write_file_format
from .files import write_atomically
from .document import ENCAPSULATED_DOCUMENT_TAG, DocumentReader
from .sop import EncapsulatedSTL
from .source_series import SourceSeries

#: Equipment written into every object: this software, not the scanner.
MANUFACTURER = "encapsulated-stl project"
MODEL_NAME = "encapsulated-stl"
DEVICE_SERIAL_NUMBER = "ESTL-0001"
DEFAULT_SERIES_NUMBER = 3000


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

    def replace(self, **changes) -> ModelMetadata:
        return dataclasses.replace(self, **changes)


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


def encapsulate_stl(
    stl: bytes,
    source: SourceSeries | list[Dataset] | None = None,
    metadata: ModelMetadata | None = None,
    new_study: NewStudy | None = None,
    *,
    algorithm_parameters: dict[str, str] | None = None,
    algorithm_family=codes.ALGORITHM_FAMILY_MANUAL,
    path: str | os.PathLike | None = None,
    check_values: bool = True,
) -> EncapsulatedSTL:
    """Wrap binary STL bytes as an Encapsulated STL object.

    Parameters
    ----------
    stl:
        Binary STL bytes (see :func:`stl.binary_stl_for_encapsulation` for ASCII).
    source:
        The series the model was made from (headers only), or ``None``.
    metadata:
        Units, description, usage and the rest; defaults when ``None``.
    new_study:
        Patient and study for a model without a source; ignored with a source.
    algorithm_parameters:
        Parameters written into Derivation Algorithm Sequence (e.g. threshold).
    path:
        The STL's file name, used in error messages only.
    check_values:
        ``False`` when the caller runs the STL's NaN/Inf scan itself, alongside
        writing (:class:`stl.ValueCheck`, waited for through ``save_dataset``'s
        ``verify``).

    Raises
    ------
    EncapsulatedSTLError
        For invalid STL bytes or metadata (unknown units, usage, laterality).
    """
    metadata = metadata or ModelMetadata()
    datasets = list(source.datasets if isinstance(source, SourceSeries) else source or [])
    study = new_study or NewStudy()
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
        algorithm_name=MODEL_NAME,
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
    if not datasets:
        arguments.update(
            study_instance_uid=study.study_instance_uid or hd.UID(),
            frame_of_reference_uid=study.frame_of_reference_uid or hd.UID(),
            patient_name=study.patient_name,
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
        return EncapsulatedSTL(
            stl,
            datasets,
            series_instance_uid=metadata.series_instance_uid or hd.UID(),
            series_number=metadata.series_number or DEFAULT_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=metadata.instance_number,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL_NAME,
            software_versions=__version__,
            device_serial_number=DEVICE_SERIAL_NUMBER,
            check_values=check_values,
            **arguments,
        )
    except EncapsulatedSTLError as error:
        if path is not None and error.path is None:
            raise type(error)(error.reason, path) from None
        raise
    except (ValueError, TypeError) as error:
        raise EncapsulatedSTLError(str(error), path) from None


def save_dataset(
    dataset: Dataset, path: str | os.PathLike, force: bool = False, verify=None, inputs=()
) -> Path:
    """Write a DICOM dataset to ``path`` atomically (see :func:`write_atomically`).

    An Encapsulated Document is written by :func:`write_dataset_spliced` where it
    can be: straight from its buffer (a mapped file, often) in one write.
    ``verify`` and ``inputs`` (files it must never replace) are passed to
    :func:`write_atomically`.
    """

    def write(stream):
        if not write_dataset_spliced(dataset, stream):
            write_file_format(dataset, stream)

    return write_atomically(path, write, force, verify, inputs)


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
