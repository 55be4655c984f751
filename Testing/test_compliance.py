"""Every object the commands write is valid as written, for every option and value.

dicom3tools' dciodvfy checks each object made here, in every configuration the
command line offers (each usage, laterality and unit; descriptions, names, numbers and
UIDs at their limits; with and without a source series; from CT, SEG, RTSTRUCT and
NIfTI): no error and no warning of our own, that is none that dciodvfy does not also
raise on the source image the object copies its patient and study from.  Values the
user gives past a limit are refused with exit 2 and one line naming the option and the
limit, nothing written; defaults the project composes are cut to fit with "...".
Series Numbers avoid the study's series the command can see; codes are the current
ones; from-seg lists the segmentation it meshed among the sources.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import generate_uid

from dicom_checks import dciodvfy, own_findings
from encapsulated_stl.iod import codes
from encapsulated_stl.cli import main
from encapsulated_stl.iod.values import CUT_MARKER
from encapsulated_stl.iod.model import read_encapsulated_model
from from_seg_data import sorted_datasets, sphere_contours, sphere_mask, tilted_ct, write_rtstruct, write_seg
from stl_samples import binary_stl_by_hand, cube_triangles

LONG_SERIES_DESCRIPTION = "Thorax 1.0 mm bone kernel, arterial phase, contrast agent, follow-up"  # 68
SEGMENT_LABEL = "Left ventricle myocardium with papillary muscles and trabeculae"  # 63: SegmentLabel is LO
SEG_SERIES_NUMBER = 40  # write_seg's
LIMIT_TEXT = "x" * 64
LIMIT_UTF8 = "ä" * 32  # 64 bytes in UTF-8


def _rewrite(path, **values):
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tilted CT series with a long description (number 2), a second series of the same
    study (number 7) beside it, and a SEG (number 40) and an RTSTRUCT drawn on it."""
    root = tmp_path_factory.mktemp("compliance")
    phantom = tilted_ct(root / "ct")
    for path in phantom.files:
        _rewrite(path, SeriesDescription=LONG_SERIES_DESCRIPTION, SeriesNumber=2)
    other = root / "ct" / "other"
    other.mkdir()
    other_uid = generate_uid()
    for index, path in enumerate(phantom.files[:3]):
        copy = other / f"other{index}.dcm"
        shutil.copyfile(path, copy)
        _rewrite(copy, SeriesInstanceUID=other_uid, SOPInstanceUID=generate_uid(), SeriesNumber=7)
    source = sorted_datasets(phantom)
    shape = (len(source), 64, 64)
    ball = sphere_mask(phantom.geometry, shape)
    seg = write_seg(root / "seg.dcm", source, ball[None], [SEGMENT_LABEL], colors=[(1.0, 0.5, 0.0)])
    rtstruct = write_rtstruct(root / "rtstruct.dcm", source, [(SEGMENT_LABEL, sphere_contours(phantom.geometry))])
    stl = root / "cube.stl"
    stl.write_bytes(binary_stl_by_hand(cube_triangles(20.0, origin=(-4.0, -6.0, 30.0))))
    return dict(root=root, ct=root / "ct", series_uid=str(source[0].SeriesInstanceUID),
                first=phantom.files[0], seg=seg, rtstruct=rtstruct, stl=stl, source=source)


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# -- every configuration, valid ------------------------------------------------------

NEW_STUDY = ("--patient-id", "P1")

WRAP_CONFIGURATIONS = {
    **{f"usage {usage}": ("--usage", usage) for usage in codes.MODEL_USAGES},
    **{f"laterality {side}": ("--laterality", side) for side in codes.LATERALITIES},
    **{f"units {units}": ("--units", units) for units in codes.UNIT_MILLIMETRES},
    "burned-in annotation": ("--burned-in-annotation",),
    "description of 64 characters": ("--description", LIMIT_TEXT),
    "description of 64 bytes of UTF-8": ("--description", LIMIT_UTF8),
    "series description of 64 characters": ("--series-description", LIMIT_TEXT),
    "series number 1": ("--series-number", "1"),
    "series number at the IS maximum": ("--series-number", str(2**31 - 1)),
    "patient name of 64 characters": ("--patient-name", "Doe^" + "J" * 60),
    "patient name in three groups": ("--patient-name", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    "patient name in UTF-8": ("--patient-name", "Müller^Jürgen"),
    "patient ID of 64 characters": ("--patient-id", "9" * 64),
    "accession number of 16 characters": ("--accession-number", "A" * 16),
    "study description of 64 characters": ("--study-description", LIMIT_TEXT),
    "birth date and sex": ("--patient-birth-date", "19691231", "--patient-sex", "O"),
    "study UID of 64 characters": ("--study-uid", "1.2.826.0.1.3680043.8.498." + "1" * 38),
}


@pytest.mark.parametrize("options", WRAP_CONFIGURATIONS.values(), ids=WRAP_CONFIGURATIONS.keys())
def test_wrap_without_a_source_is_valid_in_every_configuration(study, capsys, tmp_path, options):
    out = tmp_path / "model.dcm"
    code, _, err = _run(capsys, "-q", "wrap", study["stl"], "-o", out, *NEW_STUDY, *options)
    assert code == 0, err
    assert own_findings(out) == []


REFERENCE_CONFIGURATIONS = {
    "defaults": (),
    "every description at its limit": ("--description", LIMIT_TEXT, "--series-description", LIMIT_UTF8),
    "diagnostic usage, both sides": ("--usage", "diagnostic", "--laterality", "B"),
    "identity-removed claim kept with its method": ("--deidentification-method", "DICOM PS3.15 Basic Profile"),
}


REVISE_CONFIGURATIONS = {
    "an edit, defaults": (),
    "an edit in micrometres, both sides": ("--units", "um", "--laterality", "B"),
    "a component, every description at its limit": ("--purpose", "component", "--description", LIMIT_TEXT,
                                                    "--series-description", LIMIT_UTF8),
    "a component, series number at the IS maximum": ("--purpose", "component", "--series-number", str(2**31 - 1)),
    "an edit for another use": ("--usage", "education"),
}


@pytest.mark.parametrize("options", REVISE_CONFIGURATIONS.values(), ids=REVISE_CONFIGURATIONS.keys())
def test_revise_is_valid_in_every_configuration(study, capsys, tmp_path, options):
    earlier, out = tmp_path / "earlier.dcm", tmp_path / "new.dcm"
    code, _, err = _run(capsys, "-q", "wrap", study["stl"], "--reference", study["ct"],
                        "--series-uid", study["series_uid"], "-o", earlier, "--usage", "planning")
    assert code == 0, err
    code, _, err = _run(capsys, "-q", "revise", earlier, study["stl"], "-o", out, *options)
    assert code == 0, err
    assert "PredecessorDocumentsSequence" in pydicom.dcmread(out)
    assert own_findings(out, study["first"]) == []


@pytest.mark.parametrize("options", REFERENCE_CONFIGURATIONS.values(), ids=REFERENCE_CONFIGURATIONS.keys())
def test_wrap_with_a_source_is_valid_in_every_configuration(study, capsys, tmp_path, options):
    out = tmp_path / "model.dcm"
    code, _, err = _run(capsys, "-q", "wrap", study["stl"], "--reference", study["ct"],
                        "--series-uid", study["series_uid"], "-o", out, *options)
    assert code == 0, err
    assert own_findings(out, study["first"]) == []


def test_wrap_with_a_real_de_identified_ct_never_invents_a_method(ge_tilted_series, capsys, tmp_path):
    # The GE series says Patient Identity Removed YES and names no method (a Type 1C error
    # of its own): the model does not repeat the claim, says why, and is valid.
    stl = tmp_path / "cube.stl"
    stl.write_bytes(binary_stl_by_hand(cube_triangles(20.0)))
    code, _, err = _run(capsys, "wrap", stl, "--reference", ge_tilted_series, "-o", tmp_path / "a.dcm")
    assert code == 0
    notices = [line for line in err.splitlines() if line.startswith("notice:")]
    assert len(notices) == 1 and "--deidentification-method" in notices[0]
    written = pydicom.dcmread(tmp_path / "a.dcm")
    assert "PatientIdentityRemoved" not in written and "DeidentificationMethod" not in written
    source = sorted(ge_tilted_series.iterdir())[0]
    assert [f for f in own_findings(tmp_path / "a.dcm", source) if "Deidentification" in f] == []
    code, _, err = _run(capsys, "-q", "wrap", stl, "--reference", ge_tilted_series, "-o", tmp_path / "b.dcm",
                        "--deidentification-method", "Site PACS export, PS3.15 E.1")
    assert code == 0, err
    kept = pydicom.dcmread(tmp_path / "b.dcm")
    assert (kept.PatientIdentityRemoved, kept.DeidentificationMethod) == ("YES", "Site PACS export, PS3.15 E.1")
    assert dciodvfy(tmp_path / "b.dcm")[0] == []


FROM_CT_CONFIGURATIONS = {
    "band, no smoothing, largest component": ("--threshold", "200:900", "--smoothing", "0", "--largest-component"),
    "decimated, implant, centimetres, left": ("--threshold", "500", "--decimate", "400", "--usage", "implant",
                                               "--units", "cm", "--laterality", "L"),
    "everything said by the user": ("--threshold", "500", "--description", LIMIT_UTF8, "--series-description",
                                    LIMIT_TEXT, "--series-number", "99", "--burned-in-annotation"),
}


@pytest.mark.parametrize("options", FROM_CT_CONFIGURATIONS.values(), ids=FROM_CT_CONFIGURATIONS.keys())
def test_from_ct_is_valid_in_every_configuration(study, capsys, tmp_path, options):
    out = tmp_path / "ct.dcm"
    code, _, err = _run(capsys, "-q", "from-ct", study["ct"], "--series-uid", study["series_uid"], "-o", out, *options)
    assert code == 0, err
    assert own_findings(out, study["first"]) == []


FROM_SEG_CONFIGURATIONS = {
    "merged, simulation": ("--merge", "--usage", "simulation"),
    "chosen segment, decimated, micrometres": ("--segments", "1", "--decimate", "2000", "--units", "um"),
}


@pytest.mark.parametrize("kind", ["seg", "rtstruct"])
@pytest.mark.parametrize("options", FROM_SEG_CONFIGURATIONS.values(), ids=FROM_SEG_CONFIGURATIONS.keys())
def test_from_seg_is_valid_in_every_configuration(study, capsys, tmp_path, kind, options):
    out = tmp_path / "models"
    code, _, err = _run(capsys, "-q", "from-seg", study[kind], "--reference", study["ct"],
                        "--series-uid", study["series_uid"], "-o", out, *options)
    assert code == 0, err
    for model in out.iterdir():
        assert own_findings(model, study["first"]) == []


def test_from_ct_cuts_its_composed_description_to_fit_and_says_so(study, capsys, tmp_path):
    out = tmp_path / "ct.dcm"
    code, _, err = _run(capsys, "-q", "from-ct", study["ct"], "--series-uid", study["series_uid"],
                        "--threshold", "500", "-o", out)
    assert code == 0, err
    written = pydicom.dcmread(out)
    description = written.ContentDescription
    assert len(description) == 64 and description.endswith(CUT_MARKER)
    assert description.startswith("Iso-surface at 500 HU of CT series 'Thorax")
    assert own_findings(out, study["first"]) == []


@pytest.mark.parametrize("kind", ["seg", "rtstruct"])
def test_from_seg_objects_are_valid_with_composed_descriptions_cut_to_fit(study, capsys, tmp_path, kind):
    out = tmp_path / "models"
    code, _, err = _run(capsys, "-q", "from-seg", study[kind], "--reference", study["ct"],
                        "--series-uid", study["series_uid"], "-o", out, "--description", "Cardiac model")
    assert code == 0, err
    (model,) = sorted(out.iterdir())
    written = pydicom.dcmread(model)
    assert written.ContentDescription.startswith("Cardiac model: ")
    assert len(written.ContentDescription.encode()) <= 64 and written.ContentDescription.endswith(CUT_MARKER)
    assert own_findings(model, study["first"]) == []


# -- values past their limits: refused, naming the option and the limit ----------------

REFUSED = {
    "description of 65 characters": ("--description", "x" * 65, "64"),
    "description of 66 bytes of UTF-8": ("--description", "ä" * 33, "64"),
    "description with a backslash": ("--description", "left\\right", "backslash"),
    "description with a line break": ("--description", "two\nlines", "control character"),
    "series description of 65 characters": ("--series-description", "x" * 65, "64"),
    "patient name of 65 characters": ("--patient-name", "Doe^" + "J" * 61, "64"),
    "patient name of four groups": ("--patient-name", "A=B=C=D", "3 groups"),
    "patient ID of 65 characters": ("--patient-id", "9" * 65, "64"),
    "accession number of 17 characters": ("--accession-number", "A" * 17, "16"),
    "study description of 65 characters": ("--study-description", "x" * 65, "64"),
    "impossible birth date": ("--patient-birth-date", "19691331", "YYYYMMDD"),
    "study UID with a leading zero": ("--study-uid", "1.02.3", "not a UID"),
    "study UID of 65 characters": ("--study-uid", "1." + "2" * 63, "at most 64"),
    "study UID under no registered arc": ("--study-uid", "1.222.3", "registered arc"),
    "series number past the IS maximum": ("--series-number", str(2**31), "range of IS"),
    "series number 0": ("--series-number", "0", "from 1 to 2147483647"),
    "negative series number": ("--series-number", "-1", "from 1 to 2147483647"),
    "de-identification method of 65 characters": ("--deidentification-method", "x" * 65, "64"),
}


@pytest.mark.parametrize("option, value, limit", REFUSED.values(), ids=REFUSED.keys())
def test_a_value_past_its_limit_is_refused_never_cut(study, capsys, tmp_path, option, value, limit):
    out = tmp_path / "model.dcm"
    arguments = ["wrap", study["stl"], "-o", out, *NEW_STUDY, option, value]
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in arguments])
    _, err = capsys.readouterr()
    assert stop.value.code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: argument {option}: ") and limit in lines[0], lines
    assert not out.exists()


def test_a_model_without_a_source_needs_a_patient_id(study, capsys, tmp_path):
    out = tmp_path / "model.dcm"
    code, _, err = _run(capsys, "wrap", study["stl"], "-o", out, "--patient-name", "Doe^Jane")
    assert code == 2 and not out.exists()
    assert err.startswith(f"error: {study['stl']}: ") and "--patient-id" in err and len(err.splitlines()) == 1


# -- Series Numbers ----------------------------------------------------------------------

def test_series_numbers_avoid_the_studys_series_in_sight(study, capsys, tmp_path):
    # CT 2 and series 7 beside it: the model is 8.  The SEG (40) is in the study too,
    # and a second run into the same folder sees the first run's models.
    out = tmp_path / "model.dcm"
    assert _run(capsys, "-q", "wrap", study["stl"], "--reference", study["ct"], "--series-uid",
                study["series_uid"], "-o", out)[0] == 0
    assert pydicom.dcmread(out).SeriesNumber == 8
    models = tmp_path / "models"
    numbers = []
    for _run_number in range(2):
        assert _run(capsys, "-q", "from-seg", study["seg"], "--reference", study["ct"], "--series-uid",
                    study["series_uid"], "-o", models, "--force")[0] == 0
        numbers.append(pydicom.dcmread(next(models.iterdir())).SeriesNumber)
    assert numbers == [SEG_SERIES_NUMBER + 1, SEG_SERIES_NUMBER + 2]


def test_a_series_number_the_study_already_uses_is_refused(study, capsys, tmp_path):
    out = tmp_path / "model.dcm"
    code, _, err = _run(capsys, "wrap", study["stl"], "--reference", study["ct"], "--series-uid",
                        study["series_uid"], "-o", out, "--series-number", "7")
    assert code == 2 and not out.exists()
    assert err.startswith("error: --series-number: Series Number 7 is already used")


# -- codes and references ------------------------------------------------------------------

def test_diagnostic_usage_is_the_current_snomed_code_and_the_retired_one_still_reads(study, capsys, tmp_path):
    out = tmp_path / "model.dcm"
    assert _run(capsys, "-q", "wrap", study["stl"], "-o", out, *NEW_STUDY, "--usage", "diagnostic")[0] == 0
    written = pydicom.dcmread(out)
    code = written.ModelUsageCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == ("261004008", "SCT", "Diagnostic Intent")
    assert read_encapsulated_model(out).usage == "diagnostic"
    code.CodeValue, code.CodingSchemeDesignator = "R-408C3", "SRT"  # as Supplement 205 (2018) wrote it
    written.save_as(tmp_path / "old.dcm")
    assert read_encapsulated_model(tmp_path / "old.dcm").usage == "diagnostic"


def _sources(path):
    written = pydicom.dcmread(path)
    items = {str(item.ReferencedSOPInstanceUID): item for item in written.SourceInstanceSequence}
    listed = {str(instance.ReferencedSOPInstanceUID)
              for series in written.ReferencedSeriesSequence for instance in series.ReferencedInstanceSequence}
    return written, items, listed


@pytest.mark.parametrize("kind, purpose", [("seg", ("121324", "DCM", "Source image")),
                                           ("rtstruct", ("121335", "DCM", "Source Document"))])
def test_from_seg_references_the_segmentation_and_every_image(study, capsys, tmp_path, kind, purpose):
    out = tmp_path / "models"
    assert _run(capsys, "-q", "from-seg", study[kind], "--reference", study["ct"], "--series-uid",
                study["series_uid"], "-o", out)[0] == 0
    written, items, listed = _sources(next(out.iterdir()))
    segmentation = pydicom.dcmread(study[kind], stop_before_pixels=True)
    images = {str(ds.SOPInstanceUID) for ds in study["source"]}
    assert set(items) == images | {str(segmentation.SOPInstanceUID)}
    assert listed == set(items)  # Common Instance Reference: the same instances, by series
    item = items[str(segmentation.SOPInstanceUID)]
    assert item.ReferencedSOPClassUID == segmentation.SOPClassUID
    code = item.PurposeOfReferenceCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == purpose
    for uid in images:
        image_code = items[uid].PurposeOfReferenceCodeSequence[0]
        assert (image_code.CodeValue, image_code.CodeMeaning) == ("121324", "Source image")
    series = {str(s.SeriesInstanceUID) for s in written.ReferencedSeriesSequence}
    assert series == {study["series_uid"], str(segmentation.SeriesInstanceUID)}


def test_wrap_does_not_claim_to_have_made_the_model_and_from_ct_does(study, capsys, tmp_path):
    assert _run(capsys, "-q", "wrap", study["stl"], "-o", tmp_path / "w.dcm", *NEW_STUDY)[0] == 0
    assert "DerivationAlgorithmSequence" not in pydicom.dcmread(tmp_path / "w.dcm")
    assert _run(capsys, "-q", "from-ct", study["ct"], "--series-uid", study["series_uid"], "--threshold", "500",
                "-o", tmp_path / "c.dcm")[0] == 0
    (algorithm,) = pydicom.dcmread(tmp_path / "c.dcm").DerivationAlgorithmSequence
    assert algorithm.AlgorithmName == "encapsulated-stl"
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == codes.ALGORITHM_FAMILY_THRESHOLD.value


def test_patient_attributes_are_copied_never_invented(study, capsys, tmp_path):
    out = tmp_path / "model.dcm"
    assert _run(capsys, "-q", "wrap", study["stl"], "--reference", study["ct"], "--series-uid",
                study["series_uid"], "-o", out)[0] == 0
    written, source = pydicom.dcmread(out), study["source"][0]
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber"):
        assert written.get(keyword) == source.get(keyword), keyword
    assert "PatientIdentityRemoved" not in written or written.PatientIdentityRemoved == source.PatientIdentityRemoved


@pytest.mark.parametrize("command", ["wrap", "from-ct", "from-seg"])
def test_a_source_without_patient_id_needs_one_given(study, capsys, tmp_path, command):
    """Copied as it is, a source's empty Patient ID would be written empty: the command asks
    for the patient's, and writes it only where the source has none."""
    ct = tmp_path / "ct"
    ct.mkdir()
    for path in sorted(study["ct"].glob("*.dcm")):
        shutil.copyfile(path, ct / path.name)
        _rewrite(ct / path.name, PatientID="")
    out = tmp_path / ("models" if command == "from-seg" else "model.dcm")
    arguments = {"wrap": ["wrap", study["stl"], "--reference", ct],
                 "from-ct": ["from-ct", ct, "--threshold", "500"],
                 "from-seg": ["from-seg", study["seg"], "--reference", ct]}[command] + ["-o", out]
    code, _, err = _run(capsys, *arguments)
    assert code == 2 and "no Patient ID" in err and "--patient-id" in err and len(err.splitlines()) == 1
    assert not out.exists() or list(out.iterdir()) == []
    code, _, err = _run(capsys, "-q", *arguments, "--patient-id", "MRN-0042")
    assert code == 0, err
    written = next(out.iterdir()) if out.is_dir() else out
    assert pydicom.dcmread(written).PatientID == "MRN-0042"
    assert own_findings(written, ct / sorted(p.name for p in ct.iterdir())[0]) == []


TEXT_OPTIONS = {"--description": "ContentDescription", "--series-description": "SeriesDescription",
                "--patient-name": "PatientName", "--patient-id": "PatientID",
                "--study-description": "StudyDescription", "--accession-number": "AccessionNumber"}


@settings(max_examples=max(20, int(os.environ.get("FUZZ_EXAMPLES", "200")) // 4))
@given(option=st.sampled_from(sorted(TEXT_OPTIONS)), text=st.text(min_size=1, max_size=80))
def test_any_text_is_written_valid_or_refused_in_one_line(study, tmp_path_factory, option, text):
    """Whatever text a user types: a valid object (dciodvfy finds nothing), or exit 2 with one
    line naming the option, and nothing written."""
    out = tmp_path_factory.mktemp("text") / "model.dcm"
    arguments = ["wrap", str(study["stl"]), "-o", str(out), option, text]
    if option != "--patient-id":
        arguments += list(NEW_STUDY)
    result = io.StringIO()
    with contextlib.redirect_stderr(result), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["-q", *arguments])
        except SystemExit as stop:
            code = stop.code
    if code == 0:
        assert own_findings(out) == [], (option, text)
        return
    lines = result.getvalue().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: argument {option}: "), (text, lines)
    assert not out.exists()


def test_from_seg_of_a_nifti_label_map_is_valid(study, capsys, tmp_path):
    from test_from_seg_labelmaps import LPS_FROM_RAS, _axial_qform, _nifti, label_map_kji, oblique_lps_affine

    lps = oblique_lps_affine()
    nifti = _nifti(tmp_path / "labels.nii.gz", label_map_kji(lps), LPS_FROM_RAS @ lps, _axial_qform())
    out = tmp_path / "models"
    code, _, err = _run(capsys, "-q", "from-seg", nifti, "--reference", study["ct"], "--series-uid",
                        study["series_uid"], "-o", out, "--usage", "education")
    assert code == 0, err
    models = sorted(out.iterdir())
    assert len(models) == 2
    for model in models:
        assert own_findings(model, study["first"]) == []
        assert pydicom.dcmread(model).SeriesNumber == 8  # CT 2 and series 7 beside it; a NIfTI has none


def test_the_demo_writes_a_valid_object(tmp_path, capsys):
    code, _, err = _run(capsys, "-q", "demo", "-o", tmp_path / "demo")
    assert code == 0, err
    (model,) = sorted((tmp_path / "demo").glob("*.dcm"))
    ct = sorted(p for p in (tmp_path / "demo").rglob("*.dcm") if p != model)[0]
    assert own_findings(model, ct) == []


def test_a_segmentation_beside_the_ct_is_never_taken_for_the_source(study, capsys, tmp_path):
    folder = tmp_path / "exam"
    folder.mkdir()
    for path in sorted(study["ct"].glob("*.dcm")):
        shutil.copyfile(path, folder / path.name)
    shutil.copyfile(study["seg"], folder / "seg.dcm")
    shutil.copyfile(study["rtstruct"], folder / "rtstruct.dcm")
    out = tmp_path / "model.dcm"
    code, _, err = _run(capsys, "-q", "wrap", study["stl"], "--reference", folder, "-o", out)
    assert code == 0, err
    assert pydicom.dcmread(out).ReferencedSeriesSequence[0].SeriesInstanceUID == study["series_uid"]
