"""``encapsulated-stl wrap / extract / info`` and their handling of bad input."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pydicom
import pytest

from encapsulated_stl.cli import main
from encapsulated_stl.iod.model import read_encapsulated_model
from encapsulated_stl.stl.format import parse_binary_stl
from conftest import run_console_script as run_cli
from stl_samples import ascii_stl_by_hand, binary_stl_by_hand, cube_triangles

CUBE = cube_triangles(30.0, origin=(-15.0, 5.0, -80.0))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def stl_file(tmp_path):
    path = tmp_path / "skull.stl"
    path.write_bytes(binary_stl_by_hand(CUBE, header=b"solid-looking CAD header", attribute=7))
    return path


def test_wrap_extract_round_trip_is_byte_identical(tmp_path, stl_file, ge_tilted_series):
    out = tmp_path / "skull.dcm"
    code, stdout, stderr = run_cli(
        "wrap", stl_file, "--reference", ge_tilted_series, "-o", out, "--usage", "planning",
        "--laterality", "U", "--description", "Skull", "--series-description", "Models",
        "--series-number", "77")
    assert code == 0, stderr
    assert "28 instance(s)" in stdout
    ds = pydicom.dcmread(out)
    assert ds.SeriesNumber == 77 and ds.SeriesDescription == "Models"
    assert ds.ModelUsageCodeSequence[0].CodeValue == "129013"
    back = tmp_path / "back.stl"
    assert main(["-q", "extract", str(out), "-o", str(back)]) == 0
    assert back.read_bytes() == stl_file.read_bytes()


def test_extract_with_units_converts_coordinates(tmp_path, stl_file):
    out = tmp_path / "m.dcm"
    assert main(["-q", "wrap", str(stl_file), "-o", str(out), "--patient-id", "P"]) == 0
    assert main(["-q", "extract", str(out), "-o", str(tmp_path / "um.stl"), "--units", "um"]) == 0
    mesh = parse_binary_stl((tmp_path / "um.stl").read_bytes())
    np.testing.assert_allclose(mesh.triangles, CUBE * 1000.0, rtol=1e-6)


def test_wrap_accepts_ascii_and_stores_binary(tmp_path):
    ascii_path = tmp_path / "part.stl"
    ascii_path.write_bytes(ascii_stl_by_hand(CUBE))
    out = tmp_path / "part.dcm"
    code, stdout, _ = run_cli("wrap", ascii_path, "--patient-id", "P1", "-o", out, "--patient-name", "Doe^Jane")
    assert code == 0 and "ASCII STL converted to binary" in stdout
    model = read_encapsulated_model(out)
    assert len(model.stl) == 84 + 50 * 12
    np.testing.assert_allclose(model.triangles_mm(), CUBE, atol=1e-4)


def test_wrap_without_reference_makes_a_new_study_from_patient_arguments(tmp_path, stl_file):
    out = tmp_path / "new.dcm"
    assert main(["-q", "wrap", str(stl_file), "--patient-id", "P1", "-o", str(out), "--patient-name", "Doe^Jane",
                 "--patient-id", "123", "--patient-sex", "F", "--patient-birth-date", "19800102",
                 "--study-description", "Planning", "--units", "cm"]) == 0
    ds = pydicom.dcmread(out)
    assert (str(ds.PatientName), ds.PatientID, ds.PatientSex, ds.PatientBirthDate) == (
        "Doe^Jane", "123", "F", "19800102")
    assert ds.StudyDescription == "Planning"
    assert ds.MeasurementUnitsCodeSequence[0].CodeValue == "cm"
    assert "SourceInstanceSequence" not in ds


def test_reference_given_as_one_file_stands_for_its_whole_series(tmp_path, stl_file, ge_tilted_series):
    one = sorted(ge_tilted_series.iterdir())[5]
    out = tmp_path / "m.dcm"
    assert main(["-q", "wrap", str(stl_file), "--reference", str(one), "-o", str(out)]) == 0
    assert len(pydicom.dcmread(out).SourceInstanceSequence) == 28


@pytest.fixture
def two_series_dir(tmp_path, philips_minus_tilt_series, philips_plus_tilt_series):
    folder = tmp_path / "study"
    for name, source in (("a", philips_minus_tilt_series), ("b", philips_plus_tilt_series)):
        (folder / name).mkdir(parents=True)
        for f in sorted(source.iterdir())[:3]:
            shutil.copy(f, folder / name / f.name)
    return folder


def test_several_series_need_a_choice_and_the_error_lists_them(tmp_path, stl_file, two_series_dir):
    out = tmp_path / "m.dcm"
    code, stdout, stderr = run_cli("wrap", stl_file, "--reference", two_series_dir, "-o", out)
    assert code == 2 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "2 series found; choose one with --series-uid" in lines[0]
    uids = {pydicom.dcmread(next((two_series_dir / n).iterdir())).SeriesInstanceUID for n in "ab"}
    assert all(uid in lines[0] for uid in uids) and "(CT, " in lines[0] and "3 instance(s)" in lines[0]
    assert not out.exists()
    chosen = sorted(uids)[0]
    assert main(["-q", "wrap", str(stl_file), "--reference", str(two_series_dir),
                 "--series-uid", chosen, "-o", str(out)]) == 0
    ds = pydicom.dcmread(out)
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == chosen


def test_info_reports_the_facts(tmp_path, stl_file, ge_tilted_series):
    out = tmp_path / "m.dcm"
    assert main(["-q", "wrap", str(stl_file), "--reference", str(ge_tilted_series), "-o", str(out),
                 "--description", "Skull", "--usage", "education"]) == 0
    code, stdout, _ = run_cli("info", out, "--json")
    facts = json.loads(stdout)
    assert code == 0
    assert facts["triangles"] == 12 and facts["units"] == "mm"
    np.testing.assert_allclose(facts["bounds_mm_lps"]["min"], [-15.0, 5.0, -80.0])
    np.testing.assert_allclose(facts["bounds_mm_lps"]["max"], [15.0, 35.0, -50.0])
    source = pydicom.dcmread(sorted(ge_tilted_series.iterdir())[0], stop_before_pixels=True)
    assert facts["frame_of_reference_uid"] == source.FrameOfReferenceUID
    assert facts["study_instance_uid"] == source.StudyInstanceUID
    assert facts["source_series"] == [{"series_instance_uid": source.SeriesInstanceUID,
                                        "study_instance_uid": source.StudyInstanceUID,
                                        "instances": 28}]
    assert facts["title"] == "CT 3D CAM model" and facts["description"] == "Skull"
    assert facts["usage"] == "education" and "encapsulated-stl" in facts["producer"]
    code, text, _ = run_cli("info", out)
    assert code == 0 and "CT 3D CAM model" in text and "28 instances" in text


def _assert_one_line_error(code, stdout, stderr, *fragments):
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert str(fragment) in lines[0]


def test_bad_inputs_exit_2_with_one_line_naming_file_and_problem(tmp_path, stl_file, ge_tilted_series):
    out = tmp_path / "out.dcm"
    ct_file = sorted(ge_tilted_series.iterdir())[0]
    not_dicom = tmp_path / "notes.dcm"
    not_dicom.write_text("not dicom")
    truncated = tmp_path / "truncated.stl"
    truncated.write_bytes(stl_file.read_bytes()[:-7])
    cases = [
        (("wrap", tmp_path / "missing.stl", "-o", out), ["missing.stl", "no such file"]),
        (("wrap", truncated, "--patient-id", "P1", "-o", out), ["truncated.stl", "truncated"]),
        (("wrap", stl_file, "--reference", tmp_path / "nowhere", "-o", out), ["nowhere", "no such file"]),
        (("wrap", stl_file, "--patient-id", "P1", "-o", out, "--units", "inch"), ["--units", "invalid choice"]),
        (("wrap", stl_file, "--patient-id", "P1", "-o", tmp_path / "no" / "dir" / "x.dcm"), ["does not exist"]),
        (("extract", tmp_path / "missing.dcm", "-o", tmp_path / "x.stl"), ["missing.dcm", "no such file"]),
        (("extract", not_dicom, "-o", tmp_path / "x.stl"), ["notes.dcm", "not a DICOM file"]),
        (("extract", ct_file, "-o", tmp_path / "x.stl"), [ct_file.name, "not an Encapsulated STL", "CT Image Storage"]),
        (("info", ct_file), ["not an Encapsulated STL"]),
    ]
    for args, fragments in cases:
        code, stdout, stderr = run_cli(*args)
        _assert_one_line_error(code, stdout, stderr, *fragments)
        assert not out.exists() and not (tmp_path / "x.stl").exists()
    assert not list(tmp_path.glob(".*.part"))


def test_existing_output_is_kept_without_force_and_inputs_never_change(tmp_path, stl_file):
    out = tmp_path / "out.dcm"
    out.write_bytes(b"precious")
    before = digest(stl_file)
    code, stdout, stderr = run_cli("wrap", stl_file, "--patient-id", "P1", "-o", out)
    _assert_one_line_error(code, stdout, stderr, "out.dcm", "already exists", "--force")
    assert out.read_bytes() == b"precious"
    assert main(["-q", "wrap", str(stl_file), "--patient-id", "P1", "-o", str(out), "--force"]) == 0
    assert read_encapsulated_model(out).mesh.triangle_count == 12
    assert digest(stl_file) == before


def test_a_failed_write_leaves_no_partial_file(tmp_path, stl_file):
    # The disk fills up half-way through writing: nothing may be left behind.
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    from encapsulated_stl.iod.encapsulate import write_atomically
    from encapsulated_stl.errors import OutputError

    def write_then_fail(stream):
        stream.write(b"half a file")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="No space left on device"):
        write_atomically(out_dir / "m.dcm", write_then_fail)
    assert list(out_dir.iterdir()) == []


def _large_stl(path, corrupt_triangle=None):
    """A binary STL above the memory-mapping threshold, optionally with one NaN vertex."""
    from encapsulated_stl.stl.format import MAP_THRESHOLD, RECORD_DTYPE

    count = MAP_THRESHOLD // 50 + 1000
    records = np.zeros(count, dtype=RECORD_DTYPE)
    records["vertices"] = np.random.default_rng(5).uniform(-100, 100, size=(count, 3, 3))
    if corrupt_triangle is not None:
        records["vertices"][corrupt_triangle, 2, 1] = np.nan
    path.write_bytes(b"large".ljust(80, b" ") + np.uint32(count).tobytes() + records.tobytes())
    return path, count


def test_large_models_round_trip_exactly_and_a_nan_anywhere_leaves_no_output(tmp_path):
    # Above 16 MB the model is mapped, and its NaN/Inf scan runs on a second thread
    # while the output is written: the scan must still decide whether it appears.
    good, count = _large_stl(tmp_path / "good.stl")
    assert main(["-q", "wrap", str(good), "-o", str(tmp_path / "good.dcm"), "--patient-id", "P1"]) == 0
    assert main(["-q", "extract", str(tmp_path / "good.dcm"), "-o", str(tmp_path / "back.stl")]) == 0
    assert digest(tmp_path / "back.stl") == digest(good)
    assert read_encapsulated_model(tmp_path / "good.dcm").mesh.triangle_count == count

    for corrupt in (0, count // 2, count - 1):
        bad, _ = _large_stl(tmp_path / f"bad{corrupt}.stl", corrupt_triangle=corrupt)
        before = digest(bad)
        code, stdout, stderr = run_cli("wrap", bad, "-o", tmp_path / "bad.dcm", "--patient-id", "P1")
        _assert_one_line_error(code, stdout, stderr, bad.name, f"triangle {corrupt}", "NaN")
        assert not (tmp_path / "bad.dcm").exists()
        assert digest(bad) == before

    # The same corruption inside a DICOM object (as another producer might store it).
    dataset = pydicom.dcmread(tmp_path / "good.dcm")
    document = bytearray(dataset.EncapsulatedDocument)
    np.frombuffer(document, dtype=np.float32, count=1, offset=84 + 50 * (count - 1) + 12)[...] = np.inf
    dataset.EncapsulatedDocument = bytes(document)
    dataset.save_as(tmp_path / "corrupt.dcm")
    code, stdout, stderr = run_cli("extract", tmp_path / "corrupt.dcm", "-o", tmp_path / "x.stl")
    _assert_one_line_error(code, stdout, stderr, "corrupt.dcm", f"triangle {count - 1}", "infinite")
    assert not (tmp_path / "x.stl").exists()
    assert not list(tmp_path.glob(".*.part"))
