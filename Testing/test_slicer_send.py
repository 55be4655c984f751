"""Slicer module: send what was exported to a PACS (issue 5, point 4).

A segmentation drawn on a real MRML scene is exported with EncapsulatedSTLLogic, then
sent with ``logic.sendFiles`` to a real Orthanc over C-STORE and over DICOMweb
(STOW-RS).  What arrived is checked through Orthanc's own REST API, not through the
code under test.
"""

import hashlib

import numpy as np
import pydicom
import pytest

import slicer_harness
import slicer_scenes as scenes
from encapsulated_stl.errors import EncapsulatedSTLError
from encapsulated_stl.pacs.peers import FileResult, TransferReport
from orthanc_server import CALLING_AE_TITLE, PASSWORD, USER, free_port

SECRET = "s3cret-do-not-print"


def EncapsulatedSTLLogic():
    from EncapsulatedSTL import EncapsulatedSTLLogic

    return EncapsulatedSTLLogic()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Two segments of a segmentation on the tilted phantom, exported by the module's logic
    (the newest Slicer release under test: sending is the same core in every release)."""
    harness = slicer_harness.for_release(slicer_harness.releases_under_test()[-1])
    if not harness.has_mrml:
        pytest.skip("needs MRML from slicer-core (Python 3.10 and later)")
    phantom = tmp_path_factory.mktemp("phantom")
    scenes.write_tilted_phantom(phantom)
    scene = scenes.build_tilted_scene(phantom, "sheared", lambda v: v > 0)
    block = np.zeros(scenes.PHANTOM_SHAPE, dtype=bool)
    block[3:8, 10:20, 40:55] = True
    scenes.add_labelmap_segment(scene.segmentation, block, scenes.sheared_ijk_to_ras(scene.geometry),
                                "Block", (0.2, 0.5, 0.9))
    folder = tmp_path_factory.mktemp("export")
    logic = EncapsulatedSTLLogic()
    files = logic.exportNode(scene.segmentation, outputDirectory=str(folder), usage="planning")
    assert len(files) == 2
    source = pydicom.dcmread(scene.source_files[0], stop_before_pixels=True)
    return {"files": files, "study_uid": str(source.StudyInstanceUID), "scene": scene}


def digests(paths):
    return {str(p): hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths}


def document(path) -> bytes:
    ds = pydicom.dcmread(path)
    return bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)]


def assert_arrived_byte_identical(orthanc, files, study_uid, tmp_path):
    """Every file is in Orthanc, in the source CT's study, with the same Encapsulated Document."""
    stored = {i["MainDicomTags"]["SOPInstanceUID"]: i["ID"] for i in orthanc.rest("/instances?expand")}
    assert len(stored) == len(files)
    for path in files:
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        assert uid in stored, f"{uid} did not arrive"
        copy = tmp_path / f"{uid}.dcm"
        copy.write_bytes(orthanc.rest_bytes(f"/instances/{stored[uid]}/file"))
        assert document(copy) == document(path)
        assert len(document(path)) > 84  # a real binary STL, not an empty one
    studies = orthanc.studies()
    assert list(studies) == [study_uid]
    assert [s["Modality"] for s in studies[study_uid].values()] == ["M3D"]


def test_send_over_cstore(orthanc, exported, tmp_path):
    files = exported["files"]
    before = digests(files)
    seen = []
    report = EncapsulatedSTLLogic().sendFiles(
        files, orthanc.node, callingAETitle=CALLING_AE_TITLE, onResult=seen.append)
    assert isinstance(report, TransferReport)
    assert report.ok, "\n".join(r.line() for r in report.results)
    assert [r.line() for r in seen] == [r.line() for r in report.results]
    assert all(isinstance(r, FileResult) and r.line().startswith("stored ") for r in seen)
    assert report.summary() == f"2 of 2 file(s) stored ({orthanc.node})"
    assert_arrived_byte_identical(orthanc, files, exported["study_uid"], tmp_path)
    assert digests(files) == before


def test_send_over_stow_rs(orthanc, exported, tmp_path):
    files = exported["files"]
    report = EncapsulatedSTLLogic().sendFiles(files, orthanc.dicomweb_url, user=USER, password=PASSWORD)
    assert report.ok, "\n".join(r.line() for r in report.results)
    assert report.summary() == f"2 of 2 file(s) stored ({orthanc.dicomweb_url})"
    assert_arrived_byte_identical(orthanc, files, exported["study_uid"], tmp_path)


def test_export_and_send(orthanc, exported, tmp_path):
    logic = EncapsulatedSTLLogic()
    segmentation = exported["scene"].segmentation
    files, report = logic.exportAndSend(
        segmentation, orthanc.node, outputDirectory=str(tmp_path), callingAETitle=CALLING_AE_TITLE,
        mergeSegments=True, series_description="merged for printing")
    assert len(files) == 1 and report.ok
    assert_arrived_byte_identical(orthanc, files, exported["study_uid"], tmp_path)
    # a bad destination is refused before anything is exported
    with pytest.raises(EncapsulatedSTLError, match="is not AET@HOST:PORT"):
        logic.exportAndSend(segmentation, "ORTHANC@127.0.0.1", outputDirectory=str(tmp_path / "none"))


def test_server_not_running(exported):
    files = exported["files"]
    before = digests(files)
    port = free_port()  # nothing listens there
    logic = EncapsulatedSTLLogic()
    report = logic.sendFiles(files, f"ORTHANC@127.0.0.1:{port}", callingAETitle=CALLING_AE_TITLE)
    assert not report.ok
    assert len(report.results) == 2 and not report.succeeded
    for result in report.results:
        assert f"cannot connect to ORTHANC@127.0.0.1:{port}" in result.line()
    assert report.summary().startswith("0 of 2 file(s) stored") and "2 not stored" in report.summary()

    url = f"http://127.0.0.1:{port}/dicom-web"
    report = logic.sendFiles(files, url, user=USER, password=SECRET)
    assert not report.ok and not report.succeeded
    lines = "\n".join(r.line() for r in report.results) + report.summary()
    assert f"cannot connect to {url}" in lines
    assert SECRET not in lines
    assert digests(files) == before


def test_bad_destinations_are_clear_errors(exported):
    logic = EncapsulatedSTLLogic()
    files = exported["files"]
    cases = [
        ("", files, {}, "give a destination"),
        ("ORTHANC@pacs", files, {}, "is not AET@HOST:PORT"),
        ("ftp://pacs/dicom-web", files, {}, "is not a DICOMweb URL"),
        ("ORTHANC@127.0.0.1:4242", files, {"user": USER, "password": SECRET}, "is for a DICOMweb server"),
        ("http://127.0.0.1:8042/dicom-web", files, {"tlsCertificate": "c.pem", "tlsKey": "k.pem"},
         "are for DICOM TLS"),
        ("ORTHANC@127.0.0.1:4242", files, {"callingAETitle": "A" * 17}, "invalid calling AE title"),
        ("ORTHANC@127.0.0.1:4242", [], {}, "nothing to send"),
    ]
    for destination, paths, options, message in cases:
        with pytest.raises(EncapsulatedSTLError, match=message) as raised:
            logic.sendFiles(paths or [], destination, **options)
        assert SECRET not in str(raised.value)
    assert logic.isDicomWebDestination(" HTTPS://pacs.example.org/dicom-web")
    assert not logic.isDicomWebDestination("ORTHANC@pacs.example.org:4242")
