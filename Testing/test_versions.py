"""Versions of a model (issue 15, point 1): ``revise`` stores an edited or combined model as
a new instance that names the earlier ones in Predecessor Documents Sequence (0040,A360)
with a CID 7062 purpose, in their study and Frame of Reference; ``info`` shows the
earlier versions an object names and, with ``--in``, the later ones in a folder.

Every object is checked with dicom3tools' dciodvfy against the CT it comes from.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pydicom
import pytest

import encapsulated_stl as estl
from dicom_checks import own_findings
from encapsulated_stl.cli import main
from encapsulated_stl.iod.versions import successors_in
from from_seg_data import tilted_ct
from stl_samples import binary_stl_by_hand, cube_triangles

EDITED = ("129010", "DCM", "Edited Model")
COMPONENT = ("129011", "DCM", "Component Model")
STL_CLASS = "1.2.840.10008.5.1.4.1.1.104.3"


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def code_of(item) -> tuple[str, str, str]:
    return (item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning)


def predecessor_items(dataset) -> list[tuple[str, str, str, str, tuple]]:
    """(study, series, SOP class, SOP instance, purpose) of every Predecessor Documents item."""
    return [(study.StudyInstanceUID, series.SeriesInstanceUID, item.ReferencedSOPClassUID,
             item.ReferencedSOPInstanceUID, code_of(item.PurposeOfReferenceCodeSequence[0]))
            for study in dataset.PredecessorDocumentsSequence
            for series in study.ReferencedSeriesSequence
            for item in series.ReferencedSOPSequence]


def common_references(dataset) -> set[str]:
    return {item.ReferencedSOPInstanceUID for series in dataset.get("ReferencedSeriesSequence", [])
            for item in series.ReferencedInstanceSequence}


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """A tilted CT; v1, a guide wrapped on it in cm; a second part w1 in its own series;
    stl files for the new versions (v2 the guide moved 1.5 mm, the assembly of both)."""
    root = tmp_path_factory.mktemp("versions")
    phantom = tilted_ct(root / "ct")
    guide = cube_triangles(2.0, origin=(-0.4, -0.6, 3.0))  # cm
    (root / "v1.stl").write_bytes(binary_stl_by_hand(guide))
    (root / "w1.stl").write_bytes(binary_stl_by_hand(cube_triangles(1.0, origin=(2.0, 0.0, 3.0))))
    (root / "v2.stl").write_bytes(binary_stl_by_hand(guide + np.float32(0.15), header=b"edited in a CAD tool"))
    (root / "assembly.stl").write_bytes(binary_stl_by_hand(np.concatenate(
        [guide, cube_triangles(1.0, origin=(2.0, 0.0, 3.0))])))
    for name, extra in (("v1", ("--description", "Drill guide", "--laterality", "L")), ("w1", ())):
        code = main(["-q", "wrap", str(root / f"{name}.stl"), "--reference", str(root / "ct"), "--units", "cm",
                     "--usage", "planning", "-o", str(root / f"{name}.dcm"), *extra])
        assert code == 0
    return dict(root=root, first=phantom.files[0], ct_uids={pydicom.dcmread(f).SOPInstanceUID for f in phantom.files})


def test_an_edit_is_a_new_instance_in_the_same_study_and_frame_naming_the_earlier_one(versions, capsys, tmp_path):
    root = versions["root"]
    out = tmp_path / "v2.dcm"
    code, stdout, err = run(capsys, "revise", root / "v1.dcm", root / "v2.stl", "-o", out)
    assert code == 0, err
    assert err == ""  # the edit moved 1.5 mm: no warning that it lies apart
    assert "edited version of 1 earlier model(s)" in stdout
    v1, v2 = pydicom.dcmread(root / "v1.dcm"), pydicom.dcmread(out)
    for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientID", "PatientName", "StudyDate", "StudyID"):
        assert v2.get(keyword) == v1.get(keyword), keyword
    assert v2.SeriesInstanceUID != v1.SeriesInstanceUID and v2.SOPInstanceUID != v1.SOPInstanceUID
    assert v2.SeriesNumber > v1.SeriesNumber
    assert predecessor_items(v2) == [(v1.StudyInstanceUID, v1.SeriesInstanceUID, STL_CLASS, v1.SOPInstanceUID,
                                      EDITED)]
    # the same source images, with the same purpose, and the earlier version among the references
    assert [(i.ReferencedSOPInstanceUID, code_of(i.PurposeOfReferenceCodeSequence[0]))
            for i in v2.SourceInstanceSequence] == [
        (i.ReferencedSOPInstanceUID, code_of(i.PurposeOfReferenceCodeSequence[0])) for i in v1.SourceInstanceSequence]
    assert {i.ReferencedSOPInstanceUID for i in v2.SourceInstanceSequence} == versions["ct_uids"]
    assert common_references(v2) == versions["ct_uids"] | {v1.SOPInstanceUID}
    # what it keeps from the earlier model, and its own bytes
    assert v2.MeasurementUnitsCodeSequence[0].CodeValue == "cm"
    assert (v2.ContentDescription, v2.ImageLaterality) == ("Drill guide", "L")
    assert code_of(v2.ModelUsageCodeSequence[0]) == code_of(v1.ModelUsageCodeSequence[0])
    assert (v2.DocumentTitle, code_of(v2.ConceptNameCodeSequence[0])) == (
        v1.DocumentTitle, code_of(v1.ConceptNameCodeSequence[0]))
    assert "DerivationAlgorithmSequence" not in v2  # a mesh made elsewhere, as wrap
    stored = bytes(v2.EncapsulatedDocument)[: v2.EncapsulatedDocumentLength]
    assert stored == (root / "v2.stl").read_bytes()
    assert own_findings(out, versions["first"]) == []

    model = estl.read(out)
    assert [(p.sop_instance_uid, p.series_instance_uid, p.purpose) for p in model.predecessors] == [
        (v1.SOPInstanceUID, v1.SeriesInstanceUID, "edited")]
    assert [len(s.sop_instance_uids) for s in model.source_series] == [len(versions["ct_uids"])]


def test_a_model_built_from_parts_names_each_as_a_component(versions, capsys, tmp_path):
    root = versions["root"]
    out = tmp_path / "assembly.dcm"
    code, _, err = run(capsys, "-q", "revise", root / "v1.dcm", root / "w1.dcm", root / "assembly.stl",
                       "--purpose", "component", "--description", "Guide with spacer", "-o", out)
    assert code == 0, err
    v1, w1, both = (pydicom.dcmread(p) for p in (root / "v1.dcm", root / "w1.dcm", out))
    assert sorted(predecessor_items(both)) == sorted([
        (v1.StudyInstanceUID, v1.SeriesInstanceUID, STL_CLASS, v1.SOPInstanceUID, COMPONENT),
        (w1.StudyInstanceUID, w1.SeriesInstanceUID, STL_CLASS, w1.SOPInstanceUID, COMPONENT)])
    assert len(both.PredecessorDocumentsSequence) == 1  # one study, two series
    assert both.ContentDescription == "Guide with spacer" and "ImageLaterality" not in both  # v1's L is v1's
    assert both.SeriesNumber > max(v1.SeriesNumber, w1.SeriesNumber)
    assert {i.ReferencedSOPInstanceUID for i in both.SourceInstanceSequence} == versions["ct_uids"]
    assert own_findings(out, versions["first"]) == []


def test_info_shows_the_earlier_versions_and_with_in_the_later_ones(versions, capsys, tmp_path):
    root = versions["root"]
    chain = tmp_path / "chain"
    chain.mkdir()
    (chain / "notes.txt").write_text("not DICOM")
    os.symlink(root / "v1.dcm", chain / "link-to-v1.dcm")  # links are not followed
    assert run(capsys, "-q", "revise", root / "v1.dcm", root / "v2.stl", "-o", chain / "v2.dcm")[0] == 0
    assert run(capsys, "-q", "revise", chain / "v2.dcm", root / "v2.stl", "-o", chain / "v3.dcm")[0] == 0
    v1, v2, v3 = (pydicom.dcmread(p).SOPInstanceUID for p in (root / "v1.dcm", chain / "v2.dcm", chain / "v3.dcm"))
    code, out, _ = run(capsys, "info", chain / "v3.dcm")
    assert code == 0 and f"Earlier versions    {v2} (edited)" in out
    code, out, _ = run(capsys, "info", root / "v1.dcm", "--in", chain)
    assert code == 0 and "Earlier versions    none named" in out
    assert f"{v2} (an edit of {v1}, in {chain / 'v2.dcm'}); {v3} (an edit of {v2}, in {chain / 'v3.dcm'})" in out
    code, out, _ = run(capsys, "info", root / "v1.dcm", "--in", chain, "--json")
    facts = json.loads(out)
    assert [(s["sop_instance_uid"], s["version_of"], s["purpose"], s["location"]) for s in facts["successors"]] == [
        (v2, v1, "edited", str(chain / "v2.dcm")), (v3, v2, "edited", str(chain / "v3.dcm"))]
    assert [s.sop_instance_uid for s in successors_in(chain, v2)] == [v3]
    assert successors_in(chain, v3) == []
    code, _, err = run(capsys, "info", root / "v1.dcm", "--in", chain / "notes.txt")
    assert code == 2 and err.strip() == (
        "error: --in: is neither a directory nor a PACS (AET@HOST:PORT or a DICOMweb URL)")


def test_what_the_earlier_model_does_not_say_is_asked_for_or_said(versions, capsys, tmp_path):
    root = versions["root"]
    bare = pydicom.dcmread(root / "v1.dcm")
    del bare.MeasurementUnitsCodeSequence  # as PixelMed writes without its metadata
    bare.PatientID = ""
    bare.save_as(tmp_path / "bare.dcm")
    code, _, err = run(capsys, "revise", tmp_path / "bare.dcm", root / "v2.stl", "-o", tmp_path / "a.dcm")
    assert code == 2 and "the earlier model has no Patient ID" in err and "--patient-id" in err
    assert not (tmp_path / "a.dcm").exists()
    code, _, err = run(capsys, "revise", tmp_path / "bare.dcm", root / "v2.stl", "-o", tmp_path / "a.dcm",
                       "--patient-id", "P-15")
    assert code == 0
    assert "declares no units; the new version's are taken as mm" in err
    made = pydicom.dcmread(tmp_path / "a.dcm")
    assert made.PatientID == "P-15" and made.MeasurementUnitsCodeSequence[0].CodeValue == "mm"

    far = tmp_path / "far.stl"
    far.write_bytes(binary_stl_by_hand(cube_triangles(2.0, origin=(50.0, 0.0, 3.0))))  # 50 cm away
    code, _, err = run(capsys, "revise", root / "v1.dcm", far, "-o", tmp_path / "far.dcm")
    assert code == 0 and "lies more than 10 mm from the bounds of" in err and "same patient coordinates" in err


@pytest.mark.parametrize("case", ["other study", "no Frame of Reference", "not a model", "output is an input",
                                  "series number of the earlier model"])
def test_refusals(versions, capsys, tmp_path, case):
    root = versions["root"]
    earlier, options, out = [root / "v1.dcm"], [], tmp_path / "new.dcm"
    if case == "other study":
        assert main(["-q", "wrap", str(root / "w1.stl"), "--patient-id", "P-9", "-o", str(tmp_path / "o.dcm")]) == 0
        earlier.append(tmp_path / "o.dcm")
        expected = "the earlier models belong to 2 different studies"
    elif case == "no Frame of Reference":
        ds = pydicom.dcmread(root / "v1.dcm")
        del ds.FrameOfReferenceUID
        ds.save_as(tmp_path / "noframe.dcm")
        earlier = [tmp_path / "noframe.dcm"]
        expected = "no Frame of Reference UID"
    elif case == "not a model":
        earlier = [versions["first"]]
        expected = "not an Encapsulated STL"
    elif case == "output is an input":
        out = root / "v1.dcm"
        options = ["--force"]
        expected = "v1.dcm"
    else:
        options = ["--series-number", str(pydicom.dcmread(root / "v1.dcm").SeriesNumber)]
        expected = "Series Number"
    before = (root / "v1.dcm").read_bytes()
    code, _, err = run(capsys, "revise", *earlier, root / "v2.stl", "-o", out, *options)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert expected in err
    assert (root / "v1.dcm").read_bytes() == before
    assert out == root / "v1.dcm" or not out.exists()


def test_python_revise_takes_triangles_and_read_models(versions):
    root = versions["root"]
    v1 = estl.read(root / "v1.dcm")
    made = estl.revise(v1.triangles_mm() / 10.0, v1, content_description="Drill guide, shortened", color=(1, 0, 0))
    assert predecessor_items(made)[0][3:] == (v1.sop_instance_uid, EDITED)
    assert made.ContentDescription == "Drill guide, shortened" and made.RecommendedDisplayCIELabValue
    assert made.MeasurementUnitsCodeSequence[0].CodeValue == "cm"
    with pytest.raises(estl.EncapsulatedSTLError, match="keeps the earlier models' patient and study"):
        estl.revise(v1.triangles_mm(), v1, patient_name="Other^Patient")
    with pytest.raises(estl.EncapsulatedSTLError, match="unknown purpose 'copy'"):
        estl.revise(v1.triangles_mm(), v1, purpose="copy")


def _damaged(v1, folder, case):
    """v1 with one damage of a class test_fuzz_objects found (each read leniently by info)."""
    dataset = pydicom.dcmread(v1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case == "no SOP Instance UID":
            del dataset.SOPInstanceUID
        elif case == "two values in a UID":
            dataset["SeriesInstanceUID"] = pydicom.DataElement(0x0020000E, "UI", "1.2.3\\4.5.6")
        elif case == "a wrong VR":
            dataset["PatientID"] = pydicom.DataElement(0x00100020, "AS", "P-1")
        else:  # a NUL inside a referenced UID
            dataset.SourceInstanceSequence[0]["ReferencedSOPInstanceUID"] = pydicom.DataElement(
                0x00081155, "UI", "1.2.\x003")
        dataset.save_as(folder / "damaged.dcm")
    return folder / "damaged.dcm"


@pytest.mark.parametrize("case, problem", [
    ("no SOP Instance UID", "has no SOP Instance UID"),
    ("two values in a UID", "SeriesInstanceUID (2 values where the standard has 1)"),
    ("a wrong VR", "PatientID (VR AS where the standard has LO)"),
    ("a NUL in a referenced UID", "SourceInstanceSequence item 1 > ReferencedSOPInstanceUID"),
])
def test_a_damaged_earlier_model_is_refused_not_copied(versions, capsys, tmp_path, case, problem):
    damaged = _damaged(versions["root"] / "v1.dcm", tmp_path, case)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no library warning either
        code, _, err = run(capsys, "revise", damaged, versions["root"] / "v2.stl", "-o", tmp_path / "new.dcm")
    assert code == 2 and len(err.strip().splitlines()) == 1 and problem in err, err
    assert not (tmp_path / "new.dcm").exists()
