"""Small meshes of known geometry for tests, written without the code under test."""

from __future__ import annotations

import struct

import numpy as np


def cube_triangles(size: float = 10.0, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """12 outward-facing triangles of an axis-aligned cube, ``(12, 3, 3)`` float32."""
    o = np.asarray(origin, dtype=np.float64)
    corners = np.array(
        [[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64
    ) * size + o
    # corner index = 4x + 2y + z; each face as two counter-clockwise (outward) triangles
    faces = [
        (0, 1, 3), (0, 3, 2),  # x = 0
        (4, 6, 7), (4, 7, 5),  # x = 1
        (0, 4, 5), (0, 5, 1),  # y = 0
        (2, 3, 7), (2, 7, 6),  # y = 1
        (0, 2, 6), (0, 6, 4),  # z = 0
        (1, 5, 7), (1, 7, 3),  # z = 1
    ]
    return corners[np.array(faces)].astype(np.float32)


def binary_stl_by_hand(triangles, header: bytes = b"", normals=None, attribute: int = 0) -> bytes:
    """Binary STL bytes packed with struct, independent of the project's writer."""
    triangles = np.asarray(triangles, dtype=np.float32)
    if normals is None:
        normals = np.zeros((len(triangles), 3), dtype=np.float32)
    out = [header.ljust(80, b"\0")[:80], struct.pack("<I", len(triangles))]
    for normal, tri in zip(normals, triangles):
        out.append(struct.pack("<12fH", *normal, *tri.reshape(-1), attribute))
    return b"".join(out)


def ascii_stl_by_hand(triangles, name: str = "part") -> bytes:
    lines = [f"solid {name}"]
    for tri in np.asarray(triangles, dtype=np.float64):
        lines.append("  facet normal 0 0 0")
        lines.append("    outer loop")
        for v in tri:
            lines.append(f"      vertex {v[0]:.6e} {v[1]:.6e} {v[2]:.6e}")
        lines.append("    endloop")
        lines.append("  endfacet")
    lines.append(f"endsolid {name}")
    return ("\n".join(lines) + "\n").encode()


def icosphere(subdivisions: int, radius: float = 1.0, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A sphere's outward triangles, ``(20 * 4**subdivisions, 3, 3)`` float64: an icosahedron
    whose triangles are split in four ``subdivisions`` times, every vertex on the sphere."""
    t = (1.0 + 5.0 ** 0.5) / 2.0
    points = np.array([(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t),
                       (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)], dtype=np.float64)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    faces = np.array([(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
                      (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9),
                      (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)])
    for _ in range(subdivisions):
        edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
        unique, inverse = np.unique(edges, axis=0, return_inverse=True)
        middles = points[unique].mean(axis=1)
        middles /= np.linalg.norm(middles, axis=1, keepdims=True)
        ab, bc, ca = inverse.reshape(3, -1) + len(points)
        a, b, c = faces.T
        faces = np.concatenate([np.stack(f, axis=1) for f in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
        points = np.concatenate([points, middles])
    return points[faces] * radius + np.asarray(center, dtype=np.float64)


def square_grid(size: float, cells: int, z: float = 0.0, origin=(0.0, 0.0)) -> np.ndarray:
    """A flat square ``size`` mm wide at height ``z``, ``2 * cells**2`` triangles, float64."""
    u = np.linspace(0.0, size, cells + 1)
    x, y = np.meshgrid(u + origin[0], u + origin[1], indexing="ij")
    grid = np.stack([x, y, np.full_like(x, z)], axis=-1)
    a, b, c, d = grid[:-1, :-1], grid[1:, :-1], grid[1:, 1:], grid[:-1, 1:]
    return np.concatenate([np.stack([a, b, c], axis=-2).reshape(-1, 3, 3),
                           np.stack([a, c, d], axis=-2).reshape(-1, 3, 3)])
