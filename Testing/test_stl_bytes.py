"""Binary STL bytes <-> numpy: validation, byte-exact wrapping, ASCII conversion."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest

from encapsulated_stl.errors import StlFormatError
from encapsulated_stl.stl.format import (
    PROJECT_HEADER,
    binary_stl_bytes,
    parse_binary_stl,
    parse_stl,
    rescale_binary_stl,
    binary_stl_for_encapsulation,
)
from stl_samples import ascii_stl_by_hand, binary_stl_by_hand, cube_triangles


def test_binary_parse_gives_the_packed_vertices_normals_and_attributes():
    tri = cube_triangles(7.5, origin=(-100.0, -20.0, 1200.0))
    normals = np.tile([0.0, 0.0, 1.0], (12, 1))
    data = binary_stl_by_hand(tri, header=b"any header", normals=normals, attribute=5)
    mesh = parse_binary_stl(data)
    assert mesh.triangle_count == 12
    np.testing.assert_array_equal(mesh.triangles, tri)
    np.testing.assert_array_equal(mesh.normals, normals.astype(np.float32))
    assert (mesh.attributes == 5).all()
    low, high = mesh.bounds()
    np.testing.assert_allclose(low, [-100.0, -20.0, 1200.0])
    np.testing.assert_allclose(high, [-92.5, -12.5, 1207.5])


@pytest.mark.parametrize(
    "data, message",
    [
        (b"short", "at least an 80-byte header"),
        (b"\0" * 80 + struct.pack("<I", 2) + b"\0" * 50, "truncated"),
        (b"\0" * 80 + struct.pack("<I", 1) + b"\0" * 51, "trailing data"),
    ],
)
def test_binary_size_problems_are_named(data, message):
    with pytest.raises(StlFormatError, match=message) as caught:
        parse_binary_stl(data, "model.stl")
    assert "model.stl" in str(caught.value)


def test_huge_declared_count_in_a_tiny_file_is_rejected_before_allocating():
    data = b"\0" * 80 + struct.pack("<I", 0xFFFFFFFF) + b"\0" * 100
    tracemalloc.start()
    with pytest.raises(StlFormatError, match="truncated"):
        parse_binary_stl(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # 4 billion triangles would be 200 GB; a check before allocation costs bytes.
    assert peak < 100_000


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_vertices_and_normals_are_rejected(bad):
    tri = cube_triangles()
    tri[7, 1, 2] = bad
    with pytest.raises(StlFormatError, match="triangle 7 has a vertex"):
        parse_binary_stl(binary_stl_by_hand(tri))
    normals = np.zeros((12, 3), dtype=np.float32)
    normals[3, 0] = bad
    with pytest.raises(StlFormatError, match="triangle 3 has a normal"):
        parse_binary_stl(binary_stl_by_hand(cube_triangles(), normals=normals))


def test_binary_input_is_kept_byte_for_byte_even_with_a_solid_header():
    # Many exporters start the binary header with "solid"; the size rule decides.
    data = binary_stl_by_hand(cube_triangles(), header=b"solid exported by CAD", attribute=3)
    stored, converted = binary_stl_for_encapsulation(data)
    assert stored is data and not converted
    assert parse_stl(data).triangle_count == 12


def test_ascii_input_is_converted_to_binary_with_project_header_and_unit_normals():
    tri = cube_triangles(12.0, origin=(1.0, 2.0, 3.0))
    stored, converted = binary_stl_for_encapsulation(ascii_stl_by_hand(tri, name="Jane Doe 1970"))
    assert converted
    assert len(stored) == 84 + 50 * 12
    assert stored[:80] == PROJECT_HEADER.ljust(80, b" ")
    assert b"Jane" not in stored and b"Doe" not in stored
    parsed = parse_binary_stl(stored)
    np.testing.assert_allclose(parsed.triangles, tri, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(parsed.normals, axis=1), 1.0, atol=1e-6)
    # Outward: the normal points away from the cube centre.
    centres = parsed.triangles.mean(axis=1) - (np.array([1.0, 2.0, 3.0]) + 6.0)
    assert (np.einsum("ij,ij->i", centres, parsed.normals) > 0).all()


@pytest.mark.parametrize(
    "text, message",
    [
        (b"solid x\n facet normal 0 0 1\n outer loop\n vertex 0 0 0\n vertex 1 0 0\n",
         "line 5: expected 'vertex', found the end of the file: the file is truncated"),
        (b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nendloop\nendfacet\nendsolid x\n",
         "line 6: expected 'vertex', found 'endloop'"),
        (b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 nan\nvertex 0 1 0\nendloop\nendfacet\nendsolid x\n",
         "line 5: expected the z coordinate of vertex 2, found 'nan'"),
    ],
)
def test_malformed_ascii_is_rejected(text, message):
    with pytest.raises(StlFormatError, match=message):
        parse_stl(text, "part.stl")


def test_written_stl_has_neutral_header_and_recomputed_unit_normals():
    tri = cube_triangles(3.0)
    data = binary_stl_bytes(tri)
    assert data[:80].rstrip(b" ") == PROJECT_HEADER
    assert not data[:80].lower().startswith(b"solid")
    mesh = parse_binary_stl(data)
    expected = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(mesh.normals, expected, atol=1e-7)


def test_rescale_changes_vertices_only():
    data = binary_stl_by_hand(cube_triangles(2.0), header=b"keep me", attribute=9)
    scaled = rescale_binary_stl(data, 1000.0)
    assert scaled[:84] == data[:84]
    mesh = parse_binary_stl(scaled)
    np.testing.assert_allclose(mesh.triangles, cube_triangles(2.0) * 1000.0)
    assert (mesh.attributes == 9).all()
