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
from encapsulated_stl.iod.encapsulate import ModelMetadata, encapsulate_stl, save_dataset
from encapsulated_stl.errors import NotEncapsulatedSTLError, StlFormatError
from encapsulated_stl.iod.file_format import write_file_format
from encapsulated_stl.iod.model import read_encapsulated_model
from encapsulated_stl.iod.sop import ENCAPSULATED_STL_SOP_CLASS_UID
from stl_samples import binary_stl_by_hand, cube_triangles

CUBE = cube_triangles(25.0, origin=(-40.0, 10.0, 600.0))


def _code(value, scheme, meaning):
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _written_by_others(path, stl: bytes, units, *, title="", length=None, manufacturer="",
                       burned_in="NO", frame=None, mime="model/stl", sop_class=ENCAPSULATED_STL_SOP_CLASS_UID):
    """An Encapsulated STL file assembled with pydicom the way another producer does: the
    document padded to even length with a zero byte, as DCMTK, dcm4che and Orthanc pad."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = sop_class
    ds.Modality = "M3D"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = frame or generate_uid()
    ds.PatientName, ds.PatientID = "Phantom^Skull", "PH-1"
    ds.Manufacturer = manufacturer
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.BurnedInAnnotation = burned_in
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = mime
    if units is not None:
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
    from encapsulated_stl.stl.format import parse_binary_stl

    return parse_binary_stl(path.read_bytes()).triangles


def test_our_object_read_back_reports_everything(tmp_path, ge_tilted_series):
    from encapsulated_stl.series.source_series import find_source_series

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


# -- what other producers store that Supplement 205 does not foresee ------------------------
# Each object is rebuilt as the producer's source code writes it (cited by repository,
# commit, file and line; read with the project's search tools on 2026-12-02).

ORTHANC = "orthanc-mirrors/orthanc@79314fab OrthancFramework/Sources/DicomParsing/ParsedDicomFile.cpp"
ODD_STL = binary_stl_by_hand(CUBE) + b"\n"  # an STL file that ends in a line break: odd length


def _info_and_extract(path, tmp_path, capsys, *extract_options):
    """(info's exit code, its stderr lines, extract's exit code, its stderr lines, the bytes written)."""
    info = main(["info", str(path)])
    info_err = capsys.readouterr().err.splitlines()
    out = tmp_path / "extracted.stl"
    extract = main(["extract", str(path), "-o", str(out), *extract_options])
    extract_err = capsys.readouterr().err.splitlines()
    return info, info_err, extract, extract_err, (out.read_bytes() if out.exists() else None)


def test_orthanc_pads_an_odd_stl_with_a_zero_and_states_no_length(tmp_path, capsys):
    # ParsedDicomFile.cpp:1581-1598 (EncapsulateDocument): an odd payload gets a 0x00 pad
    # byte; (0042,0015) is written nowhere in the tree.  The STL's own count says where
    # its triangles end: the stray line break and the pad are ignored, with a warning.
    path = _written_by_others(tmp_path / "orthanc.dcm", ODD_STL, ("mm", "UCUM", "mm"))
    model = read_encapsulated_model(path)
    assert bytes(model.stl) == ODD_STL[:-1]
    assert model.notes == ["2 bytes after the binary STL's 12 triangles were ignored (an STL file of odd "
                           "length, padded when it was wrapped)"]
    info, info_err, extract, extract_err, written = _info_and_extract(path, tmp_path, capsys)
    assert info == 0 and len(info_err) == 1 and info_err[0].startswith(f"warning: {path}: 2 bytes after")
    assert extract == 0 and extract_err == info_err and written == ODD_STL[:-1]


def test_dcm4che_states_the_odd_length_of_the_file_it_wrapped(tmp_path):
    # dcm4che/dcm4che@5d3b07cb dcm4che-tool-pdf2dcm/.../Pdf2Dcm.java:226-227 writes
    # (0042,0015) = the file's length with --encapsulatedDocLength; DicomOutputStream.java
    # 198-204 pads OB with a 0 byte.
    path = _written_by_others(tmp_path / "dcm4che.dcm", ODD_STL, ("mm", "UCUM", "mm"), length=len(ODD_STL))
    model = read_encapsulated_model(path)
    assert bytes(model.stl) == ODD_STL[:-1]
    assert model.notes == ["1 byte after the binary STL's 12 triangles was ignored (an STL file of odd "
                           "length, padded when it was wrapped)"]


def test_a_triangle_s_worth_of_extra_bytes_is_not_guessed_away(tmp_path):
    path = _written_by_others(tmp_path / "more.dcm", binary_stl_by_hand(CUBE) + bytes(50), ("mm", "UCUM", "mm"))
    with pytest.raises(StlFormatError, match="50 bytes of trailing data after the 12 triangles"):
        read_encapsulated_model(path)


def ascii_stl(triangles, name=b"cube") -> bytes:
    facets = b"".join(
        b"  facet normal 0 0 0\n    outer loop\n"
        + b"".join(b"      vertex %r %r %r\n" % tuple(float(c) for c in vertex) for vertex in triangle)
        + b"    endloop\n  endfacet\n"
        for triangle in triangles)
    return b"solid " + name + b"\n" + facets + b"endsolid " + name + b"\n"


def test_an_ascii_stl_payload_is_read_as_ascii_and_extracted_as_stored(tmp_path, capsys):
    # Orthanc stores whatever a data URI holds (ParsedDicomFile.cpp:1572-1610); PixelMed
    # wraps any .stl file (its real output: test_real_producers.py).  ASCII STL is not what
    # Supplement 205 stores, but its text is unambiguous.
    text = ascii_stl(CUBE) + (b"" if len(ascii_stl(CUBE)) % 2 else b" ")  # odd: pad byte too
    path = _written_by_others(tmp_path / "ascii.dcm", text, ("mm", "UCUM", "mm"))
    model = read_encapsulated_model(path)
    assert model.is_ascii and model.mesh.triangle_count == 12
    np.testing.assert_allclose(model.triangles_mm(), CUBE, atol=1e-5)
    assert model.notes == ["the document is an ASCII STL (Supplement 205 stores binary STL); read as ASCII"]
    info, info_err, extract, _, written = _info_and_extract(path, tmp_path, capsys)
    assert info == 0 and "ASCII STL" in info_err[0]
    assert extract == 0 and written.rstrip(b"\0") == text.rstrip(b"\0")  # the bytes as stored
    assert main(["-q", "extract", str(path), "-o", str(tmp_path / "m.stl"), "--units", "m"]) == 0
    np.testing.assert_allclose(read_encapsulated_model_stl(tmp_path / "m.stl"), CUBE / 1000.0, rtol=1e-6)


#: MIME types seen on STL in archives, with where they come from: dcm4chee-arc's upload
#: dialog stores the browser's own type for the file (dcm4che/dcm4chee-arc-light@674a8642
#: dcm4chee-arc-ui2/.../upload-files.component.ts:587-599; Windows browsers say
#: application/vnd.ms-pki.stl), dcm4che's tools accept application/sla and
#: model/x.stl-binary (dcm4che-ws-rs/.../MediaTypes.java:366-388).
LENIENT_MIME_TYPES = {
    "application/sla": "an older name of model/stl",
    "model/x.stl-binary": "an older name of model/stl",
    "application/vnd.ms-pki.stl": "an older name of model/stl",
    "text/plain": "not model/stl",
    "application/octet-stream": "not model/stl",
    "MODEL/STL": None,  # case does not matter in a MIME type
}


@pytest.mark.parametrize("mime, note", LENIENT_MIME_TYPES.items(), ids=LENIENT_MIME_TYPES.keys())
def test_a_type_that_says_stl_or_nothing_reads_with_a_warning(tmp_path, mime, note):
    stl = binary_stl_by_hand(CUBE)
    model = read_encapsulated_model(_written_by_others(tmp_path / "t.dcm", stl, ("mm", "UCUM", "mm"), mime=mime))
    assert bytes(model.stl) == stl
    if note is None:
        assert model.notes == []
    else:
        (said,) = model.notes
        assert f"is '{mime}', {note}; the document is a valid STL and was read as one" in said


def test_a_generic_type_with_bytes_that_are_no_stl_says_both(tmp_path):
    path = _written_by_others(tmp_path / "t.dcm", b"Hello, world", ("mm", "UCUM", "mm"), mime="text/plain")
    with pytest.raises(StlFormatError, match="is 'text/plain', not model/stl, and the document is not a valid STL"):
        read_encapsulated_model(path)


#: Sonador's OHIF fork (oaktree-slc-tech/sonador-viewer@5876897a, extensions/viewer3d/src/
#: sopClassHandlers/OHIFDicom3DSopClassHandler.js lines 3-7) loads GLB from the Encapsulated
#: OBJ class with MIME model/gltf-binary, and takes the MIME type over the class.
GLB = b"glTF" + (2).to_bytes(4, "little") + (20).to_bytes(4, "little") + bytes(8)


@pytest.mark.parametrize("sop_class, message", [
    ("1.2.840.10008.5.1.4.1.1.104.4",
     "an Encapsulated OBJ object, but its MIME Type of Encapsulated Document (0042,0012) is "
     "'model/gltf-binary' and it holds glTF binary (GLB), not OBJ: it is not read as OBJ"),
    (ENCAPSULATED_STL_SOP_CLASS_UID,
     "MIME Type of Encapsulated Document (0042,0012) is 'model/gltf-binary': the document is in another "
     "format, not STL, and is not read as STL"),
], ids=["OBJ class", "STL class"])
def test_gltf_is_never_parsed_as_stl(tmp_path, capsys, sop_class, message):
    path = _written_by_others(tmp_path / "glb.dcm", GLB, ("mm", "UCUM", "mm"), mime="model/gltf-binary",
                              sop_class=sop_class)
    with pytest.raises(NotEncapsulatedSTLError) as refused:
        read_encapsulated_model(path)
    assert refused.value.reason == message
    assert main(["info", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}: {message}\n"


def test_fo_dicoms_empty_document_is_said_to_be_empty(tmp_path, capsys):
    # The one Encapsulated STL of Orthanc's test data, orthanc-mirrors/orthanc-tests@56fe710a
    # Database/Issue137.dcm (written by fo-dicom 4.0.0; Tests/Tests.py:6154-6159, 6442-6545):
    # MIME model/stl, Document Title 'intraop Report', no units, and (0042,0011) of 0 bytes.
    path = _written_by_others(tmp_path / "Issue137.dcm", b"", None, title="intraop Report",
                              manufacturer="TESTING AG")
    expected = "Encapsulated Document (0042,0011) is empty (0 bytes): the object holds no model"
    with pytest.raises(NotEncapsulatedSTLError) as refused:
        read_encapsulated_model(path)
    assert refused.value.reason == expected
    for command in (["info", str(path)], ["extract", str(path), "-o", str(tmp_path / "x.stl")]):
        assert main(command) == 2
        assert capsys.readouterr().err == f"error: {path}: {expected}\n"
    assert not (tmp_path / "x.stl").exists()
