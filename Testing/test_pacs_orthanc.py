"""send / find / fetch against a real Orthanc (C-STORE, C-FIND, C-GET, STOW-RS, QIDO-RS, WADO-RS).

One Orthanc serves this whole module (see orthanc_server.py); each test starts from
an empty archive.  What the server holds is checked through Orthanc's own REST API,
not through the code under test.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pydicom.uid
import pytest

from encapsulated_stl.cli import main
from encapsulated_stl.iod.encapsulate import ModelMetadata, encapsulate_stl, save_dataset
from encapsulated_stl.pacs.transfer import find_model_series, send_files
from encapsulated_stl.pacs.peers import DicomNode, DicomWebServer
from encapsulated_stl.series.source_series import find_source_series
from encapsulated_stl.stl.format import binary_stl_bytes
from orthanc_server import CALLING_AE_TITLE, PASSWORD, USER, free_port

SECRET = "s3cret-do-not-print"

TETRAHEDRON = np.array(
    [
        [[0, 0, 0], [20, 0, 0], [0, 20, 0]],
        [[0, 0, 0], [0, 20, 0], [0, 0, 20]],
        [[0, 0, 0], [0, 0, 20], [20, 0, 0]],
        [[20, 0, 0], [0, 0, 20], [0, 20, 0]],
    ],
    dtype=np.float32,
) + np.float32([-10, 10, -60])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two Encapsulated STL files made from the real tilted GE CT, and that CT's folder."""
    from conftest import real_series

    ct = real_series("GE_tilt18_uneven")
    source = find_source_series(ct)
    folder = tmp_path_factory.mktemp("models")
    paths = []
    series_uid = pydicom.uid.generate_uid()
    for number, (description, shift) in enumerate((("Skull", 0.0), ("Implant", 25.0)), 1):
        stl = binary_stl_bytes(TETRAHEDRON + np.float32(shift))
        dataset = encapsulate_stl(
            stl, source, ModelMetadata(content_description=description, series_description="3D models",
                                       instance_number=number, series_instance_uid=series_uid),
        )
        paths.append(save_dataset(dataset, folder / f"{description.lower()}.dcm"))
    return {"ct": ct, "source": source, "paths": paths, "folder": folder}


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def digests(paths) -> dict[str, str]:
    files = []
    for path in paths:
        path = Path(path)
        files.extend(sorted(path.rglob("*")) if path.is_dir() else [path])
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def document(path) -> bytes:
    ds = pydicom.dcmread(path)
    return bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)]


def dimse_args(orthanc):
    return ["--to", orthanc.node, "--calling-aet", CALLING_AE_TITLE]


def web_args(orthanc, password=PASSWORD):
    return ["--dicomweb", orthanc.dicomweb_url, "--user", USER, "--password", password]


# --------------------------------------------------------------------------- C-STORE


def test_cstore_source_ct_and_models_keep_the_study_together(orthanc, models, capsys):
    before = digests([models["ct"], *models["paths"]])
    code, out, err = run(capsys, "send", models["ct"], *models["paths"], *dimse_args(orthanc))
    assert code == 0, out + err
    lines = out.strip().splitlines()
    assert sum(line.startswith("stored ") for line in lines) == 30
    assert lines[-1] == f"30 of 30 file(s) stored ({orthanc.node})"

    study_uid = models["source"].study_instance_uid
    studies = orthanc.studies()
    assert list(studies) == [study_uid]
    series = studies[study_uid]
    assert sorted((s["Modality"], s["Instances"]) for s in series.values()) == [("CT", 28), ("M3D", 2)]
    assert models["source"].series_instance_uid in series
    assert digests([models["ct"], *models["paths"]]) == before

    # byte-identical Encapsulated Document, read back through Orthanc's REST API
    for path in models["paths"]:
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        [found] = [i for i in orthanc.rest("/instances?expand") if i["MainDicomTags"]["SOPInstanceUID"] == uid]
        stored = orthanc.directory / "stored.dcm"
        stored.write_bytes(orthanc.rest_bytes(f"/instances/{found['ID']}/file"))
        assert document(stored) == document(path)


def test_cstore_proposes_the_model_classes_explicitly(orthanc, models):
    """The association offers STL, OBJ and MTL even when sending only CT slices."""
    from encapsulated_stl.pacs.dimse import plan_contexts
    from encapsulated_stl.pacs.peers import MODEL_SOP_CLASS_UIDS, collect_files

    files, skipped = collect_files([models["ct"]])
    [(contexts, batch)] = plan_contexts(files)
    offered = {str(c.abstract_syntax) for c in contexts}
    assert set(MODEL_SOP_CLASS_UIDS) | {"1.2.840.10008.5.1.4.1.1.2"} == offered
    assert len(batch) == 28 and not skipped
    report = send_files([models["ct"]], DicomNode.parse(orthanc.node, calling_ae_title=CALLING_AE_TITLE))
    assert report.ok and len(report.succeeded) == 28


def test_dcmtk_storescu_needs_required_contexts_for_encapsulated_stl(orthanc, models):
    """DCMTK 3.6.7's storescu proposes no Encapsulated STL context unless told to (-R)."""
    storescu = dcmtk_storescu()
    version = subprocess.run([storescu, "--version"], capture_output=True, text=True).stdout
    base = [storescu, "-aet", CALLING_AE_TITLE, "-aec", "ORTHANC", "127.0.0.1", str(orthanc.dicom_port)]
    plain = subprocess.run(base + [str(models["paths"][0])], capture_output=True, text=True, timeout=60)
    if "3.6.7" in version:
        assert plain.returncode != 0
        assert "No presentation context for: (STL) 1.2.840.10008.5.1.4.1.1.104.3" in plain.stderr + plain.stdout
        assert orthanc.instance_uids() == set()
    required = subprocess.run(base[:1] + ["-R"] + base[1:] + [str(models["paths"][0])],
                              capture_output=True, text=True, timeout=60)
    assert required.returncode == 0, required.stderr
    assert len(orthanc.instance_uids()) == 1


def dcmtk_storescu() -> str:
    """DCMTK's storescu (pynetdicom installs a storescu of its own earlier on PATH)."""
    import os
    import shutil

    from conftest import missing

    for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        candidate = shutil.which("storescu", path=folder)
        if candidate:
            version = subprocess.run([candidate, "--version"], capture_output=True, text=True)
            if "dcmtk" in (version.stdout + version.stderr).lower():
                return candidate
    missing("DCMTK's storescu is not installed (apt-get install dcmtk)")


# --------------------------------------------------------------------------- STOW-RS, QIDO-RS, C-FIND


def test_stow_rs_then_qido_finds_the_models_by_modality(orthanc, models, capsys):
    code, out, err = run(capsys, "send", *models["paths"], *web_args(orthanc))
    assert code == 0, out + err
    assert out.strip().splitlines()[-1] == f"2 of 2 file(s) stored ({orthanc.dicomweb_url})"
    code, out, err = run(capsys, "find", *web_args(orthanc), "--json")
    assert code == 0, err
    found = json.loads(out)
    source = models["source"]
    assert len(found) == 1
    assert found[0]["modality"] == "M3D" and found[0]["instance_count"] == 2
    assert found[0]["study_instance_uid"] == source.study_instance_uid
    assert found[0]["patient_id"] == str(source.first.PatientID)
    assert found[0]["series_description"] == "3D models"
    assert found[0]["series_instance_uid"] == str(pydicom.dcmread(models["paths"][0]).SeriesInstanceUID)


def test_cfind_lists_only_model_series_with_patient_and_study_filters(orthanc, models, capsys):
    send_files([models["ct"], *models["paths"]], DicomNode.parse(orthanc.node, calling_ae_title=CALLING_AE_TITLE))
    node = DicomNode.parse(orthanc.node, calling_ae_title=CALLING_AE_TITLE)
    source = models["source"]
    [series] = find_model_series(node)
    assert (series.modality, series.instance_count) == ("M3D", 2)
    assert series.study_instance_uid == source.study_instance_uid
    assert series.patient_id == str(source.first.PatientID)
    assert find_model_series(node, patient_id=str(source.first.PatientID)) == [series]
    assert find_model_series(node, study_instance_uid=source.study_instance_uid) == [series]
    assert find_model_series(node, patient_id="nobody-by-this-id") == []
    code, out, err = run(capsys, "find", "--from", orthanc.node, "--calling-aet", CALLING_AE_TITLE)
    assert code == 0, err
    header, row = out.strip().splitlines()
    assert header.split()[:2] == ["PATIENT", "ID"]
    assert series.series_instance_uid in row and str(source.first.PatientID) in row


# --------------------------------------------------------------------------- WADO-RS, C-GET, extract


@pytest.mark.parametrize("protocol", ["wado-rs", "c-get"])
def test_fetch_returns_byte_identical_models_and_extract_works(orthanc, models, capsys, tmp_path, protocol):
    send_files(models["paths"], DicomWebServer(orthanc.dicomweb_url, user=USER, password=PASSWORD))
    series_uid = str(pydicom.dcmread(models["paths"][0]).SeriesInstanceUID)
    peer = web_args(orthanc) if protocol == "wado-rs" else ["--from", orthanc.node, "--calling-aet", CALLING_AE_TITLE]
    out_dir = tmp_path / "fetched"
    code, out, err = run(capsys, "fetch", *peer, "--series-uid", series_uid, "-o", out_dir)
    assert code == 0, out + err
    fetched = sorted(out_dir.glob("*.dcm"))
    assert len(fetched) == 2
    by_uid = {str(pydicom.dcmread(p).SOPInstanceUID): p for p in models["paths"]}
    for path in fetched:
        original = by_uid[path.stem]
        assert document(path) == document(original)
        stl = tmp_path / f"{path.stem}.stl"
        assert main(["-q", "extract", str(path), "-o", str(stl)]) == 0
        assert stl.read_bytes() == document(original)
    # again without --force: the files are kept and the run says so
    code, out, err = run(capsys, "fetch", *peer, "--series-uid", series_uid, "-o", out_dir)
    assert code == 1
    assert out.count("already exists") == 2


def test_fetch_of_an_unknown_series_is_a_clear_failure(orthanc, capsys, tmp_path):
    for peer in (web_args(orthanc), ["--from", orthanc.node, "--calling-aet", CALLING_AE_TITLE]):
        code, out, err = run(capsys, "fetch", *peer, "--series-uid", "1.2.3.4", "-o", tmp_path / "x")
        assert code == 1
        assert err.strip().endswith("has no series 1.2.3.4")


# --------------------------------------------------------------------------- faults


def assert_every_file_failed(out: str, err: str, count: int, reason: str) -> None:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == count
    assert all(re.match(r"^(not sent|failed)\s", line) and reason in line for line in lines), out
    assert f"0 of {count} file(s) stored" in err and f"{count} not stored" in err


def test_server_not_running(models, capsys):
    port = free_port()  # nothing listens there
    before = digests(models["paths"])
    code, out, err = run(capsys, "send", *models["paths"], "--to", f"ORTHANC@127.0.0.1:{port}")
    assert code == 1
    assert_every_file_failed(out, err, 2, f"cannot connect to ORTHANC@127.0.0.1:{port}")
    code, out, err = run(capsys, "send", *models["paths"], "--dicomweb", f"http://127.0.0.1:{port}/dicom-web",
                         "--token", SECRET)
    assert code == 1
    assert f"cannot connect to http://127.0.0.1:{port}/dicom-web" in out
    assert SECRET not in out + err
    code, out, err = run(capsys, "find", "--from", f"ORTHANC@127.0.0.1:{port}")
    assert code == 1 and err.startswith(f"error: cannot connect to ORTHANC@127.0.0.1:{port}")
    assert digests(models["paths"]) == before


def test_dicomweb_server_that_never_answers_times_out():
    """The server takes the connection and says nothing: --timeout still ends the wait.

    dicomweb-client 0.59 and 0.60 (Slicer 5.6 to 5.10) have no timeout of their own.
    The command runs in a process of its own, so a hang fails the test instead of
    stopping the suite.
    """
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog and are never answered
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/dicom-web"
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "encapsulated_stl", "find", "--dicomweb", url, "--timeout", "1"],
            capture_output=True, text=True, timeout=60,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"error: no answer from {url} to QIDO-RS within 1 s"
    assert elapsed < 15  # three attempts of 1 s and the waits between them


def test_wrong_called_ae_title_is_rejected(orthanc, models, capsys):
    node = orthanc.node.replace("ORTHANC@", "NOT-ORTHANC@")
    code, out, err = run(capsys, "send", *models["paths"], "--to", node, "--calling-aet", CALLING_AE_TITLE)
    assert code == 1
    assert_every_file_failed(out, err, 2, "rejected the association permanently: called AE title not recognized")
    assert orthanc.instance_uids() == set()
    assert "bad called AET" in orthanc.log_text()


def test_unknown_calling_ae_title_is_rejected(orthanc, models, capsys):
    code, out, err = run(capsys, "send", *models["paths"], "--to", orthanc.node, "--calling-aet", "STRANGER")
    assert code == 1
    assert_every_file_failed(out, err, 2, "calling AE title not recognized")
    assert "'STRANGER'" in out
    assert orthanc.instance_uids() == set()


def test_credentials_never_appear_in_output_or_logs(orthanc, models, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    code, out, err = run(capsys, "send", *models["paths"], *web_args(orthanc, password=SECRET))
    assert code == 1
    assert_every_file_failed(out, err, 2, "HTTP 401")
    code, out2, err2 = run(capsys, "find", "--dicomweb", orthanc.dicomweb_url.replace("//", f"//{USER}:{SECRET}@"))
    assert code == 1 and "HTTP 401" in err2
    code, out3, err3 = run(capsys, "fetch", "--dicomweb", orthanc.dicomweb_url, "--token", SECRET,
                           "--series-uid", "1.2.3", "-o", str(models["folder"] / "none"))
    assert code == 1
    everything = out + err + out2 + err2 + out3 + err3 + caplog.text
    assert caplog.text  # dicomweb-client and urllib3 did log, at DEBUG
    assert SECRET not in everything
    assert repr(DicomWebServer(orthanc.dicomweb_url, user=USER, password=SECRET)).count(SECRET) == 0
    assert orthanc.instance_uids() == set()


def test_bad_input_exits_2_before_any_transfer(orthanc, models, capsys, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not DICOM")
    code, out, err = run(capsys, "send", text, *dimse_args(orthanc))
    assert code == 2 and err.startswith(f"error: {text}: not a DICOM file")
    code, out, err = run(capsys, "send", tmp_path / "missing.dcm", *dimse_args(orthanc))
    assert code == 2 and "no such file or directory" in err
    code, out, err = run(capsys, "send", *models["paths"], "--to", "ORTHANC@127.0.0.1")
    assert code == 2 and "is not AET@HOST:PORT" in err
    code, out, err = run(capsys, "send", *models["paths"], "--dicomweb", "ftp://127.0.0.1/dicom-web")
    assert code == 2 and "is not a DICOMweb URL" in err
    code, out, err = run(capsys, "send", *models["paths"], *dimse_args(orthanc), "--tls-ca", tmp_path / "ca.pem")
    assert code == 2 and f"{tmp_path / 'ca.pem'}: no such file" in err
    assert orthanc.instance_uids() == set()


def test_special_files_are_never_opened(orthanc, models, capsys, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    for path in models["paths"]:
        (folder / path.name).write_bytes(path.read_bytes())
    os.mkfifo(folder / "pipe.dcm")  # opening it would block until someone writes
    code, out, err = run(capsys, "send", folder, *dimse_args(orthanc))
    assert code == 0, out + err
    assert "2 of 2 file(s) stored" in out
    code, out, err = run(capsys, "send", folder / "pipe.dcm", *dimse_args(orthanc))
    assert code == 2 and err == f"error: {folder / 'pipe.dcm'}: is a FIFO (named pipe), not a file\n"
    code, out, err = run(capsys, "send", "/dev/zero", *dimse_args(orthanc))
    assert code == 2 and err == "error: /dev/zero: is a character device, not a file\n"


def test_directory_with_non_dicom_files_sends_the_dicom_ones(orthanc, models, capsys, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    for path in models["paths"]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "README.txt").write_text("notes")
    code, out, err = run(capsys, "send", folder, *dimse_args(orthanc))
    assert code == 0, out + err
    assert "2 of 2 file(s) stored" in out and "1 non-DICOM file(s) skipped" in out
    assert len(orthanc.instance_uids()) == 2


# --------------------------------------------------------------------------- refused AE titles: find, fetch


UNKNOWN_CALLING = (
    "rejected the association permanently: calling AE title not recognized (the PACS does not know the "
    "calling AE title 'STRANGER'; register it there, with this host's address, or use --calling-aet)"
)
WRONG_CALLED = (
    "rejected the association permanently: called AE title not recognized "
    "(the PACS is not called 'NOT-ORTHANC'; check the AE title before the @)"
)


def assert_one_line_error(code: int, out: str, err: str, message: str) -> None:
    assert (code, out, err) == (1, "", f"error: {message}\n")


def retrievals(orthanc, tmp_path, calling, node=None):
    """``find``, and ``fetch`` with and without --study-uid (a C-FIND first, or the C-GET at once)."""
    peer = ["--from", node or orthanc.node, "--calling-aet", calling]
    fetch = ["fetch", *peer, "--series-uid", "1.2.3.4"]
    return [
        ("find", ["find", *peer]),
        ("fetch", [*fetch, "-o", tmp_path / "fetched"]),
        ("fetch --study-uid", [*fetch, "--study-uid", "1.2.3", "-o", tmp_path / "fetched-from-study"]),
    ]


def assert_nothing_fetched(tmp_path) -> None:
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_find_and_fetch_with_unknown_calling_ae_title_are_rejected(orthanc, capsys, tmp_path):
    for name, args in retrievals(orthanc, tmp_path, "STRANGER"):
        code, out, err = run(capsys, *args)
        assert_one_line_error(code, out, err, f"{orthanc.node} {UNKNOWN_CALLING}")
    assert_nothing_fetched(tmp_path)
    assert orthanc.log_text().count("Rejected association for remote AET STRANGER") >= 3


def test_find_and_fetch_with_wrong_called_ae_title_are_rejected(orthanc, capsys, tmp_path):
    node = orthanc.node.replace("ORTHANC@", "NOT-ORTHANC@")
    for name, args in retrievals(orthanc, tmp_path, CALLING_AE_TITLE, node=node):
        code, out, err = run(capsys, *args)
        assert_one_line_error(code, out, err, f"{node} {WRONG_CALLED}")
    assert_nothing_fetched(tmp_path)
    assert orthanc.log_text().count("bad called AET in the request (NOT-ORTHANC)") >= 3


@pytest.fixture(scope="module")
def echo_for_anyone(tmp_path_factory):
    """An Orthanc that answers C-ECHO from any calling AE title, as Orthanc does by default.

    It then accepts the association of an AE title it does not know, and aborts it
    when that AE title asks for anything else (C-FIND, C-GET, C-STORE): no rejection,
    no status, only an A-ABORT.
    """
    from orthanc_server import OrthancServer

    server = OrthancServer(tmp_path_factory.mktemp("orthanc-echo"), settings={"DicomAlwaysAllowEcho": True}).start()
    yield server
    server.stop()


def refused(node: str, request: str) -> str:
    return (
        f"{node} refused the {request}: it aborted the association without answering (the PACS may not "
        "know or allow the calling AE title 'STRANGER'; register it there, with this host's address, "
        "or use --calling-aet)"
    )


def test_find_and_fetch_refused_after_the_association_was_accepted(echo_for_anyone, capsys, tmp_path):
    """The issue: `find` said "no answer ... (connection closed or timed out)" at once."""
    orthanc = echo_for_anyone
    expected = {
        "find": refused(orthanc.node, "query (C-FIND)"),
        "fetch": refused(orthanc.node, "query (C-FIND)"),  # the series' study is looked up first
        "fetch --study-uid": refused(orthanc.node, "retrieval request (C-GET)"),
    }
    logged = len(orthanc.log_text())
    for name, args in retrievals(orthanc, tmp_path, "STRANGER"):
        code, out, err = run(capsys, *args)
        assert_one_line_error(code, out, err, expected[name])
    assert_nothing_fetched(tmp_path)
    log = orthanc.log_text()[logged:]
    assert log.count('Rejected Find request from remote DICOM modality with AET "STRANGER"') == 2
    assert log.count('Rejected Get request from remote DICOM modality with AET "STRANGER"') == 1
    assert "Rejected association" not in log

    # the same server answers an AE title it knows
    code, out, err = run(capsys, "find", "--from", orthanc.node, "--calling-aet", CALLING_AE_TITLE)
    assert (code, err) == (0, "")


def test_send_refused_after_the_association_was_accepted(echo_for_anyone, models, capsys):
    orthanc = echo_for_anyone
    code, out, err = run(capsys, "send", *models["paths"], "--to", orthanc.node, "--calling-aet", "STRANGER")
    assert code == 1
    message = refused(orthanc.node, "storage request (C-STORE)")
    first, second = models["paths"]
    assert out.splitlines() == [f"{'failed':<8} {first}: {message}", f"{'not sent':<8} {second}: {message}"]
    assert err == f"0 of 2 file(s) stored ({orthanc.node}); 2 not stored\n"
    assert orthanc.rest("/instances") == []
    assert 'Rejected Store request from remote DICOM modality with AET "STRANGER"' in orthanc.log_text()


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize("protocol", ["c-get", "wado-rs"])
def test_info_finds_the_later_versions_a_pacs_holds(orthanc, models, capsys, tmp_path, monkeypatch, protocol):
    import tempfile

    first = models["paths"][0]
    assert main(["-q", "extract", str(first), "-o", str(tmp_path / "edited.stl")]) == 0
    assert main(["-q", "revise", str(first), str(tmp_path / "edited.stl"), "-o", str(tmp_path / "v2.dcm")]) == 0
    send_files([*models["paths"], tmp_path / "v2.dcm"], DicomWebServer(orthanc.dicomweb_url, user=USER,
                                                                      password=PASSWORD))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the study's models are retrieved to
    if protocol == "wado-rs":
        monkeypatch.setenv("ENCAPSULATED_STL_DICOMWEB_PASSWORD", PASSWORD)
        peer, label = [orthanc.dicomweb_url, "--user", USER], orthanc.dicomweb_url
    else:
        peer, label = [orthanc.node, "--calling-aet", CALLING_AE_TITLE], orthanc.node
    code, out, err = run(capsys, "info", first, "--in", *peer)
    assert code == 0, err
    earlier, later = pydicom.dcmread(first), pydicom.dcmread(tmp_path / "v2.dcm")
    assert (f"Later versions      {later.SOPInstanceUID} (an edit of {earlier.SOPInstanceUID}, in {label}, "
            f"series {later.SeriesInstanceUID})") in out
    assert SECRET not in out + err and PASSWORD not in out + err
    assert list(scratch.iterdir()) == []  # the retrieved models are removed again
    code, out, err = run(capsys, "info", tmp_path / "v2.dcm", "--in", *peer)
    assert code == 0 and "Later versions      none in" in out


def test_info_with_a_pacs_that_does_not_answer_is_a_transfer_failure(models, capsys):
    code, out, err = run(capsys, "info", models["paths"][0], "--in", f"NOBODY@127.0.0.1:{free_port()}")
    assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
