"""Encapsulated OBJ and MTL objects laid out as other producers write them, built with pydicom only.

None of these producers can run here (dcm4che's Java tools and Orthanc >= 1.12.1 are not
installed, Debian 12's DCMTK 3.6.7 has no dcmencap), so each object is rebuilt attribute by
attribute from the producer's source, read with the project's search tools.  Every builder's
docstring names the repository, commit (or release tag), file and lines it follows.  The facts
are carried over; no code is: the producers' licences differ from this project's.

Each builder returns a :class:`pydicom.dataset.FileDataset` with file meta that writes under
pydicom 2.4 and 3.  :func:`write_file` writes complete PS3.10 file meta (what the Java and C++
tools write); :func:`write_dcm4che_layout` and :func:`write_sonador_layout` reproduce the two
layouts that ordinary pydicom writing would not: dcm4che appends the document after every other
attribute, (0042,0012) included, and Sonador's pydicom writing leaves the Transfer Syntax UID
out of the file meta.

Sources read (2026-12-02):

* dcm4che/dcm4che@5d3b07cb97891618c10ed38b5e107f245f16617e (5.34.3-11): pdf2dcm
* jodogne/OrthancMirror@2d55a19c903aa535b738a3fc04485af656f26164 (Orthanc core, after 1.12.1;
  the OBJ/MTL cases came in bc282be3, 2023-07-02, "NEWS: /tools/create-dicom can now be used to
  create Encapsulated 3D Manufacturing Model IODs (MTL, OBJ, or STL)")
* DCMTK/dcmtk tag DCMTK-3.7.0 (ccfd10b84ff3c9a40b7b331698aedf06d421fc43): dcmencap
* oaktree-slc-tech/sonador-io@fe22354ffa80e8bc92d2abe1bddb22c37ab961a1 (the GLB writer) and
  oaktree-slc-tech/sonador-viewer@5876897ab565647ec9c32340f04074204b8c20f6 (its OHIF extension)
"""

from __future__ import annotations

import datetime
import io
import os
import struct
import uuid
from typing import Optional, Sequence, Tuple

import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

ENCAPSULATED_OBJ = "1.2.840.10008.5.1.4.1.1.104.4"
ENCAPSULATED_MTL = "1.2.840.10008.5.1.4.1.1.104.5"

_PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])

DCM4CHE = "dcm4che/dcm4che@5d3b07cb"
ORTHANC = "jodogne/OrthancMirror@2d55a19c"
DCMTK = "DCMTK/dcmtk@DCMTK-3.7.0"
SONADOR_IO = "oaktree-slc-tech/sonador-io@fe22354f"
SONADOR_VIEWER = "oaktree-slc-tech/sonador-viewer@5876897a"


# -- shared helpers ----------------------------------------------------------------------------

def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _padded(document: bytes) -> bytes:
    """The document as all four producers store it: an odd length made even with one 0x00."""
    return bytes(document) + (b"\0" if len(document) % 2 else b"")


def _file_dataset(sop_class: str, sop_instance: str, *, transfer_syntax: Optional[str] = ExplicitVRLittleEndian,
                  implicit_vr: bool = False, implementation_uid: str = PYDICOM_IMPLEMENTATION_UID) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    if transfer_syntax is not None:
        meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = implementation_uid
    # The encoding goes to the constructor, not to the setters pydicom 3 deprecates.
    ds = FileDataset(io.BytesIO(), Dataset(), file_meta=meta, preamble=b"\0" * 128,
                     is_implicit_VR=implicit_vr, is_little_endian=True)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    return ds


def write_file(ds: Dataset, target) -> None:
    """Write ``ds`` as a PS3.10 file with complete file meta, under pydicom 2.4 or 3."""
    if _PYDICOM_MAJOR >= 3:
        ds.save_as(target, enforce_file_format=True)
    else:
        ds.save_as(target, write_like_original=False)


def _open(target):
    if isinstance(target, (str, os.PathLike)):
        return open(target, "wb"), True
    return target, False


def write_dcm4che_layout(ds: Dataset, target) -> None:
    """Write ``ds`` as pdf2dcm lays its files out: Encapsulated Document (0042,0011) last.

    Pdf2Dcm.java:292-295 writes the whole dataset, (0042,0012) MIME type and (0042,0015)
    length included, with ``DicomOutputStream.writeDataset`` and only then appends the
    document with ``writeAttribute(Tag.EncapsulatedDocument, VR.OB, bytes)``; its OB value
    is padded with one 0x00 (DicomOutputStream.java:198-204, VR.java:119 OB's padding 0).
    The tags are therefore not in ascending order at the end of the file.
    """
    head = Dataset()
    head.file_meta = ds.file_meta
    for element in ds:
        if element.tag != 0x00420011:
            head.add(element)
    if _PYDICOM_MAJOR < 3:
        head.is_little_endian, head.is_implicit_VR = True, False
    buffer = io.BytesIO()
    write_file(head, buffer)
    tail = DicomBytesIO()
    tail.is_little_endian, tail.is_implicit_VR = True, False
    write_data_element(tail, ds[0x00420011])
    stream, close = _open(target)
    try:
        stream.write(buffer.getvalue() + tail.getvalue())
    finally:
        if close:
            stream.close()


def write_sonador_layout(ds: FileDataset, target) -> None:
    """Write ``ds`` as Sonador's datasets are written: ``save_as`` with its defaults.

    sonador-io returns a FileDataset whose file meta holds only the Media Storage SOP Class
    and Instance UIDs and the Implementation Class UID (imaging/helpers/conversion.py:132-166);
    a default ``save_as`` writes that meta as it is, with no (0002,0010) Transfer Syntax UID,
    no (0002,0000) group length and no (0002,0001) version, and the dataset in Implicit VR
    Little Endian (conversion.py:169-188, ``dcm_implicit_vr=True``).
    """
    if _PYDICOM_MAJOR >= 3:
        ds.save_as(target, implicit_vr=True, little_endian=True)
    else:
        ds.save_as(target)


# -- 1. dcm4che pdf2dcm ------------------------------------------------------------------------

def _dcm4che(document: bytes, sop_class: str, mime: str, *, patient_id: str, patient_name: str,
             study_instance_uid: Optional[str], series_instance_uid: Optional[str],
             sop_instance_uid: Optional[str], frame_of_reference_uid: Optional[str],
             encapsulated_doc_length: bool) -> FileDataset:
    ds = _file_dataset(sop_class, sop_instance_uid or generate_uid())
    # The template, attribute by attribute, in its order (encapsulatedOBJMetadata.xml /
    # encapsulatedMTLMetadata.xml lines 3-57); empty elements are written zero-length.
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.SeriesNumber = "1"
    ds.Modality = "M3D"
    ds.Manufacturer = "UNKNOWN"
    ds.ManufacturerModelName = "UNKNOWN"
    ds.DeviceSerialNumber = "UNKNOWN"
    ds.SoftwareVersions = "UNKNOWN"
    ds.InstanceNumber = "1"
    ds.MIMETypeOfEncapsulatedDocument = mime
    ds.DocumentTitle = ""
    ds.PositionReferenceIndicator = ""  # in the MTL template too, with no Frame of Reference UID
    ds.ConceptNameCodeSequence = []
    ds.MeasurementUnitsCodeSequence = [_code_item("mm", "UCUM", "mm")]  # 'm' before 74ce451a (2020-07)
    ds.BurnedInAnnotation = "YES"
    # Pdf2Dcm.java:299-309: the three instance-level UIDs when missing, and the Type 2
    # Content Date, Content Time and Acquisition DateTime, empty.
    ds.StudyInstanceUID = study_instance_uid or generate_uid()
    ds.SeriesInstanceUID = series_instance_uid or generate_uid()
    ds.ContentDate = ""
    ds.ContentTime = ""
    ds.AcquisitionDateTime = ""
    # Pdf2Dcm.java:222-225: a Frame of Reference UID for STL and OBJ only, never for MTL.
    if sop_class == ENCAPSULATED_OBJ:
        ds.FrameOfReferenceUID = frame_of_reference_uid or generate_uid()
    # Pdf2Dcm.java:226-227: (0042,0015) only with --encapsulatedDocLength, the file's length.
    if encapsulated_doc_length:
        ds.EncapsulatedDocumentLength = len(document)
    ds.EncapsulatedDocument = _padded(document)
    return ds


def dcm4che_obj(obj_bytes: bytes, *, patient_id: str = "", patient_name: str = "",
                study_instance_uid: Optional[str] = None, series_instance_uid: Optional[str] = None,
                sop_instance_uid: Optional[str] = None, frame_of_reference_uid: Optional[str] = None,
                encapsulated_doc_length: bool = False) -> FileDataset:
    """An Encapsulated OBJ as dcm4che's ``pdf2dcm [-s attr=value] model.obj out.dcm`` writes it.

    Read at dcm4che/dcm4che@5d3b07cb97891618c10ed38b5e107f245f16617e (5.34.3-11):

    * dcm4che-tool/dcm4che-tool-pdf2dcm/src/main/java/org/dcm4che3/tool/pdf2dcm/Pdf2Dcm.java
      - 137-145, 165-183: a file is OBJ by its probed content type or extension ("obj",
        "model/obj") and takes its attributes from ``encapsulatedOBJMetadata.xml``;
      - 209-217, 299-309: the -s/-f attributes, then Study, Series and SOP Instance UIDs
        generated when missing, Content Date/Time and Acquisition DateTime added empty;
      - 219-229: Frame of Reference UID generated for STL and OBJ when not given;
        Encapsulated Document Length (0042,0015) only with ``--encapsulatedDocLength``;
      - 292-295: Explicit VR Little Endian file meta, the dataset, then (0042,0011) appended
        last (see :func:`write_dcm4che_layout`).
    * dcm4che-assembly/src/etc/pdf2dcm/encapsulatedOBJMetadata.xml 3-57: Modality M3D;
      Manufacturer, Manufacturer's Model Name, Device Serial Number and Software Versions all
      "UNKNOWN"; Series and Instance Number 1; MIME type "model/obj"; SOP Class
      1.2.840.10008.5.1.4.1.1.104.4; Measurement Units (mm, UCUM, mm) (commit 74ce451a,
      2020-07-26, "change default value of Measurement Unit from 'm' to 'mm'"); Burned In
      Annotation "YES"; Patient, Study, Document Title, Position Reference Indicator and
      Concept Name Code Sequence present and empty.  No Specific Character Set.
    * dcm4che-core/.../io/DicomOutputStream.java 198-204: an odd OB value gets one pad byte,
      ``vr.paddingByte()``, 0 for OB.

    Nothing refers to an MTL: no Referenced Instance Sequence, no (0068,7005); the OBJ's
    ``mtllib`` line is left for the reader to resolve.
    """
    return _dcm4che(obj_bytes, ENCAPSULATED_OBJ, "model/obj", patient_id=patient_id, patient_name=patient_name,
                    study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid,
                    sop_instance_uid=sop_instance_uid, frame_of_reference_uid=frame_of_reference_uid,
                    encapsulated_doc_length=encapsulated_doc_length)


def dcm4che_mtl(mtl_bytes: bytes, *, patient_id: str = "", patient_name: str = "",
                study_instance_uid: Optional[str] = None, series_instance_uid: Optional[str] = None,
                sop_instance_uid: Optional[str] = None, encapsulated_doc_length: bool = False) -> FileDataset:
    """An Encapsulated MTL as dcm4che's ``pdf2dcm model.mtl out.dcm`` writes it.

    As :func:`dcm4che_obj` (same commit, same Pdf2Dcm.java lines), from
    dcm4che-assembly/src/etc/pdf2dcm/encapsulatedMTLMetadata.xml 3-57: SOP Class
    1.2.840.10008.5.1.4.1.1.104.5, MIME type "model/mtl", Modality M3D, Measurement Units
    (mm, UCUM, mm) and an empty Position Reference Indicator as in the OBJ template, but no
    Frame of Reference UID: Pdf2Dcm.java:222-225 generates one for STL and OBJ only.
    """
    return _dcm4che(mtl_bytes, ENCAPSULATED_MTL, "model/mtl", patient_id=patient_id, patient_name=patient_name,
                    study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid,
                    sop_instance_uid=sop_instance_uid, frame_of_reference_uid=None,
                    encapsulated_doc_length=encapsulated_doc_length)


def dcm4che_one_run(obj_bytes: bytes, mtl_bytes: bytes, **options) -> Tuple[FileDataset, FileDataset]:
    """The OBJ and the MTL of one ``pdf2dcm model.obj model.mtl outdir/`` run.

    Pdf2Dcm.java:98-99 and 202-217 supplement the missing Study, Series *and SOP Instance*
    UIDs once, into the static metadata every file of the run is built from (219-221,
    ``fileMetadata.addAll(staticMetadata)``): both objects get the same three UIDs.  Only the
    OBJ's Frame of Reference UID is made per file (222-225).
    """
    study = options.pop("study_instance_uid", None) or generate_uid()
    series = options.pop("series_instance_uid", None) or generate_uid()
    instance = options.pop("sop_instance_uid", None) or generate_uid()
    frame = options.pop("frame_of_reference_uid", None)
    shared = dict(study_instance_uid=study, series_instance_uid=series, sop_instance_uid=instance, **options)
    return dcm4che_obj(obj_bytes, frame_of_reference_uid=frame, **shared), dcm4che_mtl(mtl_bytes, **shared)


# -- 2. Orthanc /tools/create-dicom ------------------------------------------------------------

def _orthanc(document: bytes, sop_class: str, mime: str, *, tags: Optional[dict],
             patient_id: Optional[str], study_instance_uid: Optional[str], series_instance_uid: Optional[str],
             sop_instance_uid: Optional[str], now: Optional[datetime.datetime],
             specific_character_set: Optional[str]) -> FileDataset:
    ds = _file_dataset(sop_class, sop_instance_uid or generate_uid())
    # ParsedDicomFile.cpp:962-973 and FromDcmtkBridge.cpp:1548-1572: a UUID as Patient ID,
    # DCMTK-rooted Study, Series and SOP Instance UIDs.  Setting them through "Tags"
    # needs "Force": true (OrthancRestAnonymizeModify.cpp:621-667).
    ds.PatientID = patient_id or str(uuid.uuid4())
    ds.StudyInstanceUID = study_instance_uid or generate_uid()
    ds.SeriesInstanceUID = series_instance_uid or generate_uid()
    # OrthancRestAnonymizeModify.cpp:766-784: the configured default encoding, Latin1
    # ("ISO_IR 100") unless "DefaultEncoding" says otherwise; none for Windows1251.
    if specific_character_set:
        ds.SpecificCharacterSet = specific_character_set
    # OrthancRestAnonymizeModify.cpp:937-960 (no "Parent"): UTC now, and
    # SystemToolbox.cpp:696-710 writes the time with ".000000".
    now = now or datetime.datetime.now(datetime.timezone.utc)
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S") + ".000000"
    for keyword in ("Acquisition", "Content", "InstanceCreation", "Series", "Study"):
        setattr(ds, keyword + "Date", date)
        setattr(ds, keyword + "Time", time)
    for keyword, value in (tags or {}).items():  # InjectTags, 963: the caller's "Tags"
        setattr(ds, keyword, value)
    # ParsedDicomFile.cpp:1232-1242 and 1570-1608: MIME type, the document padded with
    # 0x00, then SOP Class UID and Modality "M3D" if the caller's tags did not set them.
    ds.MIMETypeOfEncapsulatedDocument = mime
    ds.EncapsulatedDocument = _padded(document)
    if "Modality" not in ds:
        ds.Modality = "M3D"
    return ds


def orthanc_obj(obj_bytes: bytes, *, tags: Optional[dict] = None, patient_id: Optional[str] = None,
                study_instance_uid: Optional[str] = None, series_instance_uid: Optional[str] = None,
                sop_instance_uid: Optional[str] = None, now: Optional[datetime.datetime] = None,
                specific_character_set: Optional[str] = "ISO_IR 100") -> FileDataset:
    """An Encapsulated OBJ as Orthanc >= 1.12.1 stores ``POST /tools/create-dicom`` with
    ``{"Tags": {...}, "Content": "data:model/obj;base64,..."}``.

    Read at jodogne/OrthancMirror@2d55a19c903aa535b738a3fc04485af656f26164 (the OBJ/MTL cases
    were added in bc282be3, 2023-07-02, released in 1.12.1):

    * OrthancFramework/Sources/DicomParsing/ParsedDicomFile.cpp
      - 1172-1181: the data URI's MIME type, lower-cased, picks the case;
      - 1238-1242 (``case MimeType_Obj``): ``EncapsulateDocument``, then ``SetIfAbsent``
        SOP Class UID 1.2.840.10008.5.1.4.1.1.104.4 and Modality "M3D";
      - 1570-1608 (``EncapsulateDocument``): (0042,0012) = "model/obj"
        (Enumerations.h:47), (0042,0011) allocated to an even size with the last byte
        set to 0 before the document is copied in: an odd document ends in one 0x00.
        (0042,0015) is written nowhere;
      - 962-973: new Patient ID (a UUID, FromDcmtkBridge.cpp:1554-1558), Study, Series and
        SOP Instance UIDs.
    * OrthancServer/Sources/OrthancRestApi/OrthancRestAnonymizeModify.cpp
      - 748-993 (``CreateDicomV2``): Specific Character Set from the default encoding
        (766-784); Acquisition, Content, Instance Creation, Series and Study Date and Time
        set to UTC now (937-960; the time as HHMMSS.000000, SystemToolbox.cpp:696-710);
        the caller's Tags (963; UIDs only with "Force", 621-667); then the content (973).
    * FromDcmtkBridge.cpp SaveToMemoryBuffer: a new dataset is written Explicit VR Little
      Endian.

    Not written: Frame of Reference UID, Measurement Units Code Sequence, Encapsulated
    Document Length, Burned In Annotation, Document Title, Concept Name Code Sequence,
    Instance and Series Number, Manufacturer, and no reference to an MTL.
    """
    return _orthanc(obj_bytes, ENCAPSULATED_OBJ, "model/obj", tags=tags, patient_id=patient_id,
                    study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid,
                    sop_instance_uid=sop_instance_uid, now=now, specific_character_set=specific_character_set)


def orthanc_mtl(mtl_bytes: bytes, *, tags: Optional[dict] = None, patient_id: Optional[str] = None,
                study_instance_uid: Optional[str] = None, series_instance_uid: Optional[str] = None,
                sop_instance_uid: Optional[str] = None, now: Optional[datetime.datetime] = None,
                specific_character_set: Optional[str] = "ISO_IR 100") -> FileDataset:
    """An Encapsulated MTL as Orthanc >= 1.12.1 stores ``"Content": "data:model/mtl;base64,..."``.

    As :func:`orthanc_obj` (same commit and lines), through ParsedDicomFile.cpp:1232-1236
    (``case MimeType_Mtl``): SOP Class 1.2.840.10008.5.1.4.1.1.104.5, MIME type "model/mtl"
    (Enumerations.h:48), Modality "M3D", the same 0x00 pad and the same omissions.
    """
    return _orthanc(mtl_bytes, ENCAPSULATED_MTL, "model/mtl", tags=tags, patient_id=patient_id,
                    study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid,
                    sop_instance_uid=sop_instance_uid, now=now, specific_character_set=specific_character_set)


# -- 3. DCMTK 3.7.0 dcmencap -------------------------------------------------------------------

def _dcmtk(document: bytes, sop_class: str, mime: str, *, patient_name: str, patient_id: str,
           study_instance_uid: Optional[str], series_instance_uid: Optional[str],
           frame_of_reference_uid: Optional[str], title: str, units: Sequence[str],
           annotation: bool, specific_character_set: Optional[str], now: Optional[datetime.datetime]) -> FileDataset:
    ds = _file_dataset(sop_class, generate_uid())  # dcencdoc.cc:1430-1433: always a new SOP Instance UID
    ds.EncapsulatedDocumentLength = len(document)  # 1240-1241, always (CP 1851)
    ds.EncapsulatedDocument = _padded(document)    # 1243-1259, "blank pad byte" 0
    # createHeader, 1388-1449
    for keyword in ("StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID",
                    "ContentDate", "ContentTime", "AcquisitionDateTime"):
        setattr(ds, keyword, "")
    ds.ConceptNameCodeSequence = []
    ds.SeriesNumber = "1"
    ds.DocumentTitle = title
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.BurnedInAnnotation = "YES" if annotation else "NO"  # annotation_(OFTrue), line 65
    ds.InstanceNumber = "1"
    ds.StudyInstanceUID = study_instance_uid or generate_uid()
    ds.SeriesInstanceUID = series_instance_uid or generate_uid()
    now = now or datetime.datetime.now()
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.Modality = "M3D"
    ds.MIMETypeOfEncapsulatedDocument = mime
    if specific_character_set:
        ds.SpecificCharacterSet = specific_character_set
    # addFrameOfReferenceModule 1294-1322: for STL, MTL and OBJ alike.
    ds.FrameOfReferenceUID = frame_of_reference_uid or generate_uid()
    ds.PositionReferenceIndicator = ""
    # addEnhancedGeneralEquipmentModule 1325-1362: dummies when not given.
    ds.Manufacturer = "DCMTK_MANUFACTURING"
    ds.ManufacturerModelName = "DCMTK_3DMODEL"
    ds.DeviceSerialNumber = "DCMTK_1234567890"
    ds.SoftwareVersions = "3.7.0"
    # addManufacturing3DModelModule 1365-1385: UCUM um unless +mu gives all three values.
    ds.MeasurementUnitsCodeSequence = [_code_item(units[1], units[0], units[2])]
    return ds


def dcmtk_obj(obj_bytes: bytes, *, patient_name: str = "", patient_id: str = "",
              study_instance_uid: Optional[str] = None, series_instance_uid: Optional[str] = None,
              frame_of_reference_uid: Optional[str] = None, title: str = "",
              units: Sequence[str] = ("UCUM", "um", "um"), annotation: bool = True,
              specific_character_set: Optional[str] = None,
              now: Optional[datetime.datetime] = None) -> FileDataset:
    """An Encapsulated OBJ as DCMTK 3.7.0's ``dcmencap model.obj out.dcm`` writes it.

    Read at DCMTK/dcmtk tag DCMTK-3.7.0 (ccfd10b84ff3c9a40b7b331698aedf06d421fc43; the files
    are unchanged at d12e350e, 2026-05-24), dcmdata/libsrc/dcencdoc.cc:

    * 930-935, 1033-1050, 1188-1217: a file is OBJ when its first keyword is one of the OBJ
      statements (``v``, ``f``, ``mtllib``, ``o``, ...), or with ``+fo``;
    * 60-65: Explicit VR Little Endian, no padding of the dataset, Burned In Annotation
      "YES" by default (``-an`` for "NO");
    * 1238-1259: (0042,0015) Encapsulated Document Length = the file's size, always; the
      value allocated to an even size with the last byte 0;
    * 1388-1449 (``createHeader``): Study Date/Time, Accession Number, Referring Physician,
      Study ID, Content Date/Time and Acquisition DateTime empty; Concept Name Code Sequence
      empty unless ``--title-code``; Series Number 1; Document Title from ``+t`` (empty);
      Instance Number 1; a new SOP Instance UID; Instance Creation Date/Time now;
    * 1538-1555 (``case DT_objDocument``): SOP Class 1.2.840.10008.5.1.4.1.1.104.4, MIME type
      "model/obj", Modality "M3D" (an error if ``--series-from`` has another modality),
      Specific Character Set only when one was read or given;
    * 1294-1322: Frame of Reference UID (given, read with ``--series-from``, or generated)
      and Position Reference Indicator (empty unless read);
    * 1325-1362: Manufacturer "DCMTK_MANUFACTURING", Model "DCMTK_3DMODEL", Serial
      "DCMTK_1234567890", Software Versions OFFIS_DCMTK_VERSION when not given;
    * 1365-1385: Measurement Units (um, UCUM, um) unless ``+mu CSD CV CM`` gives all three.

    No reference to an MTL is written.
    """
    return _dcmtk(obj_bytes, ENCAPSULATED_OBJ, "model/obj", patient_name=patient_name, patient_id=patient_id,
                  study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid,
                  frame_of_reference_uid=frame_of_reference_uid, title=title, units=units,
                  annotation=annotation, specific_character_set=specific_character_set, now=now)


def dcmtk_mtl(mtl_bytes: bytes, *, patient_name: str = "", patient_id: str = "",
              study_instance_uid: Optional[str] = None, series_instance_uid: Optional[str] = None,
              frame_of_reference_uid: Optional[str] = None, title: str = "",
              units: Sequence[str] = ("UCUM", "um", "um"), annotation: bool = True,
              specific_character_set: Optional[str] = None,
              now: Optional[datetime.datetime] = None) -> FileDataset:
    """An Encapsulated MTL as DCMTK 3.7.0's ``dcmencap model.mtl out.dcm`` writes it.

    As :func:`dcmtk_obj` (same tag and file), through dcencdoc.cc:1519-1536
    (``case DT_mtlDocument``; the file's first keyword must be ``newmtl``, 1167-1186): SOP
    Class 1.2.840.10008.5.1.4.1.1.104.5, MIME type "model/mtl", and, unlike dcm4che, a Frame
    of Reference UID and Position Reference Indicator (1533) and Measurement Units, (um,
    UCUM, um) by default (1535), on the MTL too.
    """
    return _dcmtk(mtl_bytes, ENCAPSULATED_MTL, "model/mtl", patient_name=patient_name, patient_id=patient_id,
                  study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid,
                  frame_of_reference_uid=frame_of_reference_uid, title=title, units=units,
                  annotation=annotation, specific_character_set=specific_character_set, now=now)


# -- 4. GLB stored in the Encapsulated OBJ class (Sonador, for its OHIF extension) -------------

def tiny_glb(json_chunk: bytes = b'{"asset":{"version":"2.0"}}') -> bytes:
    """A valid glTF 2.0 binary: the 12-byte header ("glTF", version 2, total length) and one
    JSON chunk (length, "JSON", the text padded with spaces to a multiple of 4)."""
    json_chunk += b" " * (-len(json_chunk) % 4)
    chunk = struct.pack("<I4s", len(json_chunk), b"JSON") + json_chunk
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunk)) + chunk


def ohif_glb_as_obj(glb_bytes: bytes, *, patient_id: Optional[str] = None, patient_name: Optional[str] = None,
                    study_instance_uid: Optional[str] = None, series_instance_uid: Optional[str] = None,
                    sop_instance_uid: Optional[str] = None,
                    now: Optional[datetime.datetime] = None) -> FileDataset:
    """A glTF binary (GLB) stored under the Encapsulated OBJ SOP Class, as Sonador writes it for
    the M3D viewer of its OHIF fork.

    The viewer, oaktree-slc-tech/sonador-viewer@5876897ab565647ec9c32340f04074204b8c20f6,
    extensions/viewer3d/src/sopClassHandlers/OHIFDicom3DSopClassHandler.js: 3-7 declare
    ``ENCAPSULATED_OBJ = '1.2.840.10008.5.1.4.1.1.104.4'`` and ``MIMETYPE_GLB =
    'model/gltf-binary'``; 19-35 take the model type from (0042,0012) ("GLB (OBJ)", 48): an
    Encapsulated OBJ holding model/obj is not shown at all; 52-55 register the OBJ and STL
    classes only.

    The writer, oaktree-slc-tech/sonador-io@fe22354ffa80e8bc92d2abe1bddb22c37ab961a1:

    * tasks/media.py 75-110 (``dcm_encode_glb``): the SOP Class must be Encapsulated OBJ
      ("GLB must use the OBJ encapsulated document storage"), Modality "M3D"
      (apisettings/media.py:58-59), MIME type "model/gltf-binary"; 17-36
      (``dcm_encode_media``): ``ds.EncapsulatedDocument = media_file.read()``, unpadded in
      the dataset (pydicom pads the odd OB value with 0x00 when writing);
    * imaging/helpers/conversion.py 121-166: file meta with Media Storage SOP Class and
      Instance UIDs and ``PYDICOM_IMPLEMENTATION_UID``, no Transfer Syntax UID; 169-210:
      ``FileDataset`` with a 128-byte zero preamble, Implicit VR Little Endian, Content Date
      and Time from ``datetime.now()`` ("%Y%m%d", "%H%M%S.%f", apisettings/base.py:715-718),
      SOP Class and Instance UIDs, then the caller's attributes.  Nothing else: no Study or
      Series UID unless the caller gives them, no Frame of Reference, units, length or
      Burned In Annotation.

    (Also there, apisettings/media.py:62: ``DCMEDIA_ENCAPSULATED_MTL_SOP_CLASS =
    '1.2.840.10008.5.1.4.1.1.104.5 '``, with a trailing space; no writer uses it.)
    Write with :func:`write_sonador_layout` for the file as Sonador saves it.
    """
    ds = _file_dataset(ENCAPSULATED_OBJ, sop_instance_uid or generate_uid(), transfer_syntax=None,
                       implicit_vr=True)
    now = now or datetime.datetime.now()
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S.%f")
    for keyword, value in (("PatientID", patient_id), ("PatientName", patient_name),
                           ("StudyInstanceUID", study_instance_uid), ("SeriesInstanceUID", series_instance_uid)):
        if value is not None:
            setattr(ds, keyword, value)
    ds.Modality = "M3D"
    ds.MIMETypeOfEncapsulatedDocument = "model/gltf-binary"
    ds.EncapsulatedDocument = bytes(glb_bytes)
    return ds
