"""Encapsulated STL from any producer loads, with its declared units honoured.

DCMTK objects are made by the real ``stl2dcm``.  The Orthanc STL plugin and
dcm4che's pdf2dcm cannot run here (Orthanc 1.12.1+ and Java tools are not in
Debian 12), so their objects are rebuilt attribute by attribute from what their
sources write (Orthanc: Sources/Plugin.cpp and VTKToolbox.cpp's EncodeSTL;
dcm4che: pdf2dcm's encapsulatedSTLMetadata.xml, old and new).
"""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import require_tool
from encapsulated_stl.cli import main
from encapsulated_stl.encapsulate import ModelMetadata, encapsulate_stl, save_dataset
from encapsulated_stl.errors import NotEncapsulatedSTLError, StlFormatError
from encapsulated_stl.file_format import write_file_format
from encapsulated_stl.model import read_encapsulated_model
from encapsulated_stl.sop import ENCAPSULATED_STL_SOP_CLASS_UID
from stl_samples import binary_stl_by_hand, cube_triangles

CUBE = cube_triangles(25.0, origin=(-40.0, 10.0, 600.0))


def _code(value, scheme, meaning):
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _written_by_others(path, stl: bytes, units, *, title="", length=None, manufacturer="",
                       burned_in="NO", frame=None):
    """An Encapsulated STL file assembled with pydicom the way another producer does."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ENCAPSULATED_STL_SOP_CLASS_UID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ENCAPSULATED_STL_SOP_CLASS_UID
    ds.Modality = "M3D"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = frame or generate_uid()
    ds.PatientName, ds.PatientID = "Phantom^Skull", "PH-1"
    ds.Manufacturer = manufacturer
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.BurnedInAnnotation = burned_in
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "model/stl"
    ds.MeasurementUnitsCodeSequence = [_code(*units)]
    if length is not None:
        ds.EncapsulatedDocumentLength = length
    ds.EncapsulatedDocument = stl + (b"\0" if len(stl) % 2 else b"")
    write_file_format(ds, path)
    return path


def test_orthanc_stl_plugin_object_loads_in_mm_despite_its_units_meaning(tmp_path):
    # Orthanc: 80 zero bytes of header, no (0042,0015), CodeMeaning = the title.
    stl = binary_stl_by_hand(CUBE, header=b"")
    title = "STL model generated from NIfTI"
    path = _written_by_others(tmp_path / "orthanc.dcm", stl, ("mm", "UCUM", title),
                              title=title, manufacturer="Orthanc STL plugin")
    model = read_encapsulated_model(path)
    assert bytes(model.stl) == stl
    assert model.units == "mm"
    np.testing.assert_allclose(model.triangles_mm(), CUBE, atol=1e-6)
    assert model.title == title
    assert model.producer.startswith("Orthanc STL plugin")
    assert model.source_instance_uids == []


@pytest.mark.parametrize("units, scale", [(("m", "UCUM", "m"), 1000.0), (("mm", "UCUM", "mm"), 1.0)])
def test_dcm4che_objects_old_metres_and_new_millimetres(tmp_path, units, scale):
    # Old pdf2dcm templates said m; the coordinates are taken at their word.
    stl = binary_stl_by_hand(CUBE * np.float32(1.0 / scale), header=b"solid exported")
    path = _written_by_others(tmp_path / "dcm4che.dcm", stl, units, manufacturer="UNKNOWN",
                              burned_in="YES")
    model = read_encapsulated_model(path)
    assert model.units == units[0]
    np.testing.assert_allclose(model.triangles_mm(), CUBE, rtol=1e-6, atol=1e-4)


def test_odd_length_document_from_another_producer_keeps_the_declared_length(tmp_path):
    stl = binary_stl_by_hand(CUBE)
    path = _written_by_others(tmp_path / "odd.dcm", stl, ("mm", "UCUM", "mm"), length=len(stl))
    assert bytes(read_encapsulated_model(path).stl) == stl


def test_undeclared_or_foreign_units_are_reported_not_guessed(tmp_path):
    stl = binary_stl_by_hand(CUBE)
    path = _written_by_others(tmp_path / "inch.dcm", stl, ("[in_i]", "UCUM", "inch"))
    model = read_encapsulated_model(path)
    assert model.units is None and "[in_i]" in model.units_problem
    with pytest.raises(NotEncapsulatedSTLError, match="give the units explicitly"):
        model.triangles_mm()
    np.testing.assert_allclose(model.triangles_mm(assume_units="mm"), CUBE)


@pytest.mark.parametrize("transfer_syntax", ["+te", "+ti", "+tb"])
def test_dcmtk_stl2dcm_objects_load_in_micrometres_by_default(tmp_path, ge_tilted_series, transfer_syntax):
    stl2dcm = require_tool("stl2dcm", "apt-get install dcmtk")
    stl = binary_stl_by_hand(CUBE, header=b"CAD export")
    (tmp_path / "cube.stl").write_bytes(stl)
    reference = sorted(ge_tilted_series.iterdir())[0]
    out = tmp_path / "dcmtk.dcm"
    subprocess.run(
        [stl2dcm, "-q", transfer_syntax, "--study-from", str(reference), "+t", "Skull",
         str(tmp_path / "cube.stl"), str(out)],
        check=True, timeout=60,
    )
    model = read_encapsulated_model(out)
    source = pydicom.dcmread(reference, stop_before_pixels=True)
    assert bytes(model.stl) == stl
    assert model.units == "um"  # DCMTK's default, whatever the file meant
    np.testing.assert_allclose(model.triangles_mm(), CUBE * 0.001, rtol=1e-6)
    assert model.study_instance_uid == source.StudyInstanceUID
    assert model.frame_of_reference_uid == source.FrameOfReferenceUID
    assert model.title == "Skull"
    # stl2dcm copies the scanner's equipment: the producer shown is the CT's.
    assert model.producer.startswith(source.Manufacturer)


def test_dcmtk_object_extracts_byte_identical_and_converts_units(tmp_path, capsys):
    stl2dcm = require_tool("stl2dcm", "apt-get install dcmtk")
    stl = binary_stl_by_hand(CUBE)
    (tmp_path / "cube.stl").write_bytes(stl)
    subprocess.run([stl2dcm, "-q", "+mu", "UCUM", "mm", "mm", str(tmp_path / "cube.stl"),
                    str(tmp_path / "d.dcm")], check=True, timeout=60)
    assert main(["extract", str(tmp_path / "d.dcm"), "-o", str(tmp_path / "same.stl")]) == 0
    assert (tmp_path / "same.stl").read_bytes() == stl
    assert main(["extract", str(tmp_path / "d.dcm"), "-o", str(tmp_path / "m.stl"), "--units", "m"]) == 0
    metres = read_encapsulated_model_stl(tmp_path / "m.stl")
    np.testing.assert_allclose(metres, CUBE / 1000.0, rtol=1e-6)


def read_encapsulated_model_stl(path):
    from encapsulated_stl.stl import parse_binary_stl

    return parse_binary_stl(path.read_bytes()).triangles


def test_our_object_read_back_reports_everything(tmp_path, ge_tilted_series):
    from encapsulated_stl.source_series import find_source_series

    source = find_source_series(ge_tilted_series)
    stl = binary_stl_by_hand(CUBE)
    ds = encapsulate_stl(stl, source, ModelMetadata(
        content_description="Skull", usage="planning", laterality="B", color=(1.0, 0.0, 0.0),
        opacity=0.5, model_group_uid="1.2.3.4"))
    model = read_encapsulated_model(save_dataset(ds, tmp_path / "ours.dcm"))
    assert model.units == "mm" and model.name == "Skull"
    assert model.usage == "planning" and model.laterality == "B"
    assert model.frame_of_reference_uid == source.frame_of_reference_uid
    (series,) = model.source_series
    assert series.series_instance_uid == source.series_instance_uid
    assert len(series.sop_instance_uids) == 28
    assert model.model_group_uid == "1.2.3.4" and model.opacity == 0.5
    np.testing.assert_allclose(model.color, (1.0, 0.0, 0.0), atol=0.01)


def test_broken_inputs_are_named(tmp_path, ge_tilted_series):
    with pytest.raises(NotEncapsulatedSTLError, match="no such file"):
        read_encapsulated_model(tmp_path / "missing.dcm")
    (tmp_path / "text.dcm").write_text("hello")
    with pytest.raises(NotEncapsulatedSTLError, match="not a DICOM file"):
        read_encapsulated_model(tmp_path / "text.dcm")
    ct = sorted(ge_tilted_series.iterdir())[0]
    with pytest.raises(NotEncapsulatedSTLError, match="CT Image Storage"):
        read_encapsulated_model(ct)
    truncated = binary_stl_by_hand(CUBE)[:-50]
    path = _written_by_others(tmp_path / "trunc.dcm", truncated, ("mm", "UCUM", "mm"))
    with pytest.raises(StlFormatError, match="trunc.dcm.*truncated"):
        read_encapsulated_model(path)
