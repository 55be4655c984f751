"""send, find and fetch an Encapsulated OBJ model with its Encapsulated MTL object, against a real Orthanc.

Orthanc 1.10.1 stores both SOP classes (1.2.840.10008.5.1.4.1.1.104.4 and .104.5) with
the fixture's configuration as it is, over C-STORE and STOW-RS, and hands them back
over C-GET and WADO-RS.  The OBJ names its MTL by SOP Instance UID, so the MTL may
sit in another series of the study: fetching the OBJ's series brings it all the same.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pydicom.uid
import pytest
from encapsulated_stl.cli import main
from encapsulated_stl.iod.encapsulate import ModelMetadata, NewStudy, save_dataset
from encapsulated_stl.obj.encapsulate import encapsulate_obj, segments_obj
from encapsulated_stl.pacs.peers import DicomNode, DicomWebServer
from encapsulated_stl.pacs.transfer import fetch_series, find_model_series, send_files
from orthanc_server import CALLING_AE_TITLE, PASSWORD, USER

OBJ_CLASS = "1.2.840.10008.5.1.4.1.1.104.4"
MTL_CLASS = "1.2.840.10008.5.1.4.1.1.104.5"
TRIANGLES = np.array([[[0, 0, 0], [20, 0, 0], [0, 20, 0]], [[0, 0, 0], [0, 20, 0], [0, 0, 20]]], dtype=np.float32)


def make_pair(folder, mtl_series: str) -> dict:
    """``model.dcm`` (OBJ, groups Bone and Tumour) and ``model-mtl.dcm`` (their colours) in
    ``folder``; the MTL in the OBJ's series (``same``) or in a series of its own (``other``)."""
    obj, mtl = segments_obj([("Bone", (0.9, 0.8, 0.7), 1.0, TRIANGLES), ("Tumour", (1.0, 0.0, 0.0), 0.5,
                                                                         TRIANGLES + np.float32(30))], "model.mtl")
    model, library = encapsulate_obj(obj, [(mtl, "model.mtl")], None, ModelMetadata(series_description="Colours"),
                                     NewStudy(patient_id="P1"))
    if mtl_series == "other":  # the reference is by SOP Instance UID, so it stays valid
        library.SeriesInstanceUID = pydicom.uid.generate_uid()
        library.SeriesNumber = 99
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "obj": save_dataset(model, folder / "model.dcm"),
        "mtl": save_dataset(library, folder / "model-mtl.dcm"),
        "obj_uid": str(model.SOPInstanceUID), "mtl_uid": str(library.SOPInstanceUID),
        "series": str(model.SeriesInstanceUID), "mtl_series": str(library.SeriesInstanceUID),
        "study": str(model.StudyInstanceUID), "obj_bytes": obj, "mtl_bytes": mtl,
    }


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def document(path) -> bytes:
    ds = pydicom.dcmread(path)
    return bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)]


def peer_args(orthanc, protocol: str, flag: str = "--from") -> list[str]:
    if protocol == "dimse":
        return [flag, orthanc.node, "--calling-aet", CALLING_AE_TITLE]
    return ["--dicomweb", orthanc.dicomweb_url, "--user", USER, "--password", PASSWORD]


def peer(orthanc, protocol: str):
    if protocol == "dimse":
        return DicomNode.parse(orthanc.node, calling_ae_title=CALLING_AE_TITLE)
    return DicomWebServer(orthanc.dicomweb_url, user=USER, password=PASSWORD)


def stored_classes(orthanc) -> dict[str, str]:
    """SOP Instance UID -> SOP Class UID of what Orthanc holds, read from its stored files."""
    found = {}
    for identifier in orthanc.rest("/instances"):
        stored = orthanc.directory / "stored.dcm"
        stored.write_bytes(orthanc.rest_bytes(f"/instances/{identifier}/file"))
        ds = pydicom.dcmread(stored, stop_before_pixels=True)
        found[str(ds.SOPInstanceUID)] = str(ds.SOPClassUID)
    return found


@pytest.mark.parametrize("mtl_series", ["same", "other"])
@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_obj_sent_alone_brings_its_mtl_and_fetch_of_its_series_brings_it_back(
        orthanc, capsys, tmp_path, protocol, mtl_series):
    pair = make_pair(tmp_path / "export", mtl_series)

    # send names the OBJ only: the MTL it references lies beside it, and goes along
    code, out, err = run(capsys, "send", pair["obj"], *peer_args(orthanc, protocol, flag="--to"))
    assert (code, err) == (0, ""), out + err
    assert out.splitlines() == [f"stored   {pair['obj']}", f"stored   {pair['mtl']}",
                                f"2 of 2 file(s) stored ({peer(orthanc, protocol).label})"]
    assert stored_classes(orthanc) == {pair["obj_uid"]: OBJ_CLASS, pair["mtl_uid"]: MTL_CLASS}

    # find: what each series holds
    code, out, err = run(capsys, "find", *peer_args(orthanc, protocol), "--json")
    assert code == 0, err
    holds = {s["series_instance_uid"]: s["formats"] for s in json.loads(out)}
    if mtl_series == "same":
        assert holds == {pair["series"]: {"OBJ": 1, "MTL": 1}}
    else:
        assert holds == {pair["series"]: {"OBJ": 1}, pair["mtl_series"]: {"MTL": 1}}
    code, out, err = run(capsys, "find", *peer_args(orthanc, protocol))
    rows = {line.split()[-1]: line for line in out.splitlines()[1:]}
    if mtl_series == "same":
        assert "1 OBJ + 1 MTL" in rows[pair["series"]]
    else:
        assert "1 OBJ " in rows[pair["series"]] and "1 MTL (materials)" in rows[pair["mtl_series"]]

    # fetch the OBJ's series only: the folder holds the pair
    fetched = tmp_path / "fetched"
    code, out, err = run(capsys, "fetch", *peer_args(orthanc, protocol), "--series-uid", pair["series"],
                         "-o", fetched)
    assert (code, err) == (0, ""), out + err
    assert out.splitlines()[-1] == f"2 of 2 file(s) written ({peer(orthanc, protocol).label})"
    assert sorted(p.name for p in fetched.iterdir()) == sorted([f"{pair['obj_uid']}.dcm", f"{pair['mtl_uid']}.dcm"])
    obj_path, mtl_path = fetched / f"{pair['obj_uid']}.dcm", fetched / f"{pair['mtl_uid']}.dcm"
    assert document(obj_path) == document(pair["obj"]) == pair["obj_bytes"]
    assert document(mtl_path) == document(pair["mtl"]) == pair["mtl_bytes"]
    assert str(pydicom.dcmread(mtl_path).SeriesInstanceUID) == pair["mtl_series"]

    # info finds the MTL beside the fetched OBJ and shows the colours
    code, out, err = run(capsys, "info", obj_path)
    assert code == 0, err
    groups = next(line for line in out.splitlines() if line.startswith("Groups"))
    assert "Bone (2 triangles, material Bone, colour #e6ccb2, opacity 1)" in groups
    assert "Tumour (2 triangles, material Tumour, colour #ff0000, opacity 0.5)" in groups
    assert f"model.mtl ({mtl_path})" in out


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_obj_whose_mtl_is_neither_sent_nor_on_the_peer(orthanc, capsys, tmp_path, protocol):
    pair = make_pair(tmp_path / "export", "other")
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(pair["obj"], lone / "model.dcm")
    label = peer(orthanc, protocol).label
    reference = f"Encapsulated MTL {pair['mtl_uid']} (model.mtl)"

    # send: stored, and one warning line naming the MTL (the files given were all stored: exit 0)
    code, out, err = run(capsys, "send", lone / "model.dcm", *peer_args(orthanc, protocol, flag="--to"))
    assert code == 0
    assert out.splitlines() == [f"stored   {lone / 'model.dcm'}", f"1 of 1 file(s) stored ({label})"]
    assert err == (f"warning: {lone / 'model.dcm'}: references {reference}, which was not among the files sent "
                   f"and is not on {label}: the model will be fetched without its materials\n")

    # fetch: the OBJ is written, one warning names the MTL, and the exit code says the model is incomplete
    fetched = tmp_path / "fetched"
    code, out, err = run(capsys, "fetch", *peer_args(orthanc, protocol), "--series-uid", pair["series"],
                         "-o", fetched)
    assert code == 1
    obj_path = fetched / f"{pair['obj_uid']}.dcm"
    assert out == f"written  {obj_path}\n"
    assert err.splitlines() == [
        f"warning: {obj_path}: references {reference}, which {label} does not hold in study {pair['study']}: "
        "the model was fetched without those materials",
        f"1 of 1 file(s) written ({label}); 1 referenced object(s) not on the peer",
    ]
    assert [p.name for p in fetched.iterdir()] == [obj_path.name]

    # the Python API says the same
    report = fetch_series(peer(orthanc, protocol), pair["series"], tmp_path / "api", study_instance_uid=pair["study"])
    assert not report.ok and report.missing == [pair["mtl_uid"]] and len(report.warnings) == 1
    assert [r.status for r in report.results] == ["written"]

    # once the MTL is sent (from elsewhere), sending the OBJ alone again warns no more
    assert send_files([pair["mtl"]], peer(orthanc, protocol)).ok
    again = send_files([lone / "model.dcm"], peer(orthanc, protocol))
    assert again.ok and again.warnings == []
    report = fetch_series(peer(orthanc, protocol), pair["series"], tmp_path / "api-again")
    assert report.ok and {r.sop_instance_uid for r in report.results} == {pair["obj_uid"], pair["mtl_uid"]}


def test_find_counts_models_and_materials_through_the_python_api(orthanc, tmp_path):
    pair = make_pair(tmp_path / "export", "other")
    assert send_files([pair["obj"], pair["mtl"]], peer(orthanc, "dimse")).ok
    for protocol in ("dimse", "dicomweb"):
        found = {s.series_instance_uid: s for s in find_model_series(peer(orthanc, protocol), patient_id="P1")}
        assert (found[pair["series"]].models, found[pair["series"]].formats) == (1, {"OBJ": 1})
        assert (found[pair["mtl_series"]].models, found[pair["mtl_series"]].formats) == (0, {"MTL": 1})
