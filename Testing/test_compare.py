"""``compare`` (issue 15, point 4): surface distances between a planned model and the
actual one, optionally after a rigid alignment.  Known offsets, scales and rotations
of meshes built here, checked against distances worked out by hand (to 0.01 mm); an
independent closest-point search (VTK's cell locator); the command's exit codes and
one-line errors; and the two Philips acquisitions of one phantom."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq
from scipy.spatial.transform import Rotation

import encapsulated_stl as estl
from conftest import missing, real_series
from encapsulated_stl.cli import main
from encapsulated_stl.mesh.compare import compare_surfaces
from png_files import png_pixels
from stl_samples import binary_stl_by_hand, cube_triangles, icosphere, square_grid

RADIUS = 20.0
#: 20480 triangles: a vertex's triangles bulge at most 0.005 mm inside the sphere of
#: radius 20 (their circumradius 0.43 mm squared over twice the radius), which bounds
#: the difference between this mesh and the analytic sphere.
SPHERE = icosphere(5, RADIUS)
TOLERANCE_MM = 0.01


def lumpy(subdivisions: int = 5) -> np.ndarray:
    """An ellipsoid 60 x 40 x 24 mm with two bumps off its axes: no symmetry, so a rigid
    transform that fits it is unique."""
    triangles = icosphere(subdivisions)
    points = triangles.reshape(-1, 3)
    first, second = np.array([0.6, 0.5, 0.62]), np.array([-0.3, 0.8, -0.5])
    first, second = first / np.linalg.norm(first), second / np.linalg.norm(second)
    scale = (1.0 + 0.35 * np.exp(-((points - first) ** 2).sum(axis=1) / 0.08)
             + 0.2 * np.exp(-((points - second) ** 2).sum(axis=1) / 0.05))
    return (points * scale[:, None] * [30.0, 20.0, 12.0]).reshape(-1, 3, 3)


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_all(stats, expected, tolerance=TOLERANCE_MM):
    for name in ("mean", "rms", "p95", "max"):
        assert getattr(stats, name) == pytest.approx(expected[name], abs=tolerance), (name, stats)


def test_a_model_against_itself_is_zero_apart():
    result = compare_surfaces(SPHERE, SPHERE)
    assert result.symmetric.max < 1e-9
    assert result.symmetric.samples == 2 * (10242 + 20480)  # distinct vertices and centroids, both ways
    np.testing.assert_array_equal(result.transform, np.eye(4))


def test_a_sphere_moved_by_d_is_as_far_as_the_analytic_distance():
    """A point of the moved sphere at cos(angle) = c to the motion is |sqrt(r² + d² + 2rdc) - r|
    from the other sphere, and area on a sphere is uniform in c."""
    d, r = 1.0, RADIUS

    def distance(c):
        return abs(math.sqrt(r * r + d * d + 2 * r * d * c) - r)

    mean = quad(distance, -1, 1, points=[-d / (2 * r)])[0] / 2
    rms = math.sqrt(quad(lambda c: distance(c) ** 2, -1, 1)[0] / 2)

    def within(x):  # the share of the area within x of the other sphere
        low = ((r - x) ** 2 - r * r - d * d) / (2 * r * d)
        high = ((r + x) ** 2 - r * r - d * d) / (2 * r * d)
        return (min(high, 1.0) - max(low, -1.0)) / 2

    p95 = brentq(lambda x: within(x) - 0.95, 0.0, d)
    expected = {"mean": mean, "rms": rms, "p95": p95, "max": d}
    result = compare_surfaces(SPHERE, SPHERE + [0.0, 0.0, d])
    for stats in (result.symmetric, result.actual_to_planned, result.planned_to_actual):
        assert_all(stats, expected)
    assert 0.45 < mean < 0.55 and 0.9 < p95 < 1.0  # the analytic values themselves are sane


def test_a_print_two_percent_too_large_is_two_percent_of_the_radius_away_even_after_alignment():
    larger = SPHERE * 1.02
    expected = dict.fromkeys(("mean", "rms", "p95", "max"), 0.02 * RADIUS)
    assert_all(compare_surfaces(SPHERE, larger).symmetric, expected)
    # a rigid alignment cannot take the scale away
    shape = lumpy(4)
    centre = shape.reshape(-1, 3).mean(axis=0)
    scaled = (shape - centre) * 1.02 + centre
    plain = compare_surfaces(shape, scaled)
    aligned = compare_surfaces(shape, scaled, "rigid")
    assert aligned.symmetric.mean > 0.9 * plain.symmetric.mean > 0.2
    assert aligned.rotation_degrees < 1.0  # measured 0.18: a scaled shape fits itself best almost unturned


def test_distances_are_to_the_surface_not_to_its_vertices():
    """A square of two triangles 100 mm wide, and a fine square 1 mm above it: every
    point of either is 1 mm from the other, though the coarse one's vertices are up to
    70 mm from the fine one's points above the middle."""
    coarse = square_grid(100.0, 1)
    fine = square_grid(100.0, 50, z=1.0)
    result = compare_surfaces(coarse, fine)
    assert_all(result.symmetric, dict.fromkeys(("mean", "rms", "p95", "max"), 1.0), 1e-9)
    assert result.actual_vertex_distances.shape == (51 * 51,)
    np.testing.assert_allclose(result.actual_vertex_distances, 1.0, atol=1e-9)


def test_statistics_are_weighted_by_area_not_by_the_number_of_triangles():
    """Half the area 1 mm away in 5000 triangles, half 2 mm away in 2: the mean is 1.5 mm
    (a mean over vertices would be about 1.0) and the 95th percentile 2 mm."""
    planned = square_grid(100.0, 1)
    actual = np.concatenate([square_grid(50.0, 50, z=1.0)[:5000], square_grid(50.0, 1, z=2.0, origin=(50.0, 0.0))])
    stats = compare_surfaces(planned, actual).actual_to_planned
    assert stats.mean == pytest.approx(1.5, abs=1e-9)
    assert stats.rms == pytest.approx(math.sqrt((1 + 4) / 2), abs=1e-9)
    assert (stats.p95, stats.max) == (pytest.approx(2.0), pytest.approx(2.0))


def test_closest_points_agree_with_vtk_on_slivers_big_and_degenerate_triangles():
    vtk_distances = pytest.importorskip("test_real_tilted_ct").surface_distances
    rng = np.random.default_rng(7)
    soup = rng.normal(size=(400, 3, 3)) * 5.0
    soup[:10] *= 20.0  # large triangles
    soup[10:20, 2] = soup[10:20, 0] + rng.normal(size=(10, 3)) * 1e-6  # slivers
    soup[20:25, 1] = soup[20:25, 0]  # two corners in one point
    actual = rng.normal(size=(300, 3, 3)) * 40.0  # near and far from the soup
    result = compare_surfaces(soup, actual)
    expected = vtk_distances(result.actual_points, soup)
    np.testing.assert_allclose(result.actual_vertex_distances, expected, atol=1e-6)


def test_a_rigid_alignment_recovers_a_rotation_about_an_oblique_axis_and_a_translation():
    shape = lumpy()
    axis = np.array([1.0, 2.0, 3.0]) / math.sqrt(14.0)
    rotation = Rotation.from_rotvec(math.radians(20.0) * axis).as_matrix()
    translation = np.array([30.0, -10.0, 5.0])
    moved = shape @ rotation.T + translation
    assert compare_surfaces(shape, moved).symmetric.mean > 5.0
    result = compare_surfaces(shape, moved, "rigid")
    assert result.converged and result.symmetric.max < TOLERANCE_MM
    # the transform takes ACTUAL back: the inverse of the motion
    assert result.rotation_degrees == pytest.approx(20.0, abs=0.01)
    np.testing.assert_allclose(result.rotation_axis, -axis, atol=1e-4)
    np.testing.assert_allclose(result.translation_mm, -rotation.T @ translation, atol=TOLERANCE_MM)
    corners = moved.reshape(-1, 3)
    back = corners @ result.transform[:3, :3].T + result.transform[:3, 3]
    assert np.abs(back - shape.reshape(-1, 3)).max() < TOLERANCE_MM


def test_a_rigid_alignment_finds_a_half_turn_from_the_principal_axes():
    shape = lumpy(4)
    rotation = Rotation.from_rotvec(math.radians(150.0) * np.array([0.0, 0.6, 0.8])).as_matrix()
    result = compare_surfaces(shape, shape @ rotation.T - [5.0, 0.0, 40.0], "rigid")
    assert result.rotation_degrees == pytest.approx(150.0, abs=0.01)
    assert result.symmetric.max < TOLERANCE_MM


@pytest.mark.parametrize("bad, problem", [
    (np.zeros((0, 3, 3)), "no triangles"),
    (np.full((2, 3, 3), np.nan), "not a finite number"),
    (np.zeros((4, 3)), "(n, 3, 3)"),
    (np.zeros((3, 3, 3)), "no area"),
    ("not a mesh", "not an array"),
])
def test_bad_meshes_are_refused_with_the_library_error_naming_them(bad, problem):
    with pytest.raises(estl.EncapsulatedSTLError, match=problem.replace("(", r"\(").replace(")", r"\)")) as caught:
        compare_surfaces(SPHERE, bad, names=("plan.stl", "scan.stl"))
    assert caught.value.path == "scan.stl"
    with pytest.raises(estl.EncapsulatedSTLError, match="unknown alignment"):
        compare_surfaces(SPHERE, SPHERE, "affine")


@pytest.fixture
def stl_pair(tmp_path):
    plan, scan = tmp_path / "plan.stl", tmp_path / "scan.stl"
    plan.write_bytes(binary_stl_by_hand(icosphere(4, RADIUS)))
    scan.write_bytes(binary_stl_by_hand(icosphere(4, RADIUS) + [0.0, 0.0, 1.0]))
    return plan, scan


def test_the_command_prints_a_table_and_exits_0(stl_pair, capsys):
    code, out, err = run(capsys, "compare", *stl_pair)
    assert (code, err) == (0, "")
    assert "Symmetric" in out and "Actual to planned" in out and "none (coordinates compared as they are)" in out
    symmetric = next(line for line in out.splitlines() if line.startswith("Symmetric")).split()[1:]
    assert float(symmetric[3]) == pytest.approx(1.0, abs=TOLERANCE_MM)  # max: the 1 mm shift


def test_the_command_gives_json_and_honours_units(stl_pair, capsys):
    code, out, err = run(capsys, "compare", *stl_pair, "--json", "--units", "cm", "--align", "rigid")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert set(report) == {"planned", "actual", "align", "transform", "rotation_degrees", "rotation_axis",
                           "translation_mm", "iterations", "converged", "distances_mm", "png"}
    assert set(report["distances_mm"]) == {"symmetric", "actual_to_planned", "planned_to_actual"}
    assert set(report["distances_mm"]["symmetric"]) == {"mean", "rms", "p95", "max", "samples"}
    assert report["planned"]["units"] == "cm" and report["planned"]["units_known"] == "given"
    assert report["align"] == "rigid"
    # the 1 cm shift along z moved back: the scan's centre, 10 mm up, goes to the plan's (a
    # sphere turns freely about its centre, so only where the centre goes is fixed)
    centre = np.array(report["transform"]) @ [0.0, 0.0, 10.0, 1.0]
    np.testing.assert_allclose(centre[:3], 0.0, atol=0.05)
    assert report["png"] is None
    assert report["distances_mm"]["symmetric"]["mean"] < 0.05


def test_models_in_different_units_are_compared_in_mm(tmp_path, capsys):
    """An object that declares centimetres against an STL file in millimetres: the same
    sphere, so 0 apart; the STL read as centimetres too is ten times too large."""
    in_mm = tmp_path / "sphere-mm.stl"
    in_mm.write_bytes(binary_stl_by_hand(icosphere(3, RADIUS)))
    in_cm = tmp_path / "sphere-cm.dcm"
    estl.save(estl.wrap(icosphere(3, RADIUS / 10.0), units="cm", patient_id="P1"), in_cm)
    code, out, err = run(capsys, "compare", in_cm, in_mm, "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert (report["planned"]["units"], report["planned"]["units_known"]) == ("cm", "declared")
    assert report["distances_mm"]["symmetric"]["max"] < 1e-4  # float32 coordinates
    code, out, err = run(capsys, "compare", in_cm, in_mm, "--json", "--units", "cm")
    assert json.loads(out)["distances_mm"]["symmetric"]["mean"] == pytest.approx(9 * RADIUS, rel=0.01)


def test_bad_files_are_one_line_and_exit_2(stl_pair, tmp_path, capsys):
    plan, scan = stl_pair
    truncated = tmp_path / "truncated.stl"
    truncated.write_bytes(scan.read_bytes()[:300])
    text = tmp_path / "notes.txt"
    text.write_text("not a model at all, just some words in a text file\n" * 3)
    empty = tmp_path / "empty.stl"
    empty.write_bytes(binary_stl_by_hand(np.zeros((0, 3, 3))))
    nan = tmp_path / "nan.stl"
    nan.write_bytes(binary_stl_by_hand(np.concatenate([cube_triangles(), np.full((1, 3, 3), np.nan)])))
    for bad in (truncated, text, tmp_path / "missing.stl", empty, nan):
        for args in ((plan, bad), (bad, plan)):
            code, out, err = run(capsys, "compare", *args)
            assert code == 2 and out == "", (bad, err)
            assert err.startswith(f"error: {bad}: ") and err.count("\n") == 1, err
            assert "Traceback" not in err and "Warning" not in err


def test_the_public_api_compares_files_and_arrays(stl_pair):
    plan, scan = stl_pair
    from_files = estl.compare(plan, scan)
    from_arrays = estl.compare(icosphere(4, RADIUS), icosphere(4, RADIUS) + [0.0, 0.0, 1.0])
    assert isinstance(from_files, estl.SurfaceComparison)
    # the files hold float32 coordinates: the same to their precision
    assert from_files.symmetric.mean == pytest.approx(from_arrays.symmetric.mean, abs=1e-5)
    with pytest.raises(estl.EncapsulatedSTLError, match="no such file"):
        estl.compare(plan, plan.parent / "missing.stl")


def test_the_picture_colours_actual_by_its_distance_with_a_colour_bar(stl_pair, tmp_path, capsys):
    """A sphere moved 1 mm up, seen from the front: its top is 1 mm from the plan (red,
    the colour bar's top, the 95th percentile 0.95 mm and above) and its equator on the
    plan (blue)."""
    from encapsulated_stl.mesh.render import RenderingUnavailable

    plan, scan = stl_pair
    result = estl.compare(plan, scan)
    try:
        direct = result.picture(256)
    except RenderingUnavailable as error:
        missing(f"VTK cannot render here: {error.reason}")
    output = tmp_path / "distances.png"
    code, out, err = run(capsys, "compare", plan, scan, "--png", output)
    assert (code, err) == (0, "") and f"Picture            {output}" in out
    picture = png_pixels(output.read_bytes())
    assert picture.shape == (512, 512, 3)
    for image in (picture, direct):
        size = image.shape[0]
        sphere = image[:, : int(size * 0.78)].astype(int)  # left of the colour bar
        coloured = sphere.max(axis=2) - sphere.min(axis=2) > 60  # not the white text
        lit = np.where(coloured.any(axis=1))[0]
        top, middle = sphere[lit[0] + size // 40], sphere[(lit[0] + lit[-1]) // 2]
        # hues, not brightness: the light at the viewer darkens the sphere's rim
        reddish = lambda row: ((row[:, 0] > 50) & (row[:, 0] > 2 * row[:, 1]) & (row[:, 0] > 2 * row[:, 2])).sum()  # noqa: E731
        bluish = lambda row: ((row[:, 2] > 50) & (row[:, 2] > 2 * row[:, 0]) & (row[:, 2] > 2 * row[:, 1])).sum()  # noqa: E731
        assert reddish(top) > 5 and bluish(top) == 0
        assert bluish(middle) > 20 and reddish(middle) == 0
    code, out, err = run(capsys, "compare", plan, scan, "--png", output)  # exists: not replaced without --force
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code, out, err = run(capsys, "compare", plan, scan, "--png", plan, "--force")  # never an input
    assert code == 2 and plan.read_bytes()[:5] != b"\x89PNG"


# -- real data: the Philips skull phantom scanned at -18.5 and +16.5 degrees ---------------

@pytest.fixture(scope="module")
def philips_models(tmp_path_factory):
    """Both acquisitions made into models by from-ct at 300 HU (the skull) and saved, with
    each model's triangles in the region both stacks cover (the series overlap only for
    z = 742..800 mm): ``wide``, to their edges, and ``narrow``, 3 mm inside, so that
    every point of a narrow part has its counterpart in the other model's wide part."""
    from encapsulated_stl.series.volume import read_series_volume
    from test_real_tilted_ct import covered

    folder = tmp_path_factory.mktemp("philips")
    made = []
    for name in ("tilt_minus18.5", "tilt_plus16.5"):
        series = real_series(f"Philips_phantom_two_tilts/{name}")
        path = folder / f"{name}.dcm"
        estl.save(estl.from_ct(series, 300), path)
        made.append((path, read_series_volume(series).geometry))
    models = []
    for path, _geometry in made:
        triangles = estl.read(path).triangles_mm()
        centroids = triangles.mean(axis=1)
        wide, narrow = (covered(centroids, made[0][1], margin) & covered(centroids, made[1][1], margin)
                        for margin in (0.0, 3.0))
        models.append((path, triangles[wide], triangles[narrow]))
    return models


def test_the_two_tilts_of_one_phantom_agree_where_both_cover_it(philips_models):
    """Each acquisition's skull 3 mm inside the region both cover, to the other's skull in
    all of it.  The slices are 2.5 mm apart and each surface is interpolated linearly
    between them, so where the skull runs along the slices the two may differ by up
    to about half a slice; the data's README finds about 1.5 mm at most for the mean.
    Bounds: mean 0.75 mm (0.3 slice), 95th percentile 2 mm (0.8 slice).  Measured:
    mean 0.51 mm, 95th percentile 1.29 and 1.31 mm, maximum 4.1 and 4.6 mm."""
    (_, minus_wide, minus_narrow), (_, plus_wide, plus_narrow) = philips_models
    assert len(minus_narrow) > 500_000 and len(plus_narrow) > 500_000
    for planned, actual in ((minus_wide, plus_narrow), (plus_wide, minus_narrow)):
        stats = compare_surfaces(planned, actual).actual_to_planned
        assert stats.mean <= 0.75 and stats.p95 <= 2.0, stats
    # one model moved 2 mm to the patient's left fails both bounds (measured 1.27 and 2.46 mm)
    moved = compare_surfaces(minus_wide, plus_narrow + [2.0, 0.0, 0.0]).actual_to_planned
    assert moved.mean > 0.75 and moved.p95 > 2.0, moved


def test_the_command_compares_the_two_phantom_models(philips_models, capsys):
    (minus, _, _), (plus, _, _) = philips_models
    code, out, err = run(capsys, "compare", minus, plus, "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["planned"]["units"] == "mm" and report["planned"]["units_known"] == "declared"
    # the whole models: each stack holds skull the other does not, centimetres away
    assert report["distances_mm"]["symmetric"]["max"] > 10.0
