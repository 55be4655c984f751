"""``check`` (issue 15, point 3): would a model print?  Each defect made by hand on a cube
of known volume, counted exactly; exit 0 printable, 1 not, 2 for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from encapsulated_stl.cli import main
from encapsulated_stl.mesh.printability import check_printability
from stl_samples import binary_stl_by_hand, cube_triangles

CUBE = cube_triangles(10.0).astype(np.float64)  # 1000 mm³, outward normals
INNER = cube_triangles(4.0, origin=(3.0, 3.0, 3.0)).astype(np.float64)  # 64 mm³


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_closed_cube_prints():
    result = check_printability(CUBE)
    assert result.printable and result.problems == []
    assert (result.triangles, result.points) == (12, 8)
    assert result.volume == pytest.approx(1000.0, abs=1e-9)
    assert result.bounds == ([0.0, 0.0, 0.0], [10.0, 10.0, 10.0])


CASES = {
    # name: (triangles, the one problem expected, its count attribute, count)
    "a hole": (CUBE[:-1], "boundary edge", "boundary_edges", 3),
    "two cubes touching at a corner": (np.concatenate([CUBE, CUBE + 10.0]), "non-manifold vertex",
                                       "non_manifold_vertices", 1),
    "a triangle turned over": (np.concatenate([CUBE[:1, ::-1], CUBE[1:]]), "inconsistently oriented",
                               "inconsistent_edges", 3),
    "every normal inwards": (CUBE[:, ::-1], "normals pointing into the material", "wrongly_oriented_components", 1),
    "a cavity facing outwards": (np.concatenate([CUBE, INNER]), "normals pointing into the material",
                                 "wrongly_oriented_components", 1),
    "two cubes overlapping": (np.concatenate([CUBE, CUBE + 5.0]), "self-intersecting", "self_intersections", None),
    "a zero-area triangle": (np.concatenate([CUBE, [[[20, 0, 0], [21, 0, 0], [22, 0, 0]]]]), "degenerate",
                             "degenerate_triangles", 1),
    "a triangle twice": (np.concatenate([CUBE, CUBE[:1]]), "duplicate", "duplicate_triangles", 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_defect_is_found_and_named(case):
    triangles, phrase, attribute, count = CASES[case]
    result = check_printability(triangles)
    assert not result.printable
    assert any(phrase in problem for problem in result.problems), result.problems
    if count is not None:
        assert getattr(result, attribute) == count
    else:
        assert getattr(result, attribute) > 0


def test_cavities_and_islands_in_them_are_printable_material():
    hollow = np.concatenate([CUBE, INNER[:, ::-1]])  # a cavity: its normals point into it
    result = check_printability(hollow)
    assert result.printable, result.problems
    assert result.volume == pytest.approx(1000.0 - 64.0, abs=1e-9)
    assert sorted(c.enclosed_by for c in result.components) == [0, 1]
    island = cube_triangles(1.0, origin=(4.5, 4.5, 4.5)).astype(np.float64)  # a solid inside the cavity
    result = check_printability(np.concatenate([hollow, island]))
    assert result.printable and result.volume == pytest.approx(1000.0 - 64.0 + 1.0, abs=1e-9)


def test_triangles_that_only_touch_or_share_an_edge_do_not_cross_and_coplanar_overlaps_do():
    apart = np.concatenate([CUBE, CUBE + np.array([10.0, 0.0, 0.0])])  # two cubes sharing a face
    assert check_printability(apart).self_intersections == 0
    flat = np.array([[[0, 0, 0], [4, 0, 0], [0, 4, 0]], [[1, 1, 0], [5, 1, 0], [1, 5, 0]]], dtype=np.float64)
    assert check_printability(flat).self_intersections == 1
    crossing = np.array([[[0, 0, 0], [4, 0, 0], [0, 4, 0]], [[1, 1, -1], [1, 1, 1], [3, 3, 0]]], dtype=np.float64)
    assert check_printability(crossing).self_intersections == 1
    above = crossing + np.array([0.0, 0.0, 0.0])
    above[1] += np.array([0.0, 0.0, 2.0])  # the same triangle lifted clear of the plane
    assert check_printability(above).self_intersections == 0


def test_the_command_reports_in_mm_and_exits_by_the_verdict(capsys, tmp_path):
    good, bad = tmp_path / "cube.stl", tmp_path / "open.stl"
    good.write_bytes(binary_stl_by_hand(cube_triangles(1.0)))
    bad.write_bytes(binary_stl_by_hand(CUBE[:-1]))
    code, out, _ = run(capsys, "check", good, "--units", "cm", "--json")
    report = json.loads(out)
    assert code == 0 and report["printable"] and report["units"] == "cm" and report["units_known"] == "given"
    assert report["volume_mm3"] == pytest.approx(1000.0, rel=1e-6)
    assert report["bounds_mm"] == {"min": [0.0, 0.0, 0.0], "max": [10.0, 10.0, 10.0]}
    code, out, _ = run(capsys, "check", bad)
    assert code == 1 and "Printable          no: 3 boundary edge(s): the surface is not closed" in out
    assert "mm (assumed)" in out

    dicom = tmp_path / "cube.dcm"
    assert main(["-q", "wrap", str(good), "--units", "cm", "--patient-id", "P-15", "-o", str(dicom)]) == 0
    code, out, _ = run(capsys, "check", dicom, "--json")
    report = json.loads(out)
    assert code == 0 and (report["units"], report["units_known"]) == ("cm", "declared")
    assert report["volume_mm3"] == pytest.approx(1000.0, rel=1e-6)


@pytest.mark.parametrize("content", [b"", b"solid x\nfacet normal\n", b"\0" * 84 + b"\1"])
def test_bad_input_is_exit_2_in_one_line(capsys, tmp_path, content):
    path = tmp_path / "broken.stl"
    path.write_bytes(content)
    code, out, err = run(capsys, "check", path)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith(f"error: {path}")


def test_sheets_meeting_at_a_point_are_drawn_apart_and_then_print():
    from encapsulated_stl.mesh.printability import separate_sheets
    from encapsulated_stl.mesh.shared_vertices import merge_identical_vertices

    bowtie = np.concatenate([CUBE, CUBE + 10.0])  # two cubes meeting at one corner
    points, faces = merge_identical_vertices(bowtie)
    split_points, split_faces = separate_sheets(np.asarray(points, dtype=np.float64), faces)
    assert len(split_points) == len(points) + 1 and len(split_faces) == len(faces)
    result = check_printability(split_points[split_faces].astype(np.float32))
    assert result.printable, result.problems
    moved = np.linalg.norm(split_points[: len(points)] - points, axis=1)
    hair = 1e-2 * 10.0 * np.sqrt(3)  # a hundredth of the way to the fan's other corners
    assert np.count_nonzero(moved) == 1 and moved.max() < hair
    assert np.linalg.norm(split_points[-1] - points[np.argmax(moved)]) < hair
    assert result.volume == pytest.approx(2000.0, abs=150.0 * hair)  # 150 mm² of triangles at each corner


@pytest.mark.parametrize("series", ["GE_tilt18_uneven", "Philips_bone_1mm_untilted"])
def test_from_ct_at_a_threshold_some_voxels_equal_prints(capsys, tmp_path, series):
    """The real series at 300 HU.  GE: 823 voxels are exactly 300, where flying edges puts
    several points on one voxel; merged, they made 5 non-manifold edges, 13 non-manifold
    vertices and a fin of two triangles before the sheets were drawn apart.  Philips bone:
    points a hair from a voxel coincided once rounded to float32 (4 non-manifold edges, 6
    vertices, 4 degenerate triangles) before they were put on it."""
    from conftest import real_series

    out = tmp_path / "bone.dcm"
    assert main(["-q", "from-ct", str(real_series(series)), "--threshold", "300",
                 "--smoothing", "0", "-o", str(out)]) == 0
    code, stdout, _ = run(capsys, "check", out, "--json")
    report = json.loads(stdout)
    assert code == 0 and report["printable"], report["problems"]
    assert report["triangles"] > 1_000_000 and report["non_manifold_vertices"] == 0 == report["degenerate_triangles"]


@pytest.mark.parametrize("series,crossing_before", [("GE_tilt18_uneven", 173), ("Philips_bone_1mm_untilted", 9)])
def test_from_ct_with_the_default_smoothing_prints(capsys, tmp_path, series, crossing_before):
    """The default smoothing draws the two sides of thin bone through each other: the GE
    series at 300 HU crossed itself in 173 pairs of triangles, the Philips bone skull in 9
    (``crossing_before``, as check counted them).  Where it does, the unsmoothed points are
    put back, and the model prints."""
    from conftest import real_series

    out = tmp_path / "bone.dcm"
    assert main(["-q", "from-ct", str(real_series(series)), "--threshold", "300", "-o", str(out)]) == 0
    code, stdout, _ = run(capsys, "check", out, "--json")
    report = json.loads(stdout)
    assert code == 0 and report["printable"], report["problems"]
    assert report["triangles"] > 1_000_000 and report["self_intersections"] == 0


def test_only_the_crossing_places_lose_their_smoothing():
    """Every point of the smoothed GE surface is either exactly where the smoothing put it
    or exactly where flying edges put it, and the second only at the crossings (measured:
    330 of 515,455 points, none farther than 0.27 mm from a corner of a crossing face)."""
    from scipy.spatial import cKDTree

    from conftest import real_series
    from encapsulated_stl.mesh import surface
    from encapsulated_stl.mesh.printability import crossing_faces
    from encapsulated_stl.series.volume import read_series_volume

    series = read_series_volume(real_series("GE_tilt18_uneven"))
    unsmoothed, faces = surface.extract_surface_mesh(series.voxels, series.geometry, 300.0, smoothing=None)
    smoothed = surface._smooth(unsmoothed, faces, surface.DEFAULT_SMOOTHING, None)
    points, same_faces = surface.extract_surface_mesh(series.voxels, series.geometry, 300.0)
    assert np.array_equal(faces, same_faces)
    kept = np.all(points == smoothed, axis=1)
    put_back = np.all(points == unsmoothed, axis=1) & ~kept
    assert np.all(kept | put_back)
    assert 0 < np.count_nonzero(put_back) <= 1000
    crossing = crossing_faces(smoothed.astype(np.float32).astype(np.float64), faces)
    distance, _ = cKDTree(smoothed[np.unique(faces[crossing])]).query(smoothed[put_back])
    assert distance.max() <= 1.0  # mm


@pytest.mark.filterwarnings("ignore:The string .* person name:UserWarning")  # the series' "REMOVED"
def test_from_seg_models_of_a_label_map_of_a_real_ct_print(capsys, tmp_path):
    """A label map SEG drawn on the real GE head (bone from 300 HU, soft tissue from -100 HU
    up to the bone): each label's voxels are a staircase the default smoothing smooths,
    thin bone included, and every model from-seg writes prints (the soft tissue crossed
    itself in 2 pairs of triangles before crossings were looked for)."""
    import pydicom

    from conftest import real_series
    from encapsulated_stl.series.volume import read_series_volume
    from from_seg_data import write_label_map_seg

    folder = real_series("GE_tilt18_uneven")
    series = read_series_volume(folder)
    labels = np.zeros(series.voxels.shape, dtype=np.uint8)
    labels[series.voxels >= -100.0] = 2
    labels[series.voxels >= 300.0] = 1
    # the source slices in the volume's order, matched by their positions
    datasets = [pydicom.dcmread(f) for f in series.source.files]
    for ds in datasets:  # the anonymised series lacks attributes of type 2 that highdicom copies
        for keyword in ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "ReferringPhysicianName",
                        "AccessionNumber", "StudyID", "PatientName", "PatientID"):
            if keyword not in ds:
                setattr(ds, keyword, "")
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    corners = series.geometry.lps_from_index(
        np.stack([np.zeros(len(datasets)), np.zeros(len(datasets)), np.arange(len(datasets))], axis=1))
    order = [int(np.argmin(np.linalg.norm(positions - corner, axis=1))) for corner in corners]
    assert sorted(order) == list(range(len(datasets)))
    seg = write_label_map_seg(tmp_path / "labels.dcm", [datasets[n] for n in order], labels, ["Bone", "Soft tissue"])

    out = tmp_path / "models"
    assert main(["-q", "from-seg", str(seg), "--reference", str(folder), "-o", str(out)]) == 0
    models = sorted(out.iterdir())
    assert len(models) == 2
    for model in models:
        code, stdout, _ = run(capsys, "check", model, "--json")
        report = json.loads(stdout)
        assert code == 0 and report["printable"], (model.name, report["problems"])


def test_the_crossing_search_after_a_move_finds_what_a_search_from_scratch_finds():
    """CrossingSearch re-tests only the faces around moved points, against the faces binned
    where they were and among themselves; on a ball whose points are jolted it must find
    exactly the crossing faces a whole new search finds, round after round."""
    from encapsulated_stl.mesh.printability import CrossingSearch, crossing_faces
    from encapsulated_stl.mesh.surface import _touching, extract_surface_mesh
    from encapsulated_stl.series.slice_geometry import AffineGeometry

    k, j, i = np.indices((24, 24, 24))
    ball = (((i - 11.5) ** 2 + (j - 11.5) ** 2 + (k - 11.5) ** 2) <= 9.0 ** 2).astype(np.float32)
    points, faces = extract_surface_mesh(ball, AffineGeometry(np.eye(4)), 0.5, smoothing=None)
    rng = np.random.default_rng(7)
    jolted = points + rng.normal(scale=0.6, size=points.shape) * (rng.random(len(points)) < 0.2)[:, None]
    search = CrossingSearch(jolted, faces)
    assert np.array_equal(search.crossing, crossing_faces(jolted, faces)) and search.crossing.any()
    for _ in range(3):
        moving = np.zeros(len(points), dtype=bool)
        moving[faces[search.crossing]] = True  # every crossing face moves, as from-ct moves them
        moving |= rng.random(len(points)) < 0.01
        jolted[moving] = points[moving] + rng.normal(scale=0.4, size=(np.count_nonzero(moving), 3))
        found = search.move(jolted, _touching(faces, moving))
        assert np.array_equal(found, crossing_faces(jolted, faces))
