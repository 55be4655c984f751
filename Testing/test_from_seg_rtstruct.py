"""``from-seg`` and ``rtstruct-rois`` on RT Structure Sets drawn on a tilted, oblique CT.

The CT (from :mod:`encapsulated_stl.inputs.phantom`) has a 30 degree gantry tilt, a 20
degree in-plane rotation and one missing slice.  The RTSTRUCT, written with
pydicom, holds a sphere's exact circle on each slice plane: contours that are
tilted in patient space, with z varying by centimetres within one contour.  They
must be rasterised on their own slices, through each slice's own position, and
come back as the true sphere; the axial reading tools make of such contours (each
contour flattened onto an axial plane at its mean z) is shown to be millimetres off.
"""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from encapsulated_stl.cli import main
from encapsulated_stl.inputs.rtstruct import list_rois, rasterise_roi, rasterise_slice
from encapsulated_stl.series.slice_geometry import SliceGeometry
from encapsulated_stl.mesh.surface import extract_surface
from from_seg_data import (
    circle, enclosed_volume, model_triangles, sorted_datasets, sphere_contours, sphere_errors,
    tilted_ct, write_rtstruct,
)

TUBE_RADII = (6.0, 3.0)


def tube_contours(geometry, slices=range(4, 12)) -> list[np.ndarray]:
    """An outer and an inner circle on each of ``slices``: a tube with a hole."""
    contours = []
    for k in slices:
        centre = geometry.positions[k] + geometry.in_plane_offsets(np.array([32.0]), np.array([14.0]))[0]
        for radius in TUBE_RADII:
            contours.append(circle(centre, radius, geometry.row_direction, geometry.column_direction))
    return contours


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtstruct")
    phantom = tilted_ct(root / "ct", tilt=30.0, rotation=20.0, missing_slices=(12,))
    source = sorted_datasets(phantom)
    rtstruct = write_rtstruct(root / "rs.dcm", source, [
        ("Ball", sphere_contours(phantom.geometry)),
        ("Tube", tube_contours(phantom.geometry)),
        ("Unused", []),
    ], colors=[(255, 128, 0), (0, 0, 255), (10, 10, 10)])
    return dict(root=root, phantom=phantom, rtstruct=rtstruct, source=source)


def test_rtstruct_rois_lists_names_types_and_counts(case, capsys):
    assert main(["rtstruct-rois", str(case["rtstruct"])]) == 0
    text = capsys.readouterr().out
    assert "Ball" in text and "Tube" in text and "ORGAN" in text and "#ff8000" in text
    assert main(["rtstruct-rois", "--json", str(case["rtstruct"])]) == 0
    rois = json.loads(capsys.readouterr().out)
    assert [(r["number"], r["name"], r["contours"]) for r in rois] == [
        (1, "Ball", 19), (2, "Tube", 16), (3, "Unused", 0)]
    assert [r.name for r in list_rois(case["rtstruct"])] == ["Ball", "Tube", "Unused"]


def test_contours_on_tilted_oblique_slices_give_the_true_sphere(case, capsys, tmp_path):
    code = main(["from-seg", str(case["rtstruct"]), "--reference", str(case["root"] / "ct"),
                 "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "skipped empty segment '3 Unused'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1_Ball.dcm", "2_Tube.dcm"]
    ball = pydicom.dcmread(tmp_path / "1_Ball.dcm")
    assert ball.ContentDescription == "Ball (ORGAN)"
    assert ball.FrameOfReferenceUID == case["source"][0].FrameOfReferenceUID
    # In-plane the coverage is anti-aliased (exact along rows, 16 lines per row),
    # so the surface follows each contour to a few hundredths of a pixel; across
    # slices it lies half-way between the last contour and the next slice, which
    # costs the poles up to about half a slice gap (1.3 mm along the normal here).
    # Measured: centre 0.004 mm, radius 0.008 mm, RMS 0.10 mm, volume -0.6 %.
    errors = sphere_errors(model_triangles(tmp_path / "1_Ball.dcm"))
    assert errors["centre"] <= 0.05
    assert errors["radius"] <= 0.1
    assert errors["rms"] <= 0.2
    assert abs(errors["volume"]) <= 0.015

    # Inner contours are holes (even-odd rule): the tube's volume is the annulus
    # area times its length, 8 slices of 1.5 mm table step (1.3 mm along the normal).
    tube = model_triangles(tmp_path / "2_Tube.dcm")
    gap = float(np.diff(case["phantom"].geometry.positions @ case["phantom"].geometry.normal)[0])
    expected = np.pi * (TUBE_RADII[0] ** 2 - TUBE_RADII[1] ** 2) * 8 * gap
    assert enclosed_volume(tube) == pytest.approx(expected, rel=0.03)


def test_an_axial_reading_of_the_same_contours_is_millimetres_off(case):
    contours = sphere_contours(case["phantom"].geometry)
    assert min(np.ptp(c[:, 2]) for c in contours[3:-3]) > 5.0  # tilted: z varies within a contour
    # What an orientation-ignoring tool does: each contour onto the axial plane at its mean z.
    heights = np.array([c[:, 2].mean() for c in contours])
    flattened = [np.column_stack([c[:, :2], np.full(len(c), z)]) for c, z in zip(contours, heights)]
    axial = SliceGeometry(np.column_stack([np.zeros((len(heights), 2)), heights]),
                          (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 1.0))
    volume, geometry = rasterise_roi(flattened, axial)
    errors = sphere_errors(extract_surface(volume, geometry, 0.5))
    # measured: surface up to 4.7 mm from the true sphere, RMS 2.0 mm (exact: 0.10 mm)
    assert errors["max"] >= 3.5 and errors["rms"] >= 1.5


def test_rasterised_coverage_is_the_polygon_area():
    triangle = np.array([[0.5, 0.5], [9.3, 1.2], [4.1, 7.7]])
    area = 0.5 * abs(np.cross(np.r_[triangle[1] - triangle[0], 0], np.r_[triangle[2] - triangle[0], 0])[2])
    assert rasterise_slice([triangle], -1, -1, 12, 10).sum() == pytest.approx(area, abs=1e-3)
    # a square with a square hole (even-odd); horizontal edges are sampled on
    # 16 lines per row, so their area is exact to 1/32 pixel per pixel of edge
    square = np.array([[0.2, 0.3], [10.7, 0.3], [10.7, 8.9], [0.2, 8.9]])
    hole = np.array([[3.1, 3.3], [3.1, 6.6], [6.4, 6.6], [6.4, 3.3]])
    coverage = rasterise_slice([square, hole], -2, -2, 16, 14)
    assert coverage.sum() == pytest.approx(10.5 * 8.6 - 3.3 * 3.3, abs=(2 * 10.5 + 2 * 3.3) / 32)
    assert coverage.max() == 1.0 and coverage[5 + 2, 5 + 2] == 0.0  # inside the hole


def test_structure_sets_that_do_not_fit_the_series_exit_2(case, capsys, tmp_path):
    geometry = case["phantom"].geometry
    # drawn on other planes: half a slice gap off every slice
    shifted = [c + 0.65 * geometry.normal for c in sphere_contours(geometry)]
    off_plane = write_rtstruct(tmp_path / "off.dcm", case["source"], [("Ball", shifted)])
    code = main(["from-seg", str(off_plane), "--reference", str(case["root"] / "ct"), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and str(off_plane) in err and "nearest slice plane" in err

    other_frame = write_rtstruct(tmp_path / "frame.dcm", case["source"],
                                 [("Ball", sphere_contours(geometry))], frame_of_reference_uid="1.2.3.4")
    code = main(["from-seg", str(other_frame), "--reference", str(case["root"] / "ct"), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and str(other_frame) in err and "Frame of Reference" in err

    code = main(["rtstruct-rois", str(case["phantom"].files[0])])
    err = capsys.readouterr().err
    assert code == 2 and "not a DICOM RT Structure Set" in err
    assert not (tmp_path / "o").exists()
