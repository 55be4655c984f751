"""The command line's promise for bad input, checked as a user meets it: in a process.

Each case below is one class of hostile input the campaign of issue 12 found breaking
the promise.  The promise: exit code 2, exactly one line on stderr, ``error: <file>:
<problem>`` naming the file (or option) at fault, no traceback, no library warning,
nothing written, every input byte-identical, and an answer within the timeout (a
FIFO or ``/dev/zero`` never blocks).  The readers' own tests go further case by case
(test_hostile_stl, test_hostile_objects, test_hostile_series,
test_hostile_segmentations); these prove the same holds end to end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement

from conftest import run_console_script as run_process
from stl_samples import ascii_stl_by_hand, binary_stl_by_hand, cube_triangles

CUBE = cube_triangles(20.0, origin=(-10.0, -10.0, -10.0))


def digests(paths) -> dict:
    found = {}
    for path in map(Path, paths):
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for item in files:
            if item.is_file():
                found[str(item)] = hashlib.sha256(item.read_bytes()).hexdigest()
    return found


def assert_refused(argv, inputs, output, *expected):
    """Run the command; assert the whole promise for bad input."""
    before = digests(inputs)
    code, out, err = run_process(*argv)
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for text in expected:
        assert text in lines[0], err
    assert "Traceback" not in err and "Warning" not in err
    if output is not None:
        output = Path(output)
        assert not output.exists() or (output.is_dir() and not any(output.iterdir()))
        assert not list(output.parent.glob(f".{output.name}.*"))
    assert digests(inputs) == before


# -- STL files ----------------------------------------------------------------------------

ASCII = ascii_stl_by_hand(CUBE).decode()


def _replace_first(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


STL_CASES = {
    "underscore in a number": (_replace_first(ASCII, "vertex ", "vertex 1_000 ").encode(), "line"),
    "garbage line": (_replace_first(ASCII, "outer loop", "outer loop\n  hello world").encode(), "line"),
    "empty ASCII STL": (b"solid empty\nendsolid empty\n", "no triangles"),
    "empty binary STL": (bytes(binary_stl_by_hand(CUBE[:0])), "no triangles"),
    "truncated binary STL": (bytes(binary_stl_by_hand(CUBE))[:-7], "truncated"),
    "NaN vertex": (bytes(binary_stl_by_hand(np.where(CUBE == CUBE.max(), np.nan, CUBE))), "NaN"),
}


def _fourth_coordinate() -> bytes:
    lines = ASCII.split("\n")
    index = next(i for i, line in enumerate(lines) if line.strip().startswith("vertex"))
    lines[index] = lines[index] + " 7"
    return "\n".join(lines).encode()


STL_CASES["a fourth coordinate"] = (_fourth_coordinate(), "line 4")


@pytest.mark.parametrize("case", list(STL_CASES))
def test_wrap_refuses_a_bad_stl(case, tmp_path):
    data, expected = STL_CASES[case]
    stl = tmp_path / "model.stl"
    stl.write_bytes(data)
    output = tmp_path / "out.dcm"
    assert_refused(["wrap", stl, "--patient-id", "P1", "-o", output], [stl], output, f"error: {stl}: ", *([expected] if expected else []))


@pytest.mark.parametrize("case", list(STL_CASES))
def test_preview_refuses_a_bad_stl(case, tmp_path):
    data, expected = STL_CASES[case]
    stl = tmp_path / "model.stl"
    stl.write_bytes(data)
    output = tmp_path / "out.png"
    assert_refused(["preview", stl, "-o", output], [stl], output, f"error: {stl}: ", *([expected] if expected else []))


@pytest.mark.parametrize("case", list(STL_CASES))
def test_revise_refuses_a_bad_stl(case, model_bytes, tmp_path):
    data, expected = STL_CASES[case]
    stl, earlier, output = tmp_path / "model.stl", tmp_path / "earlier.dcm", tmp_path / "out.dcm"
    stl.write_bytes(data)
    earlier.write_bytes(model_bytes)
    assert_refused(["revise", earlier, stl, "-o", output], [stl, earlier], output, f"error: {stl}: ",
                   *([expected] if expected else []))


# -- Encapsulated STL objects ------------------------------------------------------------


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    from encapsulated_stl.cli import main

    folder = tmp_path_factory.mktemp("model")
    stl = folder / "cube.stl"
    stl.write_bytes(binary_stl_by_hand(CUBE))
    assert main(["wrap", str(stl), "--patient-id", "P1", "-o", str(folder / "cube.dcm"), "-q"]) == 0
    return (folder / "cube.dcm").read_bytes()


def _cut(where: str, data: bytes) -> bytes:
    if where == "inside the file meta group":
        return data[:150]
    if where == "missing its last byte":
        return data[:-1]
    if where == "after its document":
        document_end = data.index(b"\x42\x00\x11\x00") + 12 + 84 + 50 * len(CUBE)
        return data[: document_end + 10]
    raise AssertionError(where)


@pytest.mark.parametrize("command", ["info", "extract", "revise", "preview", "compare"])
@pytest.mark.parametrize("where", ["inside the file meta group", "missing its last byte", "after its document"])
def test_a_cut_object_is_refused(model_bytes, tmp_path, command, where):
    path = tmp_path / "cut.dcm"
    path.write_bytes(_cut(where, model_bytes))
    stl = tmp_path / "edited.stl"
    stl.write_bytes(binary_stl_by_hand(CUBE))
    output = tmp_path / {"revise": "out.dcm", "preview": "out.png", "compare": "out.png"}.get(command, "out.stl")
    argv = {"info": ["info", path], "extract": ["extract", path, "-o", output],
            "revise": ["revise", path, stl, "-o", output], "preview": ["preview", path, "-o", output],
            "compare": ["compare", stl, path, "--png", output]}[command]
    assert_refused(argv, [path, stl], output if command != "info" else None, f"error: {path}: ")


# -- source series -------------------------------------------------------------------------


@pytest.fixture
def series(phantom_ct, tmp_path) -> Path:
    copy = tmp_path / "ct"
    shutil.copytree(phantom_ct, copy)
    return copy


def _slices(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _edit(path: Path, **values) -> None:
    """Set attributes of a slice; text is written as the raw bytes of the value, as a
    broken writer would, so that pydicom neither refuses nor warns about writing it."""
    dataset = pydicom.dcmread(path)
    for keyword, value in values.items():
        tag = pydicom.datadict.tag_for_keyword(keyword)
        if value is None:
            del dataset[tag]
        elif isinstance(value, str):
            raw = value.encode() + b" " * (len(value) % 2)
            dataset[tag] = RawDataElement(tag, pydicom.datadict.dictionary_VR(tag), len(raw), raw, 0, False, True)
        else:
            setattr(dataset, keyword, value)
    dataset.save_as(path)


SERIES_CASES = {
    "NaN pixel spacing": (lambda s: _edit(s, PixelSpacing="nan\\0.5"), "PixelSpacing"),
    "zero pixel spacing": (lambda s: _edit(s, PixelSpacing=[0, 0]), "PixelSpacing"),
    "negative pixel spacing": (lambda s: _edit(s, PixelSpacing=[-0.5, -0.5]), "PixelSpacing"),
    "non-orthonormal orientation": (lambda s: _edit(s, ImageOrientationPatient=[1, 0, 0, 0.3, 1, 0]), "ImageOrientationPatient"),
    "text in the position": (lambda s: _edit(s, ImagePositionPatient="abc\\0\\0"), "ImagePositionPatient"),
    "headers promising 65535 x 65535": (lambda s: _edit(s, Rows=65535, Columns=65535), None),
    "no SOP Instance UID": (lambda s: _edit(s, SOPInstanceUID=None), "SOPInstanceUID"),
    "an unreadable slice": (lambda s: s.write_bytes(s.read_bytes()[:-4000]), None),
}


@pytest.mark.parametrize("case", list(SERIES_CASES))
def test_from_ct_refuses_a_bad_series(case, series, tmp_path):
    edit, expected = SERIES_CASES[case]
    victim = _slices(series)[len(_slices(series)) // 2]
    edit(victim)
    output = tmp_path / "out.dcm"
    assert_refused(
        ["from-ct", series, "--threshold", "300", "-o", output],
        [series], output, *([expected] if expected else []),
    )


# -- segmentations --------------------------------------------------------------------------


def _nifti(path: Path, affine=None, zooms=None) -> Path:
    labels = np.zeros((12, 12, 6), dtype=np.uint8)
    labels[3:9, 3:9, 1:5] = 1
    image = nib.Nifti1Image(labels, np.diag([1.0, 1.0, 2.0, 1.0]) if affine is None else affine)
    if zooms is not None:
        image.header["pixdim"][1:4] = zooms
    image.header.set_sform(image.affine if affine is None else affine, code=1)
    nib.save(image, str(path))
    return path


def _nan_sform(path: Path) -> Path:
    _nifti(path)
    image = nib.load(str(path))
    header = image.header.copy()
    data = np.asanyarray(image.dataobj)
    raw = nib.Nifti1Image(data, None, header)
    raw.header["srow_x"] = [np.nan, 0, 0, 0]
    nib.save(raw, str(path))
    return path


def _zero_pixdim(path: Path) -> Path:
    _nifti(path)
    raw = bytearray(path.read_bytes())
    # pixdim[1..3] are float32 at bytes 80..92 of the NIfTI-1 header; no sform or qform
    raw[80:92] = np.zeros(3, "<f4").tobytes()
    raw[252:256] = np.zeros(2, "<i2").tobytes()  # qform_code, sform_code = 0
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("case, make", [("NaN sform", _nan_sform), ("pixdim 0", _zero_pixdim)])
def test_from_seg_refuses_a_bad_nifti(case, make, series, tmp_path):
    nifti = make(tmp_path / "labels.nii")
    output = tmp_path / "models"
    assert_refused(["from-seg", nifti, "--reference", series, "-o", output], [nifti, series], output, f"error: {nifti}: ")


# -- options --------------------------------------------------------------------------------

OPTION_CASES = {
    "smoothing -1": (["from-seg", "x.nii", "--reference", ".", "-o", "out", "--smoothing", "-1"], "--smoothing"),
    "decimate 1": (["from-ct", ".", "--threshold", "300", "-o", "out.dcm", "--decimate", "1"], "--decimate"),
    "empty peer": (["send", "--to", "", "x.dcm"], "--to"),
    "infinite timeout": (["send", "--to", "A@127.0.0.1:4242", "--timeout", "inf", "x.dcm"], "--timeout"),
    "unparseable DICOMweb URL": (["send", "--dicomweb", "http://[::1/dicom-web", "x.dcm"], "--dicomweb"),
    "DICOMweb port out of range": (["fetch", "--dicomweb", "http://h:99999/", "--series-uid", "1", "-o", "d"], "--dicomweb"),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_absurd_options_are_refused(case, tmp_path):
    argv, expected = OPTION_CASES[case]
    assert_refused(argv, [], None, expected)


# -- what a hostile file's values could do to a terminal ------------------------------------


def test_control_characters_from_a_file_are_shown_not_obeyed(model_bytes, tmp_path):
    escape = "\x1b[2J\x1b[31m"  # clear the screen, turn red
    path = tmp_path / "escape.dcm"
    path.write_bytes(model_bytes)
    dataset = pydicom.dcmread(path)
    dataset.ContentDescription = f"skull{escape}"
    dataset.save_as(path)
    code, out, err = run_process("info", path)
    assert code == 0, err
    assert "\x1b" not in out and "skull\\x1b[2J\\x1b[31m" in out

    with warnings.catch_warnings():  # pydicom rightly warns about writing this
        warnings.simplefilter("ignore")
        dataset.SOPClassUID = f"1.2.3{escape}"
        dataset.save_as(path)
    assert_refused(["info", path], [path], None, f"error: {path}: ")
    assert "\x1b" not in run_process("info", path)[2]


def test_info_shows_a_whole_model_with_one_warning_for_what_it_cannot_read(model_bytes, tmp_path):
    path = tmp_path / "colour.dcm"
    path.write_bytes(model_bytes)
    dataset = pydicom.dcmread(path)
    dataset.add_new(0x0062000D, "LO", "red")  # Recommended Display CIELab Value as text
    dataset.save_as(path)
    code, out, err = run_process("info", path)
    assert code == 0
    assert "Triangles" in out and " 12" in out
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {path}: ")
    assert "Recommended Display CIELab Value (0062,000D) is 'red'" in lines[0]
    code, out, err = run_process("info", path, "--json")
    assert code == 0 and err.count("\n") == 1
    assert json.loads(out)["problems"][0].startswith("Recommended Display CIELab Value (0062,000D)")
