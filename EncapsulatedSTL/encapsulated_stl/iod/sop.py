"""The Encapsulated STL IOD (PS3.3 A.85.1, Supplement 205) as a highdicom SOP class."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from copy import deepcopy
from pathlib import Path

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import DA, DT, TM

from ..stl.format import parse_binary_stl
from . import codes
from .document import (
    _STREAMED_VALUES,
    ENCAPSULATED_DOCUMENT_TAG,
    ENCAPSULATED_STL_SOP_CLASS_UID,
    encapsulated_stl_bytes,
    set_streamed_document,
)
from .model import common_instance_references, predecessor_references

MIME_TYPE = "model/stl"
MODALITY = "M3D"

_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}


#: The largest icon written, rows and columns: readers that show icons must show 64 x 64
#: and may ignore larger ones (PS3.3 F.7); 128 x 128 is the size of the XA profile's icons.
LARGEST_ICON = 128


def _icon_item(pixels: np.ndarray) -> Dataset:
    """The Icon Image Sequence item of a monochrome 8-bit picture: the Image Pixel
    Macro as PS3.3 C.7.6.1.1.6 restricts it (one sample, MONOCHROME2, 8 bits)."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.dtype != np.uint8 or not (
            0 < pixels.shape[0] <= LARGEST_ICON and 0 < pixels.shape[1] <= LARGEST_ICON):
        raise ValueError(f'Argument "icon" must be a uint8 picture of at most {LARGEST_ICON} x '
                         f'{LARGEST_ICON} pixels, not {pixels.dtype} {pixels.shape}.')
    item = Dataset()
    item.SamplesPerPixel = 1
    item.PhotometricInterpretation = "MONOCHROME2"
    item.Rows, item.Columns = (int(n) for n in pixels.shape)
    item.BitsAllocated = 8
    item.BitsStored = 8
    item.HighBit = 7
    item.PixelRepresentation = 0
    data = np.ascontiguousarray(pixels).tobytes()
    item.add_new(0x7FE00010, "OB", data + b"\x00" * (len(data) % 2))
    return item


def srgb_icc_profile() -> bytes:
    """The sRGB ICC profile highdicom ships (with every release from 0.22 on)."""
    return (Path(hd.__file__).parent / "_icc_profiles" / "sRGB_v4_ICC_preference.icc").read_bytes()


def _yes_no(value: bool | None, keyword: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise TypeError(f'Argument for "{keyword}" must be True, False or None.')
    return "YES" if value else "NO"


def _has_non_ascii(dataset: Dataset) -> bool:
    for element in dataset.iterall():
        if element.VR not in _TEXT_VRS or element.value is None:
            continue
        values = element.value if element.VM > 1 else [element.value]
        if any(not str(v).isascii() for v in values):
            return True
    return False


def _header_copy(dataset: Dataset) -> Dataset:
    """A deep copy of everything but the Encapsulated Document (a model's own bytes, maybe
    a mapped file: never copied)."""
    header = Dataset()
    for element in dataset:
        if element.tag != ENCAPSULATED_DOCUMENT_TAG:
            header.add(deepcopy(element))
    return header


def _referenced_by(*objects: Dataset) -> list[Dataset]:
    """The source instances objects list in Common Instance Reference (their own earlier
    versions left out), as headers with the four identifying UIDs, once each, to
    reference them again."""
    found: dict[str, Dataset] = {}
    earlier_versions = {p.sop_instance_uid for dataset in objects for p in predecessor_references(dataset)}
    for dataset in objects:
        for study_uid, series_uid, instances in common_instance_references(dataset):
            for sop_class_uid, uid in instances:
                if study_uid and series_uid and sop_class_uid and uid not in earlier_versions:
                    header = Dataset()  # nor an incompletely identified one
                    header.StudyInstanceUID, header.SeriesInstanceUID = study_uid, series_uid
                    header.SOPClassUID, header.SOPInstanceUID = sop_class_uid, uid
                    found.setdefault(uid, header)
    return list(found.values())


class Encapsulated3DModel(hd.SOPClass):
    """SOP instance of one of the Encapsulated 3D Manufacturing Model IODs (PS3.3
    A.85): a model file stored unchanged in Encapsulated Document (0042,0011),
    padded to even length, with its true length in Encapsulated Document Length
    (0042,0015).  Given source images, the object joins their study and Frame of
    Reference and references every one of them.

    The IODs differ in their SOP Class, MIME type, whether they have a Frame of
    Reference (the MTL IOD has none: a material library has no coordinates) and
    how their bytes are checked; each subclass says so in its class attributes
    and :meth:`_check_document`.
    """

    sop_class_uid_of_iod = ENCAPSULATED_STL_SOP_CLASS_UID
    mime_type = MIME_TYPE
    has_frame_of_reference = True
    #: Colours the document holds (an OBJ's materials) are sRGB, said by the ICC Profile Module.
    has_colors = False

    def _check_document(self, document, check_values: bool, referenced_uris: set[str]) -> None:
        """Raise for bytes that are not a model of this IOD's format, or that name a
        file (by relative URI) no referenced object stands for."""
        raise NotImplementedError

    @staticmethod
    def document_triangles(document) -> np.ndarray | None:
        """The ``(n, 3, 3)`` triangles of the model's bytes, in its own units, to draw its
        icon; ``None`` for a document with no geometry."""
        return None

    def __init__(
        self,
        document: bytes,
        source_images: Sequence[Dataset] | None,
        series_instance_uid: str,
        series_number: int,
        sop_instance_uid: str,
        instance_number: int,
        manufacturer: str,
        manufacturer_model_name: str,
        software_versions: str,
        device_serial_number: str,
        *,
        measurement_units: str = "mm",
        document_title: str | None = None,
        document_title_code: CodedConcept | None = None,
        content_description: str | None = None,
        model_usage: CodedConcept | None = None,
        image_laterality: str | None = None,
        burned_in_annotation: bool = False,
        recognizable_visual_features: bool | None = None,
        model_modification: bool | None = None,
        model_mirroring: bool | None = None,
        algorithm_name: str | None = None,
        algorithm_version: str | None = None,
        algorithm_parameters: dict[str, str] | None = None,
        algorithm_family: codes.Code | None = codes.ALGORITHM_FAMILY_MANUAL,
        model_group_uid: str | None = None,
        recommended_display_cielab_value: tuple[int, int, int] | None = None,
        recommended_presentation_opacity: float | None = None,
        content_datetime: datetime.datetime | None = None,
        acquisition_datetime: datetime.datetime | None = None,
        series_description: str | None = None,
        institution_name: str | None = None,
        study_instance_uid: str | None = None,
        frame_of_reference_uid: str | None = None,
        patient_id: str | None = None,
        patient_name: str | None = None,
        patient_birth_date: str | None = None,
        patient_sex: str | None = None,
        accession_number: str | None = None,
        study_id: str | None = None,
        study_date: str | datetime.date | None = None,
        study_time: str | datetime.time | None = None,
        study_description: str | None = None,
        referring_physician_name: str | None = None,
        transfer_syntax_uid: str = ExplicitVRLittleEndian,
        check_values: bool = True,
        other_sources: Sequence[tuple[Dataset, codes.Code]] = (),
        deidentification_method: str | None = None,
        notice: Callable[[str], None] | None = None,
        predecessors: Sequence[tuple[Dataset, codes.Code]] = (),
        icon: np.ndarray | None = None,
        referenced_documents: Sequence[tuple[Dataset, str]] = (),
    ):
        """
        Parameters
        ----------
        document: bytes | mmap.mmap | memoryview
            The model file's bytes (any buffer; a memory-mapped file is streamed
            to the output without a copy), coordinates in ``measurement_units`` in the
            patient coordinate system (LPS) of the Frame of Reference.
        source_images: Sequence[pydicom.dataset.Dataset] | None
            Headers of the images the model was derived from (one Frame of
            Reference).  Patient and study are copied from the first; every
            instance is listed once in Source Instance Sequence (frame headers of
            one multi-frame image count as its instance).  ``None`` for a model with no
            DICOM source: then ``study_instance_uid``, ``frame_of_reference_uid``
            and the patient arguments describe a new study.
        measurement_units: str
            UCUM unit of the STL coordinates (CID 7063): ``m``, ``cm``, ``mm`` or ``um``.
        document_title, document_title_code:
            Document Title and its code (CID 7061).  By default the title is
            chosen from the source images' modality.
        model_usage: highdicom.sr.CodedConcept | None
            Intended use (CID 7064), see :data:`codes.MODEL_USAGES`.
        image_laterality: str | None
            Intended placement of the object: ``R``, ``L``, ``U`` or ``B``.
        burned_in_annotation: bool
            True when identity is embossed or engraved on the model.
        recommended_display_cielab_value: tuple[int, int, int] | None
            Display colour as DICOM CIELab integers.
        recommended_presentation_opacity: float | None
            Display opacity in 0..1.
        algorithm_name, algorithm_version, algorithm_parameters, algorithm_family:
            Derivation Algorithm Sequence: the software that made the model, and
            how (family from CID 7162); none without a name (a model made elsewhere).
        other_sources:
            Instances other than images the model was made from, each with its
            purpose of reference (a DICOM SEG or RTSTRUCT: see :mod:`.codes`); listed
            after the images in Source Instance Sequence and Common Instance Reference.
        predecessors:
            Earlier models this one is a new version of (Supplement 205: "updates to
            models are addressed by storing new instances, with reference back to
            earlier instances"), each with its CID 7062 purpose, listed in
            Predecessor Documents Sequence.  Without ``source_images`` the first
            gives patient, study, Frame of Reference and document title, and the
            source instances they all reference are referenced again.
        deidentification_method:
            De-identification Method for a source that says Patient Identity
            Removed YES but names none (invalid, Type 1C).  Without it the claim is
            not copied, and ``notice`` is told: nothing is invented.
        icon: numpy.ndarray | None
            A ``(rows, columns)`` uint8 picture of the model, at most 128 x 128
            (:func:`.mesh.render.icon_pixels` renders one), stored as Icon Image
            Sequence (0088,0200) in MONOCHROME2 (PS3.3 C.7.6.1.1.6 and F.7).
        referenced_documents:
            Objects the encapsulated file names by a relative URI (the MTL
            object of an OBJ's ``mtllib``), each with that URI: listed in
            Referenced Instance Sequence (0008,114A) with Relative URI Reference
            Within Encapsulated Document (0068,7005) (PS3.3 C.24.2), and in
            Common Instance Reference.
        check_values: bool
            ``False`` skips the NaN/Inf scan of the STL (its size and count are
            still checked) for a caller that runs the scan alongside writing,
            with :class:`stl.ValueCheck`, and waits for it before publishing.
        """
        referenced_documents = list(referenced_documents)
        # the bytes are stored exactly as given
        self._check_document(document, check_values, {uri for _dataset, uri in referenced_documents})
        # one entry per instance: the frames of a multi-frame image share theirs
        instances: dict[str, Dataset] = {}
        for ds in source_images or []:
            instances.setdefault(str(ds.get("SOPInstanceUID", id(ds))), ds)
        source_images = list(instances.values())
        predecessors = list(predecessors)
        earlier = predecessors[0][0] if predecessors and not source_images else None
        if earlier is not None:
            frame_of_reference_uid = str(earlier.FrameOfReferenceUID)
            study_instance_uid = str(earlier.StudyInstanceUID)
        if source_images:
            frames = {str(ds.get("FrameOfReferenceUID", "")) for ds in source_images}
            frames.discard("")
            if len(frames) > 1:
                raise ValueError(
                    "Source images span several Frames of Reference "
                    f"({', '.join(sorted(frames))}); a model lives in one."
                )
            frame_of_reference_uid = frames.pop() if frames else frame_of_reference_uid
            study_instance_uid = str(source_images[0].StudyInstanceUID)
        if study_instance_uid is None:
            raise TypeError('Argument "study_instance_uid" is required without source images.')
        if frame_of_reference_uid is None and self.has_frame_of_reference:
            raise TypeError('Argument "frame_of_reference_uid" is required without source images.')
        codes.units_key(measurement_units)  # raises for units outside CID 7063
        if image_laterality is not None and image_laterality not in codes.LATERALITIES:
            raise ValueError(
                f'Argument "image_laterality" must be one of {", ".join(codes.LATERALITIES)}.'
            )
        if recommended_presentation_opacity is not None and not (
            0.0 <= recommended_presentation_opacity <= 1.0
        ):
            raise ValueError('Argument "recommended_presentation_opacity" must lie in 0..1.')

        now = datetime.datetime.now()
        content_datetime = content_datetime or now
        super().__init__(
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
            series_number=series_number,
            sop_instance_uid=sop_instance_uid,
            sop_class_uid=self.sop_class_uid_of_iod,
            instance_number=instance_number,
            modality=MODALITY,
            manufacturer=manufacturer,
            manufacturer_model_name=manufacturer_model_name,
            software_versions=software_versions,
            device_serial_number=device_serial_number,
            institution_name=institution_name,
            transfer_syntax_uid=transfer_syntax_uid,
            patient_id=patient_id,
            patient_name=patient_name,
            patient_birth_date=patient_birth_date,
            patient_sex=patient_sex,
            accession_number=accession_number,
            study_id=study_id,
            study_date=study_date,
            study_time=study_time,
            referring_physician_name=referring_physician_name,
            series_description=series_description,
        )
        # Set here, not passed to highdicom, whose SOPClass takes content_date and
        # content_time only from 0.27 (0.22, the last for pydicom 2, stamps "now").
        self.ContentDate = DA(content_datetime.date())
        self.ContentTime = TM(content_datetime.time())
        if source_images:
            # A copy: highdicom adds the source's element objects themselves, and
            # the caller's datasets must never change.
            self.copy_patient_and_study_information(deepcopy(source_images[0]))
            self._keep_deidentification_valid(deidentification_method, notice)
        elif earlier is not None:
            self.copy_patient_and_study_information(_header_copy(earlier))
            self._keep_deidentification_valid(deidentification_method, notice)
        elif study_description:
            self.StudyDescription = study_description

        if self.has_frame_of_reference:  # the model's coordinates are this frame's LPS axes
            self.FrameOfReferenceUID = frame_of_reference_uid
            placed_by = source_images[0] if source_images else earlier
            self.PositionReferenceIndicator = (
                placed_by.get("PositionReferenceIndicator", None) if placed_by is not None else None
            )

        # Encapsulated Document
        self.AcquisitionDateTime = DT(acquisition_datetime or content_datetime)
        self.BurnedInAnnotation = _yes_no(burned_in_annotation, "burned_in_annotation")
        if recognizable_visual_features is not None:
            self.RecognizableVisualFeatures = _yes_no(
                recognizable_visual_features, "recognizable_visual_features"
            )
        if image_laterality is not None:
            self.ImageLaterality = image_laterality
        if document_title_code is None and document_title is None and earlier is not None:
            document_title = str(earlier.get("DocumentTitle", "") or "") or None
            titles = earlier.get("ConceptNameCodeSequence") or []
            document_title_code = deepcopy(titles[0]) if len(titles) == 1 else None
        if document_title_code is None and document_title is None:
            modalities = {str(ds.get("Modality", "")) for ds in source_images}
            document_title_code = codes.document_title_code(modalities)
            if document_title_code is None and source_images:
                document_title = codes.document_title_text(modalities)
        self.DocumentTitle = document_title or (
            document_title_code.meaning if document_title_code is not None else None
        )
        self.ConceptNameCodeSequence = (
            [document_title_code] if document_title_code is not None else []
        )
        self.MIMETypeOfEncapsulatedDocument = self.mime_type
        self.EncapsulatedDocumentLength = len(document)
        if len(document) % 2:
            self.EncapsulatedDocument = bytes(document) + b"\x00"
        elif isinstance(document, bytes) or not _STREAMED_VALUES:
            self.EncapsulatedDocument = bytes(document)
        else:
            set_streamed_document(self, document)
        if referenced_documents:
            self.ReferencedInstanceSequence = [
                self._uri_item(ds, uri) for ds, uri in referenced_documents
            ]
        sources = [(ds, codes.SOURCE_IMAGE_PURPOSE) for ds in source_images] + list(other_sources)
        if sources:
            self.SourceInstanceSequence = [self._source_item(ds, purpose) for ds, purpose in sources]
        referenced = [ds for ds, _purpose in sources] + [ds for ds, _uri in referenced_documents]
        if predecessors:
            if earlier is not None:  # the sources of the earlier versions, referenced again
                self._reference_sources_of([ds for ds, _purpose in predecessors])
                referenced += _referenced_by(*(ds for ds, _purpose in predecessors))
            self.PredecessorDocumentsSequence = self._hierarchical_references(predecessors)
            referenced += [ds for ds, _purpose in predecessors]
        if referenced:
            self._add_common_instance_reference(referenced)

        # Manufacturing 3D Model
        self.MeasurementUnitsCodeSequence = [codes.units_code(measurement_units)]
        if model_modification is not None:
            self.ModelModification = _yes_no(model_modification, "model_modification")
        if model_mirroring is not None:
            self.ModelMirroring = _yes_no(model_mirroring, "model_mirroring")
        if model_usage is not None:
            self.ModelUsageCodeSequence = [model_usage]
        if content_description:
            self.ContentDescription = content_description
        if icon is not None:
            self.IconImageSequence = [_icon_item(icon)]
        if self.has_colors:  # ICC Profile Module (PS3.3 C.11.15)
            self.ICCProfile = srgb_icc_profile()
            self.ColorSpace = "SRGB"
        if model_group_uid is not None:
            self.ModelGroupUID = model_group_uid
        if recommended_display_cielab_value is not None:
            self.RecommendedDisplayCIELabValue = [int(v) for v in recommended_display_cielab_value]
        if recommended_presentation_opacity is not None:
            self.RecommendedPresentationOpacity = float(recommended_presentation_opacity)
        if algorithm_name is not None and algorithm_family is not None:
            self.DerivationAlgorithmSequence = hd.AlgorithmIdentificationSequence(
                name=algorithm_name,
                family=codes.coded(algorithm_family),
                version=algorithm_version or software_versions,
                source=manufacturer,
                parameters=algorithm_parameters,
            )

        if _has_non_ascii(self):
            self.SpecificCharacterSet = "ISO_IR 192"
        elif "SpecificCharacterSet" in self:
            del self.SpecificCharacterSet

    def _keep_deidentification_valid(self, method: str | None, notice) -> None:
        """Keep a copied "identity removed" claim valid without inventing anything.

        Some de-identified series say Patient Identity Removed YES but leave
        De-identification Method empty, which is invalid (Type 1C).  The method the
        caller states is written; without one the claim (Type 3) is not repeated,
        and ``notice`` is told why.
        """
        if self.get("PatientIdentityRemoved") != "YES":
            return
        if self.get("DeidentificationMethod") or self.get("DeidentificationMethodCodeSequence"):
            return
        if method:
            self.DeidentificationMethod = method
            return
        del self.PatientIdentityRemoved
        if "DeidentificationMethod" in self:
            del self.DeidentificationMethod
        if notice is not None:
            notice("the source images say Patient Identity Removed YES but name no De-identification "
                   "Method, so the model does not repeat the claim; state the method with "
                   "--deidentification-method to keep it")

    @staticmethod
    def _source_item(dataset: Dataset, purpose: codes.Code) -> Dataset:
        item = Dataset()
        item.ReferencedSOPClassUID = dataset.SOPClassUID
        item.ReferencedSOPInstanceUID = dataset.SOPInstanceUID
        item.PurposeOfReferenceCodeSequence = [codes.coded(purpose)]
        return item

    def _add_common_instance_reference(self, source_images: Sequence[Dataset]) -> None:
        """Common Instance Reference module: every source instance by study and series."""
        studies: dict[str, dict[str, list[Dataset]]] = {}
        for ds in source_images:
            series = studies.setdefault(str(ds.StudyInstanceUID), {})
            series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)

        def series_items(by_series):
            items = []
            for series_uid, datasets in by_series.items():
                series_item = Dataset()
                series_item.SeriesInstanceUID = series_uid
                series_item.ReferencedInstanceSequence = [
                    self._instance_item(ds) for ds in datasets
                ]
                items.append(series_item)
            return items

        own = studies.pop(str(self.StudyInstanceUID), None)
        if own:
            self.ReferencedSeriesSequence = series_items(own)
        if studies:
            other = []
            for study_uid, by_series in studies.items():
                study_item = Dataset()
                study_item.StudyInstanceUID = study_uid
                study_item.ReferencedSeriesSequence = series_items(by_series)
                other.append(study_item)
            self.StudiesContainingOtherReferencedInstancesSequence = other

    def _reference_sources_of(self, earlier: Sequence[Dataset]) -> None:
        """Source Instance Sequence: every item of the earlier versions', once."""
        items: dict[str, Dataset] = {}
        for dataset in earlier:
            for item in dataset.get("SourceInstanceSequence") or []:
                items.setdefault(str(item.get("ReferencedSOPInstanceUID", "")), deepcopy(item))
        items.pop("", None)
        if items:
            self.SourceInstanceSequence = list(items.values())

    @staticmethod
    def _hierarchical_references(references: Sequence[tuple[Dataset, codes.Code]]) -> list[Dataset]:
        """Items of the Hierarchical SOP Instance Reference Macro (PS3.3 Table C.17-3):
        by study, then series, each instance with its purpose of reference."""
        studies: dict[str, dict[str, list[Dataset]]] = {}
        for dataset, purpose in references:
            item = Encapsulated3DModel._instance_item(dataset)
            item.PurposeOfReferenceCodeSequence = [codes.coded(purpose)]
            by_series = studies.setdefault(str(dataset.StudyInstanceUID), {})
            by_series.setdefault(str(dataset.SeriesInstanceUID), []).append(item)
        found = []
        for study_uid, by_series in studies.items():
            study = Dataset()
            study.StudyInstanceUID = study_uid
            study.ReferencedSeriesSequence = []
            for series_uid, items in by_series.items():
                series = Dataset()
                series.SeriesInstanceUID = series_uid
                series.ReferencedSOPSequence = items
                study.ReferencedSeriesSequence.append(series)
            found.append(study)
        return found

    @classmethod
    def _uri_item(cls, dataset: Dataset, uri: str) -> Dataset:
        item = cls._instance_item(dataset)
        item.RelativeURIReferenceWithinEncapsulatedDocument = uri
        return item

    @staticmethod
    def _instance_item(dataset: Dataset) -> Dataset:
        item = Dataset()
        item.ReferencedSOPClassUID = dataset.SOPClassUID
        item.ReferencedSOPInstanceUID = dataset.SOPInstanceUID
        return item

    @classmethod
    def from_dataset(cls, dataset: Dataset, copy: bool = True) -> Encapsulated3DModel:
        """Construct an object from an existing dataset of this IOD.

        Raises
        ------
        ValueError
            If the dataset is not an instance of this IOD.
        """
        if not isinstance(dataset, Dataset):
            raise TypeError("Dataset must be of type pydicom.dataset.Dataset.")
        if str(dataset.get("SOPClassUID", "")) != cls.sop_class_uid_of_iod:
            raise ValueError(f"Dataset is not an Encapsulated {cls.__name__[len('Encapsulated'):]} "
                             f"instance (SOP Class UID {cls.sop_class_uid_of_iod}).")
        instance = deepcopy(dataset) if copy else dataset
        instance.__class__ = cls
        return instance


class EncapsulatedSTL(Encapsulated3DModel):
    """SOP instance of the Encapsulated STL IOD (PS3.3 A.85.1): a binary STL byte
    stream; see :class:`Encapsulated3DModel` for the arguments, ``stl`` first."""

    def _check_document(self, document, check_values: bool, referenced_uris: set[str]) -> None:
        parse_binary_stl(document, check_values=check_values)

    @staticmethod
    def document_triangles(document) -> np.ndarray:
        return parse_binary_stl(document).triangles

    @property
    def stl(self) -> bytes:
        """The encapsulated binary STL, without the padding byte."""
        return encapsulated_stl_bytes(self)
