"""The peer builders write what their docstrings say the real tools write (facts about the
builders themselves; the readers are tested against them elsewhere).  pydicom only."""

from __future__ import annotations

import datetime
import struct

import pydicom
import pytest

import peer_objects as peers
from peer_objects import ENCAPSULATED_MTL, ENCAPSULATED_OBJ

OBJ = b"mtllib cube.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl red\nf 1 2 3\n"  # odd length
MTL = b"newmtl red\nKd 1 0 0\n"  # even length
assert len(OBJ) % 2 and not len(MTL) % 2


def _round_trip(tmp_path, ds, write=peers.write_file, name="peer.dcm"):
    path = tmp_path / name
    write(ds, path)
    return pydicom.dcmread(path), path.read_bytes()


def _present(ds, *keywords):
    return {keyword for keyword in keywords if keyword in ds}


FRAME_UNITS_LENGTH = ("FrameOfReferenceUID", "MeasurementUnitsCodeSequence", "EncapsulatedDocumentLength")


@pytest.mark.parametrize("build, document, sop_class, mime, present", [
    (peers.dcm4che_obj, OBJ, ENCAPSULATED_OBJ, "model/obj", {"FrameOfReferenceUID", "MeasurementUnitsCodeSequence"}),
    (peers.dcm4che_mtl, MTL, ENCAPSULATED_MTL, "model/mtl", {"MeasurementUnitsCodeSequence"}),
    (peers.orthanc_obj, OBJ, ENCAPSULATED_OBJ, "model/obj", set()),
    (peers.orthanc_mtl, MTL, ENCAPSULATED_MTL, "model/mtl", set()),
    (peers.dcmtk_obj, OBJ, ENCAPSULATED_OBJ, "model/obj", set(FRAME_UNITS_LENGTH)),
    (peers.dcmtk_mtl, MTL, ENCAPSULATED_MTL, "model/mtl", set(FRAME_UNITS_LENGTH)),
])
def test_class_type_padding_and_what_is_set_or_left_out(tmp_path, build, document, sop_class, mime, present):
    read, _ = _round_trip(tmp_path, build(document))
    assert read.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert read.SOPClassUID == read.file_meta.MediaStorageSOPClassUID == sop_class
    assert read.Modality == "M3D" and read.MIMETypeOfEncapsulatedDocument == mime
    assert bytes(read.EncapsulatedDocument) == document + b"\0" * (len(document) % 2)
    assert _present(read, *FRAME_UNITS_LENGTH) == present
    assert "ReferencedInstanceSequence" not in read  # none of them refers OBJ -> MTL


def test_dcm4che_template_values_and_its_document_written_last(tmp_path):
    ds = peers.dcm4che_obj(OBJ, encapsulated_doc_length=True)
    read, raw = _round_trip(tmp_path, ds, peers.write_dcm4che_layout)
    (units,) = read.MeasurementUnitsCodeSequence
    assert (units.CodeValue, units.CodingSchemeDesignator) == ("mm", "UCUM")
    assert read.BurnedInAnnotation == "YES" and read.Manufacturer == "UNKNOWN"
    assert read.EncapsulatedDocumentLength == len(OBJ)
    assert read.PositionReferenceIndicator == "" and read.ContentDate == ""
    assert "SpecificCharacterSet" not in read
    # (0042,0011) comes after (0042,0012) and (0042,0015), and ends the file
    mime_at, length_at, document_at = (raw.index(struct.pack("<HH", 0x0042, e)) for e in (0x0012, 0x0015, 0x0011))
    assert mime_at < length_at < document_at and raw.endswith(OBJ + b"\0")
    assert bytes(read.EncapsulatedDocument) == OBJ + b"\0"


def test_dcm4che_one_run_gives_obj_and_mtl_the_same_instance_uid(tmp_path):
    obj, mtl = peers.dcm4che_one_run(OBJ, MTL)
    assert obj.SOPInstanceUID == mtl.SOPInstanceUID and obj.SeriesInstanceUID == mtl.SeriesInstanceUID
    assert "FrameOfReferenceUID" in obj and "FrameOfReferenceUID" not in mtl
    assert _round_trip(tmp_path, mtl, peers.write_dcm4che_layout)[0].SOPClassUID == ENCAPSULATED_MTL


def test_orthanc_dates_charset_and_omissions(tmp_path):
    now = datetime.datetime(2026, 12, 2, 13, 4, 5, tzinfo=datetime.timezone.utc)
    read, _ = _round_trip(tmp_path, peers.orthanc_obj(OBJ, tags={"PatientName": "Phantom^Skull"}, now=now))
    assert read.SpecificCharacterSet == "ISO_IR 100" and read.PatientName == "Phantom^Skull"
    assert read.ContentDate == read.StudyDate == "20261202" and read.ContentTime == "130405.000000"
    assert len(read.PatientID) == 36  # a UUID
    assert not _present(read, "BurnedInAnnotation", "DocumentTitle", "ConceptNameCodeSequence",
                        "InstanceNumber", "SeriesNumber", "Manufacturer")


def test_dcmtk_defaults(tmp_path):
    read, _ = _round_trip(tmp_path, peers.dcmtk_mtl(MTL, title="Skull"))
    (units,) = read.MeasurementUnitsCodeSequence
    assert (units.CodeValue, units.CodingSchemeDesignator, units.CodeMeaning) == ("um", "UCUM", "um")
    assert read.EncapsulatedDocumentLength == len(MTL) and read.DocumentTitle == "Skull"
    assert read.Manufacturer == "DCMTK_MANUFACTURING" and read.SoftwareVersions == "3.7.0"
    assert read.BurnedInAnnotation == "YES" and read.PositionReferenceIndicator == ""


def test_glb_in_the_obj_class_as_sonador_saves_it(tmp_path):
    glb = peers.tiny_glb(b'{"asset":{"version":"2.0"}} ')  # odd JSON: padded to 4 with spaces
    magic, version, length = struct.unpack_from("<4sII", glb)
    assert (magic, version, length) == (b"glTF", 2, len(glb)) and struct.unpack_from("<4s", glb, 16) == (b"JSON",)
    read, raw = _round_trip(tmp_path, peers.ohif_glb_as_obj(glb, study_instance_uid="1.2.3"),
                            peers.write_sonador_layout)
    assert raw[128:132] == b"DICM"
    assert "TransferSyntaxUID" not in read.file_meta  # as a default save_as writes Sonador's meta
    assert read.SOPClassUID == ENCAPSULATED_OBJ and read.MIMETypeOfEncapsulatedDocument == "model/gltf-binary"
    assert bytes(read.EncapsulatedDocument)[:len(glb)] == glb and read.StudyInstanceUID == "1.2.3"
    assert "SeriesInstanceUID" not in read
    assert not _present(read, *FRAME_UNITS_LENGTH, "BurnedInAnnotation")
    # and it writes as a complete PS3.10 file too
    full, _ = _round_trip(tmp_path, peers.ohif_glb_as_obj(glb), name="full.dcm")
    assert full.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
