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
