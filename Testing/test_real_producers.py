"""Encapsulated STL objects made by real third-party producers installed here, read by our
reader, ``encapsulated-stl info`` and ``encapsulated-stl extract`` as a demanding user would.

PixelMed's ``com.pixelmed.convert.EncapsulateData`` (Debian libpixelmed-java 20220618) is
what NCI Imaging Data Commons made all 2,328 of its Encapsulated STL objects with, from
STL files like the two real Prostate-MRI-US-Biopsy surfaces in
../shared/data/idc_prostate_stl (read there, never copied).  Its usage is
``EncapsulateData inputFile [metadataFile [compositeContextFile]] outputFile``; it
deduces the SOP class from the input's extension (``.stl``, any case) and, on any failure,
logs the exception and still exits 0.  The metadata file is read by
``com.pixelmed.apps.SetCharacteristicsFromSummary`` (CVS 1.29, the Debian jar's own;
javadoc e.g. in github.com/fedorov/pixelmed, com/pixelmed/apps/SetCharacteristicsFromSummary.java):
a JSON object whose ``"top"`` member lists top-level attributes by keyword, a code sequence
written as ``{"cv": ..., "csd": ..., "cm": ...}``.  Without it PixelMed writes no
Measurement Units Code Sequence at all, and IDC's published conversion notebooks
(ImagingDataCommons/idc-dicom-seg-conversions, demo_conversion_stl_to_dicom.ipynb) pass
``""`` as the metadata file and an MR instance as the composite context.

What PixelMed writes (dcmdump), besides the STL bytes as they are (OB, even length here)
and Encapsulated Document Length: a placeholder patient ``Nobody^Noname`` / ``000000``,
new Study, Series and Frame of Reference UIDs under its root 1.3.6.1.4.1.5962.99.1, Series
and Instance Number 1, Manufacturer ``PixelMed``, Manufacturer's Model Name
``com.pixelmed.convert.EncapsulateData``, Software Versions ``NOBUILDDATE``, Content
Qualification RESEARCH, Burned In Annotation and Recognizable Visual Features NO, an empty
Document Title and Concept Name Code Sequence, MIME type ``model/stl``.  With the JSON
it adds ``(0040,08ea) MeasurementUnitsCodeSequence [mm, UCUM, millimeter]``, a Contributing
Equipment Sequence (SetCharacteristicsFromSummary, "Modifying Equipment") and a Coding
Scheme Identification Sequence (DCM, UCUM).  With a composite context file it takes that
instance's patient, study and Frame of Reference (not its series, and it lists no source
instance: no Source Instance Sequence, no Common Instance Reference).

dciodvfy (dicom3tools) on PixelMed's objects of the 0126-Target1 STL:
  with the units JSON:    "EncapsulatedSTL" and nothing else (no error, no warning)
  without any JSON:       Error - Missing attribute Type 1 Required Element=
                          <MeasurementUnitsCodeSequence> Module=<Manufacturing3DModel>
  JSON + GE CT as context: Error - Empty attribute (no value) Type 1C Conditional Element=
                          <DeidentificationMethod> Module=<Patient> (the CT's own
                          PatientIdentityRemoved YES copied over), and warnings: Study
                          Date, Study Time, Study ID missing for a DICOMDIR; Patient's Name
                          <REMOVED> "Retired Person Name form".

DCMTK's ``stl2dcm`` (3.6.7) is driven through every option of its ``--help``: the units
default to UCUM ``um`` (micrometres) whatever the file meant, and with --study-from or
--series-from it copies the reference's equipment over --manufacturer, --manufacturer-model
and --software-versions.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import REPO, missing, require_tool, run_console_script
from encapsulated_stl.cli import main
from encapsulated_stl.errors import NotEncapsulatedSTLError
from encapsulated_stl.iod.model import read_encapsulated_model
from png_files import png_pixels
from stl_samples import binary_stl_by_hand, cube_triangles

IDC_STL = REPO.parent / "shared" / "data" / "idc_prostate_stl"
IDC_MODELS = {
    "lesion-0126-Target1": "Prostate-MRI-US-Biopsy-0126-Target1-seriesUID-*.STL",
    "prostate-0464-ProstateSurface": "Prostate-MRI-US-Biopsy-0464-ProstateSurface-seriesUID-*.STL",
}
PIXELMED_JARS = [Path("/usr/share/java") / name for name in ("pixelmed.jar", "javax.json.jar", "javax.json-api.jar")]
PIXELMED_PACKAGES = "apt-get install libpixelmed-java libjsonp-java"

#: The metadata file SetCharacteristicsFromSummary reads: units in millimetres.
UNITS_MM = {"top": {"MeasurementUnitsCodeSequence": {"cv": "mm", "csd": "UCUM", "cm": "millimeter"}}}

#: CID 7063 "Model Scale Units": millimetres per unit (PS3.16), restated here.
MM_PER_UNIT = {"m": 1000.0, "cm": 10.0, "mm": 1.0, "um": 0.001}

# A cube in patient coordinates, with an odd attribute so nothing is normalised on the way.
CUBE_STL = binary_stl_by_hand(cube_triangles(25.0, origin=(-40.0, 10.0, 600.0)),
                              header=b"synthetic cube", attribute=3)


# -- helpers ---------------------------------------------------------------------


def stl_triangles(data: bytes) -> np.ndarray:
    """The vertices of binary STL ``data``, ``(n, 3, 3)`` float64, read with numpy alone."""
    (count,) = struct.unpack_from("<I", data, 80)
    record = np.dtype([("normal", "<f4", (3,)), ("vertices", "<f4", (3, 3)), ("attribute", "<u2")])
    return np.frombuffer(data, dtype=record, count=count, offset=84)["vertices"].astype(np.float64)


def idc_stl_path(key: str) -> Path:
    """One of the two real IDC STL files, or skip/fail when ../shared is absent."""
    found = sorted(IDC_STL.glob(IDC_MODELS[key]))
    if len(found) != 1:
        missing(f"the real IDC STL file {IDC_MODELS[key]} is not in {IDC_STL} (clone with ../shared beside the repo)")
    return found[0]


def mr_series_uid(stl: Path) -> str:
    """The SeriesInstanceUID of the MR the model was drawn on, from the file's name."""
    return stl.stem.split("-seriesUID-", 1)[1]


@pytest.fixture(params=sorted(IDC_MODELS))
def idc_stl(request) -> Path:
    return idc_stl_path(request.param)


@pytest.fixture(params=["cube", *sorted(IDC_MODELS)])
def stl_source(request, tmp_path) -> Path:
    """The synthetic cube (written to tmp_path) or one of the real IDC files (read in place)."""
    if request.param == "cube":
        path = tmp_path / "cube.stl"
        path.write_bytes(CUBE_STL)
        return path
    return idc_stl_path(request.param)


def pixelmed_encapsulate(stl: Path, out: Path, metadata: dict | None = None,
                         context: Path | None = None) -> Path:
    """Wrap ``stl`` with PixelMed's EncapsulateData into ``out``.

    ``metadata``: the JSON SetCharacteristicsFromSummary reads (written beside ``out``), or
    none at all; ``context``: a DICOM file whose patient and study PixelMed copies.  Skips on
    a user's machine without PixelMed or Java, fails in CI.
    """
    java = shutil.which("java")
    if java is None:
        missing("'java' is not installed (apt-get install default-jre-headless libpixelmed-java libjsonp-java)")
    absent = [str(jar) for jar in PIXELMED_JARS if not jar.is_file()]
    if absent:
        missing(f"PixelMed is not installed: no {', '.join(absent)} ({PIXELMED_PACKAGES})")
    assert stl.suffix.lower() == ".stl", "PixelMed deduces the SOP class from the extension"
    arguments = [str(stl)]
    if metadata is not None or context is not None:
        meta_path = ""
        if metadata is not None:
            meta_path = out.with_suffix(".json")
            meta_path.write_text(json.dumps(metadata))
        arguments.append(str(meta_path))  # "" for none, as IDC's notebooks pass it
    if context is not None:
        arguments.append(str(context))
    result = subprocess.run(
        [java, "-Djava.awt.headless=true", "-cp", ":".join(str(jar) for jar in PIXELMED_JARS),
         "com.pixelmed.convert.EncapsulateData", *arguments, str(out)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    # EncapsulateData logs an exception and exits 0: only the file tells success.
    assert result.returncode == 0 and out.is_file() and out.stat().st_size > len(stl.read_bytes()), (
        f"PixelMed EncapsulateData failed (exit {result.returncode}): {result.stderr[-2000:]}"
    )
    return out


def _one_line_error(code, stderr, *fragments):
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    for fragment in fragments:
        assert str(fragment) in lines[0], lines[0]
    return lines[0]


def _bounds(triangles: np.ndarray):
    points = triangles.reshape(-1, 3)
    return points.min(axis=0), points.max(axis=0)


# -- PixelMed EncapsulateData ----------------------------------------------------


def test_pixelmed_with_units_json_reads_in_mm_and_extracts_the_same_bytes(tmp_path, idc_stl):
    stl = idc_stl.read_bytes()
    expected = stl_triangles(stl)
    out = pixelmed_encapsulate(idc_stl, tmp_path / "pixelmed.dcm", metadata=UNITS_MM)
    written = pydicom.dcmread(out)
    (units,) = written.MeasurementUnitsCodeSequence  # what PixelMed made of the JSON
    assert (units.CodeValue, units.CodingSchemeDesignator) == ("mm", "UCUM")

    model = read_encapsulated_model(out)
    assert model.units == "mm" and model.units_problem is None
    assert model.problems == []
    assert bytes(model.stl) == stl
    assert model.mesh.triangle_count == len(expected)
    np.testing.assert_allclose(model.triangles_mm(), expected, rtol=0, atol=1e-9)
    assert "PixelMed" in model.producer

    code, stdout, stderr = run_console_script("extract", out, "-o", tmp_path / "same.stl")
    assert code == 0, stderr
    assert (tmp_path / "same.stl").read_bytes() == stl

    code, stdout, stderr = run_console_script("info", out, "--json")
    assert code == 0, stderr
    facts = json.loads(stdout)
    assert facts["units"] == "mm" and facts["units_problem"] is None
    assert facts["triangles"] == len(expected) and facts["bounds_assume_mm"] is False
    low, high = _bounds(expected)
    np.testing.assert_allclose(facts["bounds_mm_lps"]["min"], low, atol=1e-6)
    np.testing.assert_allclose(facts["bounds_mm_lps"]["max"], high, atol=1e-6)


def test_preview_draws_a_pixelmed_object_as_the_stl_it_holds(tmp_path, idc_stl):
    """``preview`` of another producer's object (PixelMed, with and without declared units)
    is pixel for pixel the preview of the STL inside it; and the real surface fills the
    picture it is fitted to."""
    pictures = []
    for name, metadata in (("mm", UNITS_MM), ("none", None)):
        out = pixelmed_encapsulate(idc_stl, tmp_path / f"{name}.dcm", metadata=metadata)
        code, _stdout, stderr = run_console_script("preview", out, "-o", tmp_path / f"{name}.png", "--size", "128")
        if code == 2 and "cannot draw" in stderr:
            missing(f"VTK cannot render here: {stderr.strip()}")
        assert code == 0 and stderr == "", stderr
        pictures.append(png_pixels((tmp_path / f"{name}.png").read_bytes()))
    assert run_console_script("preview", idc_stl, "-o", tmp_path / "stl.png", "--size", "128")[0] == 0
    from_stl = png_pixels((tmp_path / "stl.png").read_bytes())
    assert all(np.array_equal(picture, from_stl) for picture in pictures)
    lit = from_stl.max(axis=2) > 0
    rows, columns = np.where(lit.any(axis=1))[0], np.where(lit.any(axis=0))[0]
    # Fitted with a 4 % margin on each side: the larger side spans 128 / 1.08 = 118.5 pixels.
    assert abs(max(rows[-1] - rows[0], columns[-1] - columns[0]) + 1 - 128 / 1.08) <= 1.5


def test_pixelmed_without_json_declares_no_units_and_nothing_is_guessed(tmp_path, idc_stl):
    stl = idc_stl.read_bytes()
    expected = stl_triangles(stl)
    out = pixelmed_encapsulate(idc_stl, tmp_path / "nounits.dcm")
    assert "MeasurementUnitsCodeSequence" not in pydicom.dcmread(out)  # PixelMed wrote none

    model = read_encapsulated_model(out)
    assert bytes(model.stl) == stl
    assert model.units is None
    assert "declares no units" in model.units_problem
    with pytest.raises(NotEncapsulatedSTLError, match="give the units explicitly"):
        model.triangles_mm()
    np.testing.assert_allclose(model.triangles_mm(assume_units="mm"), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.triangles_mm(assume_units="m"), expected * 1000.0, rtol=1e-12, atol=1e-9)

    # Without --units the bytes come out as they went in, units or not.
    code, stdout, stderr = run_console_script("extract", out, "-o", tmp_path / "x.stl")
    assert code == 0, stderr
    assert (tmp_path / "x.stl").read_bytes() == stl

    # Converting needs the units the object does not have: refused, one line, no file.
    code, stdout, stderr = run_console_script("extract", out, "-o", tmp_path / "m.stl", "--units", "m")
    line = _one_line_error(code, stderr, f"error: {out}: ")
    assert "units" in line.split(f"{out}: ", 1)[1]
    assert "declares no units" in line
    assert not (tmp_path / "m.stl").exists()

    code, stdout, stderr = run_console_script("info", out)
    assert code == 0, stderr
    (units_line,) = [row for row in stdout.splitlines() if row.startswith("Units")]
    assert "unknown" in units_line
    code, stdout, stderr = run_console_script("info", out, "--json")
    assert code == 0, stderr
    facts = json.loads(stdout)
    assert facts["units"] is None and "declares no units" in facts["units_problem"]
    assert facts["bounds_assume_mm"] is True



def test_pixelmed_wraps_an_ascii_stl_as_it_is_and_it_reads_with_a_warning(tmp_path, idc_stl):
    """PixelMed wraps any .stl file byte for byte: an ASCII STL (the same real surface
    written as text) becomes an object that reads as ASCII, with one warning line."""
    expected = stl_triangles(idc_stl.read_bytes())
    facets = "".join(
        "facet normal 0 0 0\nouter loop\n" + "".join("vertex %r %r %r\n" % tuple(map(float, v)) for v in t)
        + "endloop\nendfacet\n" for t in expected.astype(np.float32))
    text = ("solid prostate\n" + facets + "endsolid prostate\n").encode()
    (tmp_path / "text.stl").write_bytes(text)
    out = pixelmed_encapsulate(tmp_path / "text.stl", tmp_path / "ascii.dcm", metadata=UNITS_MM)
    model = read_encapsulated_model(out)
    assert model.is_ascii and model.mesh.triangle_count == len(expected)
    np.testing.assert_allclose(model.triangles_mm(), expected, rtol=0, atol=1e-9)  # %r round-trips float32
    assert model.notes == ["the document is an ASCII STL (Supplement 205 stores binary STL); read as ASCII"]
    code, stdout, stderr = run_console_script("extract", out, "-o", tmp_path / "same.stl")
    assert code == 0 and stderr.startswith(f"warning: {out}: the document is an ASCII STL"), stderr
    assert (tmp_path / "same.stl").read_bytes() == text


def test_pixelmed_states_an_odd_file_length_and_pads_it(tmp_path, idc_stl):
    """An STL file with one byte after its last triangle (a line break): PixelMed writes
    that odd length in (0042,0015) and pads; the triangles read, the byte is reported."""
    stl = idc_stl.read_bytes()
    (tmp_path / "odd.stl").write_bytes(stl + b"\n")
    out = pixelmed_encapsulate(tmp_path / "odd.stl", tmp_path / "odd.dcm", metadata=UNITS_MM)
    assert pydicom.dcmread(out).EncapsulatedDocumentLength == len(stl) + 1
    model = read_encapsulated_model(out)
    assert bytes(model.stl) == stl
    count = len(stl_triangles(stl))
    assert model.notes == [f"1 byte after the binary STL's {count} triangles was ignored (an STL file of odd "
                           "length, padded when it was wrapped)"]
    code, stdout, stderr = run_console_script("info", out)
    assert code == 0 and stderr == f"warning: {out}: {model.notes[0]}\n"


def test_extract_converts_undeclared_units_only_when_told_what_they_are(tmp_path, idc_stl):
    stl = idc_stl.read_bytes()
    out = pixelmed_encapsulate(idc_stl, tmp_path / "nounits.dcm")
    code, stdout, stderr = run_console_script("extract", out, "-o", tmp_path / "m.stl", "--units", "m",
                                              "--assume-units", "mm")
    assert code == 0, stderr
    np.testing.assert_allclose(stl_triangles((tmp_path / "m.stl").read_bytes()), stl_triangles(stl) / 1000.0,
                               rtol=1e-6, atol=1e-9)


def test_pixelmed_without_context_invents_patient_study_series_and_frame(tmp_path, idc_stl):
    """Given no MR instance, PixelMed ties the model to nothing: the reader reports what is
    there (placeholders and fresh UIDs) and no source series, and two models wrapped from the
    same MR series land in two studies and two Frames of Reference."""
    first = read_encapsulated_model(pixelmed_encapsulate(idc_stl, tmp_path / "a.dcm", metadata=UNITS_MM))
    second = read_encapsulated_model(pixelmed_encapsulate(idc_stl, tmp_path / "b.dcm", metadata=UNITS_MM))
    mr_series = mr_series_uid(idc_stl)
    for model in (first, second):
        uids = [model.study_instance_uid, model.series_instance_uid, model.frame_of_reference_uid,
                model.sop_instance_uid]
        assert all(uids) and len(set(uids)) == 4
        assert mr_series not in uids
        # PixelMed's placeholder patient (EncapsulateData.java), read back as written.
        assert (model.patient_name, model.patient_id) == ("Nobody^Noname", "000000")
        assert model.source_series == [] and model.source_instance_uids == []
    assert first.study_instance_uid != second.study_instance_uid
    assert first.frame_of_reference_uid != second.frame_of_reference_uid


def test_pixelmed_with_context_file_takes_patient_study_and_frame_not_series(tmp_path, ge_tilted_series):
    """IDC gave EncapsulateData one MR instance of the series; the MR is not here, so a real
    CT instance stands in: its patient, study and Frame of Reference are taken, its series
    is not, and no source instance is listed."""
    stl_path = idc_stl_path("lesion-0126-Target1")
    reference = sorted(ge_tilted_series.iterdir())[0]
    source = pydicom.dcmread(reference, stop_before_pixels=True)
    out = pixelmed_encapsulate(stl_path, tmp_path / "ctx.dcm", metadata=UNITS_MM, context=reference)
    model = read_encapsulated_model(out)
    assert model.units == "mm" and bytes(model.stl) == stl_path.read_bytes()
    assert model.study_instance_uid == source.StudyInstanceUID
    assert model.frame_of_reference_uid == source.FrameOfReferenceUID
    assert (model.patient_name, model.patient_id) == (str(source.PatientName), source.PatientID)
    assert model.series_instance_uid not in (None, source.SeriesInstanceUID)
    assert model.source_series == [] and model.source_instance_uids == []

    # Context without metadata (IDC's own call: "" for the metadata file): still no units.
    bare = read_encapsulated_model(pixelmed_encapsulate(stl_path, tmp_path / "idc.dcm", context=reference))
    assert bare.units is None and bare.study_instance_uid == source.StudyInstanceUID


# -- DCMTK stl2dcm ---------------------------------------------------------------

REFERENCE = "{reference}"  # replaced by a real GE CT instance

#: Every option of ``stl2dcm --help`` (3.6.7), alone where it stands alone, and all at once.
STL2DCM_OPTION_SETS = {
    "defaults": [],
    "title": ["+t", "Prostate surface"],
    "concept-name": ["+cn", "LN", "85041-2", "MR 3D CAM model"],
    "title-and-concept": ["+t", "Target 1", "+cn", "DCM", "129019", "Mixed Modality 3D CAM model"],
    "patient": ["+pn", "Doe^Jane", "+pi", "PMUB-0126", "+pb", "19580317", "+ps", "F"],
    "generate": ["+sg"],
    "study-from": ["+st", REFERENCE],
    "series-from": ["+se", REFERENCE],
    "series-from-increment": ["+se", REFERENCE, "+ii"],
    "series-from-set": ["+se", REFERENCE, "+is", "17"],
    "instance-one": ["+i1"],
    "instance-set": ["+is", "7"],
    "annotation-yes": ["+an"],
    "annotation-no": ["-an"],
    "equipment": ["+sg", "+mn", "ACME Surgical", "+mm", "Modeler", "+ds", "SN-42", "+sv", "2.1"],
    "units-default-um": ["+mu", "UCUM", "um", "um"],
    "units-mm": ["+mu", "UCUM", "mm", "millimeter"],
    "units-cm": ["+mu", "UCUM", "cm", "centimeter"],
    "units-m": ["+mu", "UCUM", "m", "meter"],
    "units-inch": ["+mu", "UCUM", "[in_i]", "inch"],
    "units-not-ucum": ["+mu", "99LOCAL", "mm", "millimetre"],
    "key": ["-k", "SeriesDescription=Prostate surface", "-k", "(0008,1030)=MR prostate"],
    "explicit-little": ["+te"],
    "big-endian": ["+tb"],
    "implicit": ["+ti"],
    "group-length-recalc": ["+g="],
    "group-length-create": ["+g"],
    "group-length-remove": ["-g"],
    "length-explicit": ["+e"],
    "length-undefined": ["-e"],
    "padding-retain": ["-p="],
    "padding-off": ["-p"],
    "padding-create": ["+p", "256", "64"],
    "quiet": ["-q"],
    "verbose": ["-v"],
    "debug": ["-d"],
    "log-level": ["-ll", "warn"],
    "everything": ["+t", "Target 1", "+cn", "LN", "85041-2", "MR 3D CAM model", "+se", REFERENCE, "+ii",
                   "-an", "+mn", "ACME", "+mm", "Modeler", "+ds", "SN-42", "+sv", "2.1",
                   "+mu", "UCUM", "mm", "millimeter", "-k", "SeriesDescription=Lesion",
                   "+tb", "+g", "-e", "+p", "256", "64"],
}
_ARITY = {"+t": 1, "+cn": 3, "+pn": 1, "+pi": 1, "+pb": 1, "+ps": 1, "+st": 1, "+se": 1, "+is": 1,
          "+mn": 1, "+mm": 1, "+ds": 1, "+sv": 1, "+mu": 3, "-k": 1, "+p": 2, "-ll": 1}
_SYNTAXES = {"+te": pydicom.uid.ExplicitVRLittleEndian, "+tb": pydicom.uid.ExplicitVRBigEndian,
             "+ti": pydicom.uid.ImplicitVRLittleEndian}


def _parsed(args: list[str]) -> dict[str, list]:
    """option -> list of its values (one list per occurrence)."""
    found: dict[str, list] = {}
    i = 0
    while i < len(args):
        option, arity = args[i], _ARITY.get(args[i], 0)
        found.setdefault(option, []).append(args[i + 1:i + 1 + arity])
        i += 1 + arity
    return found


@pytest.mark.parametrize("option_set", sorted(STL2DCM_OPTION_SETS))
def test_dcmtk_stl2dcm_every_option_reads_back_as_given(tmp_path, stl_source, ge_tilted_series, option_set, capsys):
    stl2dcm = require_tool("stl2dcm", "apt-get install dcmtk")
    reference = sorted(ge_tilted_series.iterdir())[0]
    source = pydicom.dcmread(reference, stop_before_pixels=True)
    args = [str(reference) if a == REFERENCE else a for a in STL2DCM_OPTION_SETS[option_set]]
    out = tmp_path / "dcmtk.dcm"
    subprocess.run([stl2dcm, *args, str(stl_source), str(out)], check=True, timeout=60,
                   capture_output=True, stdin=subprocess.DEVNULL)
    given = _parsed(args)
    stl = stl_source.read_bytes()
    expected = stl_triangles(stl)

    model = read_encapsulated_model(out)
    written = pydicom.dcmread(out, stop_before_pixels=True)
    assert bytes(model.stl) == stl
    assert model.mesh.triangle_count == len(expected)
    assert model.problems == []

    # Units follow +mu: UCUM um unless told otherwise; outside CID 7063 they are unknown.
    scheme, value, _meaning = given.get("+mu", [["UCUM", "um", "um"]])[-1]
    if scheme == "UCUM" and value in MM_PER_UNIT:
        assert model.units == value and model.units_problem is None
        np.testing.assert_allclose(model.triangles_mm(), expected * MM_PER_UNIT[value], rtol=1e-12, atol=1e-12)
    else:
        assert model.units is None and value in model.units_problem
        with pytest.raises(NotEncapsulatedSTLError, match="give the units explicitly"):
            model.triangles_mm()
        np.testing.assert_allclose(model.triangles_mm(assume_units="mm"), expected, rtol=0, atol=1e-9)
    assert main(["-q", "info", "--json", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["units"] == model.units

    # Title, concept name, patient, instance number: as given.
    assert model.title == (given["+t"][-1][0] if "+t" in given else None)
    concept = written.get("ConceptNameCodeSequence") or []
    if "+cn" in given:
        (item,) = model.dataset.ConceptNameCodeSequence
        assert [item.CodingSchemeDesignator, item.CodeValue, item.CodeMeaning] == given["+cn"][-1]
    else:
        assert len(concept) == 0
    joined = "+se" in given or "+st" in given
    if joined:
        assert model.patient_name == str(source.PatientName) and model.patient_id == source.PatientID
        assert model.study_instance_uid == source.StudyInstanceUID
        assert model.frame_of_reference_uid == source.FrameOfReferenceUID
        # stl2dcm copies the scanner's equipment over +mn/+mm/+sv.
        assert model.producer == f"{source.Manufacturer} {source.ManufacturerModelName} {source.SoftwareVersions}"
    else:
        for option, keyword in (("+pn", "PatientName"), ("+pi", "PatientID"),
                                ("+pb", "PatientBirthDate"), ("+ps", "PatientSex")):
            if option in given:
                assert str(model.dataset.get(keyword)) == given[option][-1][0], keyword
        assert model.study_instance_uid != source.StudyInstanceUID
        assert model.frame_of_reference_uid not in (None, source.FrameOfReferenceUID)
    if "+se" in given:
        assert model.series_instance_uid == source.SeriesInstanceUID
    else:
        assert model.series_instance_uid not in (None, source.SeriesInstanceUID)
    if "+is" in given:
        instance = int(given["+is"][-1][0])
    elif "+se" in given:  # +ii, the default with +se (+i1 is refused with it)
        instance = int(source.InstanceNumber) + 1
    else:
        instance = 1
    assert int(model.dataset.InstanceNumber) == instance
    if "+mn" in given and not joined:
        assert model.producer == " ".join(given[o][-1][0] for o in ("+mn", "+mm", "+sv"))
        assert model.dataset.DeviceSerialNumber == given["+ds"][-1][0]
    assert model.dataset.BurnedInAnnotation == ("NO" if "-an" in given else "YES")
    for key in given.get("-k", []):
        keyword, value = key[0].split("=", 1)
        tag = pydicom.tag.Tag(*(int(part, 16) for part in keyword.strip("()").split(","))) \
            if keyword.startswith("(") else keyword
        assert str(model.dataset[tag].value) == value
    if "SeriesDescription" in str(given.get("-k")):
        assert model.series_description == model.name == str(written.SeriesDescription)

    # Output options took effect, and the object still reads whole.
    syntax = next((_SYNTAXES[o] for o in reversed(args) if o in _SYNTAXES), pydicom.uid.ExplicitVRLittleEndian)
    assert written.file_meta.TransferSyntaxUID == syntax
    if "+g" in given:
        assert 0x00080000 in written
    if "-g" in given:
        assert 0x00080000 not in written
    if "-e" in given:
        assert written["MeasurementUnitsCodeSequence"].is_undefined_length
    if "+p" in given:
        assert out.stat().st_size % int(given["+p"][-1][0]) == 0

    assert main(["-q", "extract", str(out), "-o", str(tmp_path / "same.stl")]) == 0
    assert (tmp_path / "same.stl").read_bytes() == stl
