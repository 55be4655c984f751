"""`encapsulated-stl from-ct` and `encapsulated-stl demo` as a user runs them."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pydicom
import pytest

from encapsulated_stl.cli import main
from encapsulated_stl.cli.meshing import parse_threshold
from encapsulated_stl.errors import EncapsulatedSTLError
from encapsulated_stl.iod.model import read_encapsulated_model
from encapsulated_stl.inputs.phantom import Sphere, measure_object, write_phantom
from encapsulated_stl.progress import Progress
from png_files import png_pixels

SPHERE = Sphere((4.0, -2.0, 30.0), 10.0, 1000.0)
SMALL = dict(objects=(SPHERE,), slice_count=30, spacing_mm=1.5, rows=64, columns=64,
             pixel_spacing_mm=(0.8, 0.8), table_start_mm=8.0, tilt_degrees=15.0)


@pytest.fixture
def ct(tmp_path):
    return write_phantom(tmp_path / "ct", distractor=True, shuffle_file_names=True, **SMALL)


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exit:  # argparse's own errors (options out of range)
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def test_from_ct_wraps_the_mesh_linked_to_every_slice(ct, tmp_path, capsys):
    output = tmp_path / "bone.dcm"
    code, out, err = run(
        capsys, "from-ct", str(ct.directory), "--threshold", "500", "--series-uid", ct.series_instance_uid,
        "-o", str(output), "--description", "test ball", "--usage", "planning",
    )
    assert code == 0, err
    assert str(output) in out and "triangles" in out
    # the scout inside the series is reported, in one line
    assert err.startswith("notice: ") and err.count("\n") == 1
    assert "1 instance(s) left out of the image stack (localizer: 1)" in err
    model = read_encapsulated_model(output)
    dataset = model.dataset
    slices = [pydicom.dcmread(p, stop_before_pixels=True) for p in ct.files]
    assert sorted(model.source_instance_uids) == sorted(str(s.SOPInstanceUID) for s in slices)
    assert dataset.FrameOfReferenceUID == slices[0].FrameOfReferenceUID
    assert dataset.StudyInstanceUID == slices[0].StudyInstanceUID
    assert dataset.PatientID == slices[0].PatientID
    assert model.units == "mm" and model.description == "test ball" and model.usage == "planning"
    parameters = str(dataset.DerivationAlgorithmSequence[0].AlgorithmParameters)
    assert "500 HU" in parameters and "windowed sinc" in parameters
    found = measure_object(model.triangles_mm(), SPHERE)
    assert found.centre_error <= 0.05 and found.size_error / 2 <= 0.05


def test_options_change_the_mesh_as_asked(ct, tmp_path, capsys):
    uid = ["--series-uid", ct.series_instance_uid, "--quiet"]
    base = ["from-ct", str(ct.directory), "--threshold", "500"]
    assert run(capsys, *base, "-o", str(tmp_path / "a.dcm"), *uid)[0] == 0
    assert run(capsys, *base, "-o", str(tmp_path / "b.dcm"), "--decimate", "500", "--smoothing", "0", *uid)[0] == 0
    assert run(capsys, *base, "-o", str(tmp_path / "c.dcm"), "--units", "cm", "--largest-component", *uid)[0] == 0
    a, b, c = (read_encapsulated_model(tmp_path / f"{n}.dcm") for n in "abc")
    assert abs(len(b.mesh.triangles) - 500) <= 25
    assert c.units == "cm"
    # centimetres on disk, the same millimetres after conversion (float32 rounding)
    assert np.abs(c.triangles_mm() - a.triangles_mm()).max() < 1e-3
    assert np.abs(np.asarray(c.mesh.triangles) * 10 - np.asarray(a.mesh.triangles)).max() < 1e-3


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--threshold", "500"], "choose one with --series-uid"),
        (["--threshold", "bone", "--series-uid", "X"], "--threshold 'bone'"),
        (["--threshold", "800:100"], "upper value must exceed"),
        (["--threshold", "5000", "--series-uid", None], "no surface at 5000 HU: the series' values range from 0 to 1000"),
        (["--threshold", "500", "--series-uid", "1.2.3"], "no series with UID 1.2.3"),
        (["--threshold", "500", "--series-uid", None, "--smoothing", "3"], "argument --smoothing: smoothing 3.0: give a factor from 0"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_file(ct, tmp_path, capsys, argv, expected):
    argv = [ct.series_instance_uid if a is None else a for a in argv]
    output = tmp_path / "out.dcm"
    code, out, err = run(capsys, "from-ct", str(ct.directory), "-o", str(output), *argv)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err
    assert not output.exists() and not list(tmp_path.glob(".out.dcm*"))


def test_existing_output_needs_force(ct, tmp_path, capsys):
    output = tmp_path / "out.dcm"
    output.write_bytes(b"keep me")
    argv = ["from-ct", str(ct.directory), "--threshold", "500", "--series-uid", ct.series_instance_uid, "-o", str(output)]
    code, _out, err = run(capsys, *argv)
    assert code == 2 and "--force" in err and output.read_bytes() == b"keep me"
    assert run(capsys, *argv, "--force")[0] == 0
    assert read_encapsulated_model(output).mesh.triangle_count > 0


def test_thresholds_parse_with_negative_values():
    assert parse_threshold("300") == 300.0
    assert parse_threshold("-500:-100") == (-500.0, -100.0)
    assert parse_threshold("226:3071") == (226.0, 3071.0)
    with pytest.raises(EncapsulatedSTLError):
        parse_threshold("1:2:3")


def test_demo_prints_measured_against_true(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "--quiet", "demo")
    assert code == 0, err
    folder = tmp_path / "encapsulated-stl-demo"
    assert (folder / "phantom-model.dcm").is_file() and len(list((folder / "ct").glob("CT*.dcm"))) == 58
    lines = out.splitlines()
    centre_errors = [float(line.split()[-2]) for line in lines if "centre L,P,S" in line]
    assert len(centre_errors) == 2 and max(centre_errors) <= 0.05
    size_errors = [float(line.split()[-2]) for line in lines if "diameter" in line or "size L,P,S" in line]
    assert len(size_errors) == 2 and max(size_errors) <= 0.05
    volume_errors = [float(line.split()[-2]) for line in lines if line.lstrip().startswith("volume mm3")]
    assert len(volume_errors) == 2 and max(volume_errors) <= 1.0
    misplaced = [float(line.split()[-6]) for line in lines if "away from the truth" in line]
    assert len(misplaced) == 2 and min(misplaced) > 10.0  # the orthogonal reading: centimetres off
    assert "Picture: encapsulated-stl-demo/phantom-model.png (anterior and left views" in out
    picture = png_pixels((folder / "phantom-model.png").read_bytes())
    assert picture.shape == (480, 960, 3)
    # Green true outlines, red see-through misplaced model, in both views (anterior, left).
    for half in (picture[:, :480], picture[:, 480:]):
        green = (half[..., 1] > 200) & (half[..., 0] < 120) & (half[..., 2] < 150)
        red = (half[..., 0] > 120) & (half[..., 1] < 90) & (half[..., 2] < 90)
        assert green.sum() > 300 and red.sum() > 300
    code, _out, err = run(capsys, "demo")
    assert code == 2 and "--force" in err
    assert run(capsys, "--quiet", "demo", "--force")[0] == 0


def test_progress_bars_only_on_a_terminal(ct, tmp_path):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        with Progress(stream=stream).task("Reading slices", 4) as step:
            for _ in range(4):
                step.advance()
    assert "Reading slices" in terminal.getvalue() and "100%" in terminal.getvalue()
    assert pipe.getvalue() == ""
    assert Progress(enabled=False, stream=terminal).enabled is False


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_from_ct_draws_bars_on_a_real_terminal_unless_quiet(ct, tmp_path):
    import pty

    def stderr_on_a_terminal(*extra):
        leader, follower = pty.openpty()
        argv = [sys.executable, "-m", "encapsulated_stl", *extra, "from-ct", str(ct.directory), "--threshold", "500",
                "--series-uid", ct.series_instance_uid, "-o", str(tmp_path / f"m{len(extra)}.dcm")]
        completed = subprocess.run(argv, stderr=follower, stdout=subprocess.PIPE, timeout=120)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        assert completed.returncode == 0
        return b"".join(chunks).decode()

    drawn = stderr_on_a_terminal()
    assert "Reading slices" in drawn and "Extracting surface" in drawn and "100%" in drawn
    assert "Reading slices" not in stderr_on_a_terminal("--quiet")
