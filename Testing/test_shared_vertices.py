"""Triangles -> shared points, exactly; and meshes <-> VTK polydata.

Every test checks what the Slicer loader relies on: ``points[faces]`` gives back
the triangles bit for bit, vertices with identical coordinates are one point, and
no two points are equal, measured against independent exact methods (np.unique on
rows, VTK's vtkSTLReader).
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonCore import VTK_DOUBLE, VTK_FLOAT, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

from encapsulated_stl.mesh import shared_vertices
from encapsulated_stl.series.acquisition_geometry import ras_from_lps
from encapsulated_stl.mesh.polydata import (
    mesh_from_polydata,
    polydata_from_mesh,
    polydata_from_triangles,
    triangles_from_polydata,
)
from encapsulated_stl.mesh.shared_vertices import merge_identical_vertices
from encapsulated_stl.stl.format import binary_stl_bytes, parse_binary_stl


def wavy_sheet(rows: int, columns: int, dtype=np.float32, seed: int = 0) -> np.ndarray:
    """``(n, 3, 3)`` triangles of a height field: each inner point in six triangles.

    Coordinates have random low bits, like a smoothed iso-surface, and triangles are
    shuffled so that a point's six uses lie far apart in the array.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float64)
    z = np.sin(x / 3.0) * np.cos(y / 5.0) * 10.0 + rng.normal(0, 1e-3, x.shape)
    points = np.stack([x * 0.7 - 100.0, y * 0.7 + 20.0, z + 1200.0], axis=-1).reshape(-1, 3)
    corner = (np.arange(rows - 1)[:, None] * columns + np.arange(columns - 1)[None, :]).ravel()
    faces = np.concatenate([
        np.stack([corner, corner + 1, corner + columns], axis=1),
        np.stack([corner + 1, corner + columns + 1, corner + columns], axis=1),
    ])
    faces = faces[rng.permutation(len(faces))]
    return points.astype(dtype)[faces]


def unique_vertex_count(triangles: np.ndarray) -> int:
    """Distinct vertices by np.unique on rows: an exact method sharing no code with ours."""
    return int(np.unique(triangles.reshape(-1, 3), axis=0).shape[0])


def assert_exact_sharing(triangles: np.ndarray, points: np.ndarray, faces: np.ndarray) -> None:
    assert faces.dtype == np.int64 and faces.shape == (len(triangles), 3)
    assert points.dtype == triangles.dtype
    # points[faces] gives the triangles back, bit for bit
    np.testing.assert_array_equal(points[faces].view(np.uint8), np.ascontiguousarray(triangles).view(np.uint8))
    # identical vertices are one point, and no two points are equal
    assert len(points) == unique_vertex_count(triangles)
    assert np.unique(points, axis=0).shape[0] == len(points)
    # ...and the same vertices are grouped as np.unique groups them
    _, theirs = np.unique(triangles.reshape(-1, 3), axis=0, return_inverse=True)
    pairs = np.unique(np.stack([faces.ravel(), theirs.ravel()], axis=1), axis=0)
    assert len(pairs) == len(points)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identical_vertices_become_one_point_and_nothing_else_changes(dtype):
    triangles = wavy_sheet(60, 80, dtype)
    points, faces = merge_identical_vertices(triangles)
    assert_exact_sharing(triangles, points, faces)
    assert len(points) == 60 * 80  # every grid point, once
    assert len(triangles) * 3 / len(points) > 5.8  # near six uses per point


def test_blocks_find_points_of_earlier_blocks(monkeypatch):
    # Blocks of 2 triangles: nearly every vertex finds its point in another block.
    monkeypatch.setattr(shared_vertices, "_BLOCK", 2)
    triangles = wavy_sheet(20, 30)
    points, faces = merge_identical_vertices(triangles)
    assert_exact_sharing(triangles, points, faces)


@pytest.mark.parametrize("hash_bits", [0, 1])
def test_hash_collisions_never_merge_different_points(monkeypatch, hash_bits):
    # Every vertex hashed to one slot (or two): all points but one are found by
    # probing, and different points that share a hash stay apart.
    def colliding(words):
        return (words[0] & np.uint64(hash_bits)) << np.uint64(63)

    monkeypatch.setattr(shared_vertices, "_hash", colliding)
    monkeypatch.setattr(shared_vertices, "_BLOCK", 20)
    triangles = wavy_sheet(12, 15)
    points, faces = merge_identical_vertices(triangles)
    assert_exact_sharing(triangles, points, faces)
    assert len(points) == 12 * 15


def test_grid_coordinates_spread_over_the_slots():
    # Whole-millimetre coordinates leave most bits of the floats zero.  Both tables'
    # slots must still spread the points as a random hash would (about 93 % of
    # them in slots of their own here); a weaker hash put 34289 points of one
    # block in 1501 slots of the block's table and took 10 s for 2.3 M triangles.
    y, x = np.mgrid[0:150, 0:215].astype(np.float32)
    points = np.stack([x, y, np.full_like(x, 7.0)], axis=-1).reshape(-1, 3)
    buffers = shared_vertices._word_buffers(np.float32, len(points))
    words = shared_vertices._coordinate_words(points.reshape(-1, 3, 3), buffers)
    hashed = shared_vertices._hash(words)
    bits = shared_vertices._table_bits(6_900_000)  # the skull's 2.3 M triangles
    block_bits = shared_vertices._table_bits(3 * shared_vertices._BLOCK)
    top = hashed >> np.uint64(64 - bits)
    below = (hashed >> np.uint64(64 - bits - block_bits)) & np.uint64((1 << block_bits) - 1)
    assert len(np.unique(top)) > 0.85 * len(points)
    assert len(np.unique(below)) > 0.85 * len(points)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("one_slot", [False, True])
def test_points_differing_in_one_bit_of_one_coordinate_stay_apart(monkeypatch, dtype, one_slot):
    if one_slot:  # and all in one slot, so that only the byte comparison tells them apart
        monkeypatch.setattr(shared_vertices, "_hash", lambda words: np.zeros(words[0].size, np.uint64))
    base = dtype(123.456)
    up = np.nextafter(base, dtype(np.inf))
    corners = np.array([[base, base, base], [up, base, base], [base, up, base], [base, base, up]], dtype)
    triangles = corners[[[0, 1, 2], [1, 2, 3], [3, 0, 1], [0, 0, 3]]]
    points, faces = merge_identical_vertices(triangles)
    assert_exact_sharing(triangles, points, faces)
    assert len(points) == 4


def test_degenerate_triangles_are_kept_with_repeated_indices():
    triangles = np.array([
        [[0, 0, 0], [1, 0, 0], [0, 1, 0]],
        [[1, 0, 0], [1, 0, 0], [0, 1, 0]],  # two vertices the same
        [[5, 5, 5], [5, 5, 5], [5, 5, 5]],  # a point
    ], np.float32)
    points, faces = merge_identical_vertices(triangles)
    assert_exact_sharing(triangles, points, faces)
    assert len(points) == 4
    assert faces[1, 0] == faces[1, 1] == faces[0, 1]
    assert len(set(faces[2])) == 1


def test_negative_zero_merges_with_zero():
    # -0.0 == 0.0, as vtkSTLReader's point locator compares them
    triangles = np.array([
        [[0.0, 1, 2], [3, 4, 5], [6, 7, 8]],
        [[-0.0, 1, 2], [3, 4, 5], [6, 7, -8]],
    ], np.float32)
    points, faces = merge_identical_vertices(triangles)
    assert len(points) == 4
    assert faces[0, 0] == faces[1, 0]
    np.testing.assert_array_equal(points[faces], triangles)  # -0.0 == 0.0
    assert not np.signbit(points[faces[0, 0], 0])


def test_empty_input_gives_empty_mesh():
    points, faces = merge_identical_vertices(np.zeros((0, 3, 3), np.float32))
    assert points.shape == (0, 3) and points.dtype == np.float32
    assert faces.shape == (0, 3) and faces.dtype == np.int64


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_coordinates_are_refused_naming_the_triangle(bad):
    triangles = wavy_sheet(5, 6)
    triangles[17, 2, 1] = bad
    with pytest.raises(ValueError, match="triangle 17 has a NaN or infinite"):
        merge_identical_vertices(triangles)


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(n, 3, 3\)"):
        merge_identical_vertices(np.zeros((4, 3)))


def test_reads_straight_from_the_stl_records():
    triangles = wavy_sheet(30, 40)
    mesh = parse_binary_stl(binary_stl_bytes(triangles))
    assert not mesh.triangles.flags.c_contiguous  # a view into the 50-byte records
    points, faces = merge_identical_vertices(mesh.triangles)
    assert_exact_sharing(triangles, points, faces)


def test_same_points_as_vtk_stl_reader(tmp_path):
    from vtkmodules.vtkIOGeometry import vtkSTLReader

    triangles = wavy_sheet(40, 50)
    stl = tmp_path / "sheet.stl"
    stl.write_bytes(binary_stl_bytes(triangles))
    reader = vtkSTLReader()
    reader.SetFileName(str(stl))
    reader.Update()
    their_points, their_faces = mesh_from_polydata(reader.GetOutput())
    points, faces = merge_identical_vertices(triangles)
    assert len(points) == len(their_points) == 40 * 50
    np.testing.assert_array_equal(np.unique(points, axis=0), np.unique(their_points, axis=0))
    np.testing.assert_array_equal(their_points[their_faces], points[faces])


# -- polydata ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype, vtk_type", [(np.float32, VTK_FLOAT), (np.float64, VTK_DOUBLE)])
def test_polydata_round_trip_is_exact(dtype, vtk_type):
    triangles = wavy_sheet(25, 35, dtype)
    points, faces = merge_identical_vertices(triangles)
    polydata = polydata_from_mesh(points, faces)
    assert polydata.GetNumberOfPoints() == len(points)
    assert polydata.GetNumberOfPolys() == polydata.GetNumberOfCells() == len(faces)
    assert polydata.GetPoints().GetDataType() == vtk_type
    back_points, back_faces = mesh_from_polydata(polydata)
    np.testing.assert_array_equal(back_points, points)
    np.testing.assert_array_equal(back_faces, faces)
    np.testing.assert_array_equal(triangles_from_polydata(polydata), triangles)


def test_polydata_from_triangles_converts_only_the_shared_points():
    # as the Slicer loader does: LPS in metres -> RAS in mm, on the p points
    triangles = wavy_sheet(25, 35) / np.float32(1000.0)
    seen = []

    def ras_mm(lps):
        seen.append(lps.shape)
        return ras_from_lps(lps) * 1000.0

    polydata = polydata_from_triangles(triangles, ras_mm)
    assert seen == [(25 * 35, 3)]
    points, faces = merge_identical_vertices(triangles)
    expected = polydata_from_mesh(ras_from_lps(points) * 1000.0, faces)
    assert polydata.GetPoints().GetDataType() == VTK_DOUBLE
    for got, want in zip(mesh_from_polydata(polydata), mesh_from_polydata(expected)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        triangles_from_polydata(polydata), ras_from_lps(triangles.astype(np.float64)) * 1000.0
    )


def test_polydata_from_triangles_refuses_what_merging_refuses():
    triangles = wavy_sheet(4, 5)
    triangles[3, 1, 0] = np.nan
    with pytest.raises(ValueError, match="triangle 3 has a NaN"):
        polydata_from_triangles(triangles)
    with pytest.raises(ValueError, match=r"\(n, 3, 3\)"):
        polydata_from_triangles(np.zeros((2, 9)))
    with pytest.raises(ValueError, match="gave"):
        polydata_from_triangles(wavy_sheet(4, 5), lambda points: points[1:])


def test_polydata_owns_its_arrays():
    # VTK keeps the data after every numpy array handed to it is gone
    triangles = wavy_sheet(10, 12)
    points, faces = merge_identical_vertices(triangles)
    polydata = polydata_from_mesh(points, faces)
    straight = polydata_from_triangles(triangles.copy())
    expected = triangles.astype(np.float64)
    del points, faces
    gc.collect()
    np.ones(10**6)  # reuse freed memory
    np.testing.assert_array_equal(triangles_from_polydata(polydata), expected)
    np.testing.assert_array_equal(triangles_from_polydata(straight), expected)


def test_polydata_refuses_faces_outside_the_points():
    with pytest.raises(ValueError, match="3 points"):
        polydata_from_mesh(np.zeros((3, 3)), np.array([[0, 1, 3]]))


def test_quads_and_strips_come_back_as_triangles():
    points = vtkPoints()
    for xyz in [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1)]:
        points.InsertNextPoint(*xyz)
    polys = vtkCellArray()
    polys.InsertNextCell(4, [0, 1, 2, 3])
    strips = vtkCellArray()
    strips.InsertNextCell(4, [0, 1, 4, 5])
    polydata = vtkPolyData()
    polydata.SetPoints(points)
    polydata.SetPolys(polys)
    polydata.SetStrips(strips)
    back_points, faces = mesh_from_polydata(polydata)
    assert faces.shape == (4, 3)  # a quad in two, a strip of four points in two
    np.testing.assert_array_equal(back_points, vtk_to_numpy(points.GetData()))
    # every triangle lies on the quad's or the strip's points
    assert set(np.unique(faces)) == {0, 1, 2, 3, 4, 5}


def test_empty_polydata_gives_no_triangles():
    assert triangles_from_polydata(vtkPolyData()).shape == (0, 3, 3)
    assert polydata_from_mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64)).GetNumberOfCells() == 0
    empty = polydata_from_triangles(np.zeros((0, 3, 3), np.float32))
    assert empty.GetNumberOfCells() == empty.GetNumberOfPoints() == 0
    assert triangles_from_polydata(empty).shape == (0, 3, 3)
