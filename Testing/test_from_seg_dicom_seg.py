"""``from-seg`` on DICOM SEG (highdicom, binary and fractional) over a tilted, oblique CT.

The CT is a real DICOM series from :mod:`encapsulated_stl.inputs.phantom`: 22 degree gantry
tilt, 30 degree in-plane rotation, 1 x 1 mm pixels, 1.5 mm table steps with one
slice missing (3 mm gap).  The SEG holds a sphere of radius 13 mm computed at each
voxel's exact patient position, so the mesh must come back at the true centre and
radius; reading the same voxels with a tilt-ignoring orthogonal geometry misplaces
it by centimetres.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from encapsulated_stl.cli import main
from encapsulated_stl.iod.color import rgb_from_dicom_lab
from encapsulated_stl.inputs.segments import read_segments
from encapsulated_stl.series.source_series import reference_series
from encapsulated_stl.mesh.surface import extract_surface
from from_seg_data import (
    CENTRE, RADIUS, enclosed_volume, model_triangles, sorted_datasets, sphere_errors, sphere_fraction,
    sphere_mask, tilted_ct, write_label_map_seg, write_seg,
)

SMALL_CENTRE = np.array([-8.0, 6.0, 38.0])
SMALL_RADIUS = 5.0


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom_seg")
    phantom = tilted_ct(root / "ct", tilt=-22.0, rotation=30.0, missing_slices=(12,))
    source = sorted_datasets(phantom)
    shape = (len(source), 64, 64)
    geometry = phantom.geometry
    ball = sphere_mask(geometry, shape)
    small = sphere_mask(geometry, shape, SMALL_CENTRE, SMALL_RADIUS)
    empty = np.zeros(shape, dtype=np.uint8)
    binary = write_seg(root / "binary.dcm", source, np.stack([ball, small, empty]),
                       ["Ball", "Small ball", "Nothing"], colors=[(1.0, 0.5, 0.0), (0.2, 0.4, 1.0), None])
    fraction = sphere_fraction(geometry, shape)
    fractional = write_seg(root / "fractional.dcm", source, fraction[None], ["Ball"], kind="FRACTIONAL")
    return dict(root=root, phantom=phantom, binary=binary, fractional=fractional, shape=shape)


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_each_segment_becomes_a_model_named_coloured_and_grouped(case, capsys, tmp_path):
    code, out, err = _run(capsys, "from-seg", case["binary"], "--reference", case["root"] / "ct",
                          "-o", tmp_path / "models")
    assert code == 0, err
    # the all-zero segment is skipped with a notice, not an error
    assert "skipped empty segment '3 Nothing'" in err
    files = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert files == ["1_Ball.dcm", "2_Small_ball.dcm"]
    ball = pydicom.dcmread(tmp_path / "models" / "1_Ball.dcm")
    small = pydicom.dcmread(tmp_path / "models" / "2_Small_ball.dcm")
    ct = pydicom.dcmread(case["phantom"].files[0], stop_before_pixels=True)
    assert ball.ModelGroupUID == small.ModelGroupUID
    assert ball.SeriesInstanceUID == small.SeriesInstanceUID
    assert ball.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert ball.StudyInstanceUID == ct.StudyInstanceUID
    assert ball.ContentDescription.startswith("Ball")
    referenced = {item.ReferencedSOPInstanceUID for item in ball.SourceInstanceSequence}
    seg = pydicom.dcmread(case["binary"], stop_before_pixels=True)
    images = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in case["phantom"].files}
    assert len(images) == 35 and referenced == images | {seg.SOPInstanceUID}  # every image, and the SEG
    # colour survives the SEG CIELab -> sRGB -> CIELab round trip within 1/255
    assert np.allclose(rgb_from_dicom_lab(ball.RecommendedDisplayCIELabValue), (1.0, 0.5, 0.0), atol=1 / 255)
    assert np.allclose(rgb_from_dicom_lab(small.RecommendedDisplayCIELabValue), (0.2, 0.4, 1.0), atol=1 / 255)

    # A binary mask puts the boundary half-way between inside and outside voxel
    # centres, so single vertices are off by up to about half a voxel (0.7 mm
    # here); the errors average out over the sphere, so its fitted centre and
    # radius are exact to a few hundredths of a mm.  Measured: centre 0.011 mm,
    # radius 0.006 mm, RMS 0.22 mm (voxels 1 x 1 x 1.4 mm, one 2.8 mm gap).
    errors = sphere_errors(model_triangles(tmp_path / "models" / "1_Ball.dcm"))
    assert errors["centre"] <= 0.05
    assert errors["radius"] <= 0.1
    assert errors["rms"] <= 0.3
    assert abs(errors["volume"]) <= 0.02
    small_errors = sphere_errors(model_triangles(tmp_path / "models" / "2_Small_ball.dcm"),
                                 SMALL_CENTRE, SMALL_RADIUS)
    assert small_errors["centre"] <= 0.1 and small_errors["radius"] <= 0.15


def test_fractional_seg_is_sub_voxel_and_a_tilt_ignoring_reading_is_centimetres_off(case):
    series = reference_series(case["root"] / "ct")
    segment = read_segments(case["fractional"], series)[0].cropped()
    assert segment.scale == pytest.approx(1 / 255)
    triangles = extract_surface(segment.volume, segment.geometry, segment.level)
    # Partial-volume fractions place the surface within the voxel: measured centre
    # 0.005 mm, radius 0.014 mm, RMS 0.046 mm (8-bit fractions, 4^3 sub-samples).
    errors = sphere_errors(triangles)
    assert errors["centre"] <= 0.02
    assert errors["radius"] <= 0.05
    assert errors["rms"] <= 0.08
    assert abs(errors["volume"]) <= 0.01

    # The same voxels through the orthogonal reading (first slice, slice normal,
    # mean spacing), as tilt-ignoring tools do: measured 10.2 mm off.
    whole = read_segments(case["fractional"], series)[0]
    wrong = extract_surface(whole.volume, case["phantom"].geometry.orthogonal_geometry(), 0.5)
    assert sphere_errors(wrong)["centre"] >= 5.0


def test_segments_by_name_or_number_and_merge(case, capsys, tmp_path):
    code, _out, err = _run(capsys, "from-seg", case["binary"], "--reference", case["root"] / "ct",
                           "-o", tmp_path, "--segments", "small BALL", "1", "--merge", "-q")
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["merged_Small_ball_Ball.dcm"]
    merged = model_triangles(tmp_path / "merged_Small_ball_Ball.dcm")
    ball_volume = 4 / 3 * np.pi * (RADIUS**3 + SMALL_RADIUS**3)
    assert enclosed_volume(merged) == pytest.approx(ball_volume, rel=0.02)


def test_bad_requests_exit_2_naming_the_file(case, capsys, tmp_path):
    code, _out, err = _run(capsys, "from-seg", case["binary"], "--reference", case["root"] / "ct",
                           "-o", tmp_path, "--segments", "Liver")
    assert code == 2
    assert err.count("\n") == 1 and str(case["binary"]) in err
    assert "no segment 'Liver'" in err and "1 'Ball'" in err

    # an empty segment asked for by name is an error, not a silent skip
    code, _out, err = _run(capsys, "from-seg", case["binary"], "--reference", case["root"] / "ct",
                           "-o", tmp_path, "--segments", "Nothing")
    assert code == 2 and "empty" in err and str(case["binary"]) in err

    # another patient's series: its Frame of Reference differs
    other = tilted_ct(tmp_path / "other", tilt=10.0, slice_count=4)
    code, _out, err = _run(capsys, "from-seg", case["binary"], "--reference", other.directory,
                           "-o", tmp_path / "x")
    assert code == 2 and "Frame of Reference" in err and str(case["binary"]) in err
    assert not (tmp_path / "x").exists()

    # a CT image is not a segmentation
    code, _out, err = _run(capsys, "from-seg", case["phantom"].files[0], "--reference",
                           case["root"] / "ct", "-o", tmp_path / "x")
    assert code == 2 and "not a segmentation" in err

    # a truncated SEG
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(case["binary"].read_bytes()[:3000])
    code, _out, err = _run(capsys, "from-seg", broken, "--reference", case["root"] / "ct",
                           "-o", tmp_path / "x")
    assert code == 2 and str(broken) in err and err.count("\n") == 1


def test_without_the_source_grid_frames_stack_by_their_own_positions(tmp_path):
    # highdicom leaves out empty frames, so a SEG's own frame positions cover only
    # the slices where some segment is: one empty slice is added beyond each end so
    # the caps close half a step out, as on the source grid (without it the
    # sphere's centre moves by 0.6 mm).
    phantom = tilted_ct(tmp_path / "ct", tilt=-22.0, rotation=30.0)
    source = sorted_datasets(phantom)
    shape = (len(source), 64, 64)
    far_centre, far_radius = SMALL_CENTRE, SMALL_RADIUS
    masks = np.stack([sphere_mask(phantom.geometry, shape),
                      sphere_mask(phantom.geometry, shape, far_centre, far_radius)])
    binary = write_seg(tmp_path / "binary.dcm", source, masks, ["Ball", "Far ball"])
    label_map = write_label_map_seg(tmp_path / "labelmap.dcm", source, masks[0] + 2 * masks[1],
                                    ["Ball", "Far ball"])
    for path in (binary, label_map):
        ball, far = read_segments(path)  # a label map's background segment 0 is not one
        gaps = np.diff(ball.geometry.positions @ ball.geometry.normal)
        assert np.ptp(gaps) < 1e-3 and ball.geometry.slice_count < len(source)
        for segment, centre, radius in ((ball, CENTRE, RADIUS), (far, far_centre, far_radius)):
            part = segment.cropped()
            errors = sphere_errors(extract_surface(part.volume, part.geometry, part.level), centre, radius)
            assert errors["centre"] <= 0.1 and errors["radius"] <= 0.15, (path.name, segment.name)
